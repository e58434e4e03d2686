"""The running average of a model's weights that a phase hands on (``--ema``)."""

import pytest
import torch

from conftest import tiny_model_config
from reform import Library
from reform.average import WeightAverage
from reform.checkpoint import load
from reform.config import TrainConfig


def _model():
    return torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))


def test_the_average_folds_in_each_step_with_the_decay_and_copies_counts():
    model = _model()
    with torch.no_grad():
        model[0].weight.fill_(0.0)
    average = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    model[1].num_batches_tracked.fill_(7)
    average.update()
    torch.testing.assert_close(average.state["0.weight"], torch.full((1, 2), 0.1))
    average.update()
    torch.testing.assert_close(average.state["0.weight"], torch.full((1, 2), 0.19))
    assert average.state["1.num_batches_tracked"].item() == 7
    average.apply()
    torch.testing.assert_close(model[0].weight, torch.full((1, 2), 0.19))


def test_an_average_resumes_from_its_saved_state():
    model = _model()
    saved = {name: torch.full_like(value, 2) for name, value in model.state_dict().items()}
    average = WeightAverage(model, decay=0.5, state=saved)
    with torch.no_grad():
        model[0].weight.fill_(4.0)
    average.update()
    torch.testing.assert_close(average.state_dict()["0.weight"], torch.full((1, 2), 3.0))


@pytest.mark.parametrize("decay", [0.0, 1.0])
def test_a_decay_outside_the_open_interval_is_refused(decay):
    with pytest.raises(ValueError):
        WeightAverage(_model(), decay)


def test_a_phase_hands_on_the_average_and_its_checkpoint_keeps_both(home):
    cfg = TrainConfig(max_epochs=3, batch_size=4, plateau_patience=50, seed=1, learning_rate=3e-3,
                      threads=1, ema=0.5)
    with Library(home, create=False) as lib:
        result = lib.train(name="avg", phase="pretrain", model_cfg=tiny_model_config(), train_cfg=cfg)
    saved = load(result.files.checkpoint)
    handed_on = load(result.files.pretrain)["state_dict"]
    assert handed_on.keys() == saved["average"].keys() == saved["model_state"].keys()
    for name, value in handed_on.items():
        torch.testing.assert_close(value, saved["average"][name], rtol=0, atol=0)
    weight = "encoder.layers.0.0.weight"
    assert not torch.equal(saved["average"][weight], saved["model_state"][weight])
