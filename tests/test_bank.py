"""The memory bank of song vectors: updates, neighbours, targets, saving."""

import pytest
import torch

from reform.bank import MemoryBank


def _bank():
    return MemoryBank(torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [-1.0, 0.0]]))


def test_vectors_are_unit_length():
    assert torch.allclose(_bank().vectors.norm(dim=1), torch.ones(4))


def test_update_moves_a_song_towards_its_windows_and_keeps_it_unit():
    bank = _bank()
    bank.update(0, torch.tensor([[0.0, 5.0], [0.0, 1.0]]), momentum=0.5)
    expected = torch.nn.functional.normalize(torch.tensor([0.5, 0.5]), dim=0)
    assert torch.allclose(bank.vectors[0], expected)
    assert torch.allclose(bank.vectors[1], torch.tensor([0.0, 1.0]))   # other songs untouched
    bank.update(1, torch.tensor([[1.0, 0.0]]), momentum=0.0)            # momentum 0: replaced
    assert torch.allclose(bank.vectors[1], torch.tensor([1.0, 0.0]))


def test_neighbours_are_the_closest_other_songs():
    bank = _bank()
    assert bank.neighbours(0, 1).tolist() == [2]
    assert sorted(bank.neighbours(0, 2).tolist()) == [1, 2]
    assert len(bank.neighbours(0, 10)) == 3                             # never more than the others


def test_targets_hard_and_soft():
    bank = _bank()
    assert bank.targets(1).tolist() == [0.0, 1.0, 0.0, 0.0]
    soft = bank.targets(0, neighbours=1, soft=0.25)
    assert soft.tolist() == pytest.approx([0.75, 0.0, 0.25, 0.0])
    assert bank.targets(0, neighbours=2, soft=0.5).sum().item() == pytest.approx(1.0)


def test_mutual_neighbours_keep_only_songs_that_count_the_song_among_theirs():
    # songs at 0, 10, 30 and 100 degrees
    angles = torch.deg2rad(torch.tensor([0.0, 10.0, 30.0, 100.0]))
    bank = MemoryBank(torch.stack([angles.cos(), angles.sin()], dim=1))
    assert bank.neighbours(0, 1, mutual=True).tolist() == [1]            # 0 and 10 are each other's nearest
    assert bank.neighbours(2, 1).tolist() == [1]
    assert bank.neighbours(2, 1, mutual=True).tolist() == []             # 10's nearest is 0, not 30
    assert sorted(bank.neighbours(2, 2, mutual=True).tolist()) == [0, 1]
    assert bank.neighbours(3, 2, mutual=True).tolist() == []             # 100 is nobody's
    assert bank.targets(0, neighbours=1, soft=0.5, mutual=True).tolist() == pytest.approx([0.5, 0.5, 0.0, 0.0])
    # the soft share spread over the mutual ones only; all on the song when none is left
    assert bank.targets(2, neighbours=2, soft=0.5, mutual=True).tolist() == pytest.approx([0.25, 0.25, 0.5, 0.0])
    assert bank.targets(3, neighbours=2, soft=0.5, mutual=True).tolist() == [0.0, 0.0, 0.0, 1.0]


def test_state_round_trip_and_bad_shapes():
    bank = _bank()
    again = MemoryBank.from_state_dict(bank.state_dict())
    assert torch.equal(again.vectors, bank.vectors)
    with pytest.raises(ValueError):
        MemoryBank(torch.ones(1, 4))
