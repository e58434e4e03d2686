"""Crash-safe writes: all or nothing, one WriteError with a hint, no temporary file left."""

import errno
import math
import os

import numpy as np
import pytest

from reform.errors import WriteError
from reform.files import (finite, json_text, remove_dead_temporaries, replacing, temporary_name,
                          write_error, write_text, writer_alive)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "card.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with replacing(target, "w") as f:
            f.write("half of the new")
            raise RuntimeError("killed half-way")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["card.json"]


def test_a_full_disk_is_one_write_error_with_a_hint(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    with pytest.raises(WriteError) as err:
        with replacing(tmp_path / "x", "wb") as f:
            os.dup2(os.open("/dev/full", os.O_WRONLY), f.fileno())  # every write fails: ENOSPC
            f.write(b"x" * 100_000)
    assert "No space left on device" in err.value.message and "free some disk space" in err.value.hint
    assert os.listdir(tmp_path) == []


def test_a_checkpoint_on_a_full_disk_is_one_write_error(tmp_path, monkeypatch):
    """torch.save into a file that fills up part-way fails with an opaque RuntimeError
    ("unexpected pos"); a checkpoint must fail as every other write does, leaving nothing."""
    from contextlib import contextmanager

    import torch

    from reform import checkpoint

    real = checkpoint.replacing

    class FillsUp:
        """The open file of a disk with 1000 bytes left."""

        def __init__(self, f):
            self.f, self.left = f, 1000

        def write(self, data):
            if len(data) > self.left:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.left -= len(data)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    @contextmanager
    def on_a_full_disk(path, *args, **kwargs):
        with real(path, *args, **kwargs) as f:
            yield FillsUp(f)

    monkeypatch.setattr(checkpoint, "replacing", on_a_full_disk)
    with pytest.raises(WriteError) as err:
        checkpoint.save_atomic({"weights": torch.zeros(100_000)}, tmp_path / "checkpoint.pt")
    assert "free some disk space" in err.value.hint and os.listdir(tmp_path) == []


def test_write_error_hints():
    assert "writable" in write_error(OSError(errno.EROFS, "Read-only file system"), "/x").hint
    assert write_error(OSError(errno.EIO, "I/O error"), "/x").message == "cannot write the file (I/O error)"


def test_temporary_names_tell_live_writers_from_dead_ones(tmp_path):
    mine = temporary_name(tmp_path / "a.npy")
    assert mine.name.startswith(".a.npy.tmp-") and writer_alive(mine)
    dead = tmp_path / f".a.npy.tmp-{2 ** 22 + 12345}-1"  # above Linux's largest process id
    assert not writer_alive(dead) and not writer_alive(tmp_path / "a.npy")


def test_a_killed_writers_temporary_file_is_removed_a_live_ones_kept(tmp_path):
    live = temporary_name(tmp_path / "checkpoint.pt")
    dead = tmp_path / f".checkpoint.pt.tmp-{2 ** 22 + 1}-1"
    for p in (live, dead, tmp_path / "checkpoint.pt"):
        p.write_bytes(b"x")
    assert remove_dead_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "checkpoint.pt"])


def test_json_never_holds_nan_or_infinity():
    data = {"loss": float("nan"), "x": [1.0, float("inf"), np.float32("nan"), np.float64(2.5)],
            "v": np.array([1.0, np.nan]), "n": 3, "s": "NaN"}
    assert finite(data) == {"loss": None, "x": [1.0, None, None, 2.5], "v": [1.0, None], "n": 3, "s": "NaN"}
    assert json_text({"a": -math.inf}) == '{"a": null}'


def test_a_replaced_file_has_its_folder_synced_after_the_rename(tmp_path, monkeypatch):
    """The file was fsynced and renamed, its folder never: a power cut could undo the rename
    (a new models/active, folders.json or playlist gone after a clean exit)."""
    import stat

    synced = []
    real = os.fsync

    def spy(fd):
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), sorted(os.listdir(tmp_path))))
        return real(fd)
    monkeypatch.setattr(os, "fsync", spy)
    with replacing(tmp_path / "active", "w") as f:
        f.write("run-1\n")
    assert synced[0][0] is False and synced[-1] == (True, ["active"])   # the folder, once the rename is in it
