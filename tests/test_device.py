"""Device choice, the background batch loader, and CPU/GPU agreement (where a GPU exists)."""

import shutil

import numpy as np
import pytest
import torch

from conftest import tiny_model_config
from reform import Library
from reform.config import TrainConfig
from reform.dataset import BatchPlan, Windows, fit_normaliser
from reform.device import autocast, on_gpu, resolve
from reform.errors import ConfigError
from reform.loader import Step, device_scale, steps

HAS_CUDA = torch.cuda.is_available()


def test_auto_is_the_cpu_without_a_gpu_and_unknown_names_are_refused():
    if not HAS_CUDA:
        assert resolve("auto").type == "cpu" and not on_gpu("auto")
    assert resolve("cpu").type == "cpu" and not on_gpu("cpu")
    with pytest.raises(ConfigError):
        resolve("tpu")


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_says_so():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve("cuda")


def test_autocast_is_bfloat16_on_the_cpu_and_off_for_float32():
    x = torch.randn(4, 4)
    with autocast(torch.device("cpu"), "bfloat16"):
        assert (x @ x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "float32"):
        assert (x @ x).dtype == torch.float32


def test_the_reading_thread_gives_exactly_the_planned_batches_in_order(scanned):
    with Library(scanned, create=False) as lib:
        songs = lib.training_songs()
        windows = Windows(lib.home.spectrograms, songs, fit_normaliser(lib.home.spectrograms, songs))
        plans = windows.pretrain_plan(seed=3, epoch=2, batch_size=3, views=2)
        scale = device_scale(windows.normaliser, torch.device("cpu"))
        here = [Step.of(windows.load(plan), scale) for plan in plans]
        there = list(steps(windows, plans, torch.device("cpu")))
    assert len(here) == len(there) == len(plans)
    for a, b in zip(here, there):
        assert torch.equal(a.x, b.x) and torch.equal(a.x2, b.x2) and torch.equal(a.songs, b.songs)
        assert b.x.is_contiguous(memory_format=torch.channels_last)


def test_a_step_normalises_the_stored_windows_and_zeroes_the_padding(scanned):
    with Library(scanned, create=False) as lib:
        songs = lib.training_songs()
        norm = fit_normaliser(lib.home.spectrograms, songs)
        windows = Windows(lib.home.spectrograms, songs, norm)
        short = next(i for i, s in enumerate(songs) if s.frames < 640)
        plan = BatchPlan(((short, 0), (1 - short % 2, 0)), (5,), views=2)
        batch = windows.load(plan)
    step = Step.of(batch, device_scale(norm, torch.device("cpu")))
    assert step.x.shape == step.x2.shape == (2, 1, 128, 640) and step.x.dtype == torch.float32
    assert step.x.is_contiguous(memory_format=torch.channels_last)
    for x, raw, mask in ((step.x, batch.x, batch.mask), (step.x2, batch.x2, batch.mask2)):
        expected = (raw.astype(np.float32) - norm.mean) / norm.std * (mask[:, 0, 0, :, None] > 0)
        np.testing.assert_array_equal(x[:, 0].numpy(), expected.transpose(0, 2, 1))
    frames = songs[short].frames
    assert (step.x[0, :, :, frames:] == 0).all() and (step.x[0, :, :, :frames] != 0).any()
    # the probe's and the bank's windows, normalised in numpy, are the same numbers
    np.testing.assert_array_equal(windows.normalised(batch.x, batch.mask), step.x.numpy())


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device: the CPU/GPU agreement needs one")
def test_cpu_and_gpu_give_the_same_first_epoch_losses(scanned, tmp_path):
    losses = {}
    for device in ("cpu", "cuda"):
        home = tmp_path / device
        shutil.copytree(scanned, home)
        cfg = TrainConfig(max_epochs=1, batch_size=4, cluster_batch_size=4, seed=1, precision="float32",
                          contrast_weight=1.0, gain_db=6.0, stripe_frames=32, cluster_loss="bank")
        with Library(home, create=False) as lib:
            result = lib.train(name="run", model_cfg=tiny_model_config(), train_cfg=cfg, device=device)
        losses[device] = np.array([h["total"] for h in result.history if h.get("epoch")])
    np.testing.assert_allclose(losses["cpu"], losses["cuda"], rtol=2e-2)
