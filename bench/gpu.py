"""Training and embedding speed on a GPU (or, for checking the script, on the CPU).

Prints, measured in one run on the machine it runs on:

* windows/s of the default model's pretraining step (forward, backward, Adam) on
  random tensors at batch 32 and 512, of the clustering step (one song's 16 windows),
  and of the fused inference encoder at batch 2048 (and the songs/s that means);
* the TFLOP/s achieved by the pretraining step and its share of a large bfloat16
  matrix product measured on the same device (the practical peak);
* windows/s of the data pipeline (planned batches read from the memory-mapped store by
  the loader's reading thread) and of the whole training loop, as a share of the
  model-only step; beside it the same loop on one batch kept on the device (no loading at
  all), and the loop reading every loss term each step, as it did before;
* a short real training run (both phases, a few epochs) on a scanned library.

    python bench/gpu.py --home LIBRARY_HOME [--device cuda] [--epochs 3]

On a machine without a GPU, ``--device cpu --quick`` runs every part with small sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import run_main, table  # noqa: E402

from reform import Library  # noqa: E402
from reform.config import PRESETS, ModelConfig, TrainConfig  # noqa: E402
from reform.dataset import BatchPlan, Windows, fit_normaliser  # noqa: E402
from reform.device import autocast, describe, resolve  # noqa: E402
from reform.loader import steps  # noqa: E402
from reform.losses import aux_weights, cluster_loss, masked_mse, pretrain_loss  # noqa: E402
from reform.model import (ClusterAutoencoder, PretrainAutoencoder, inference_encoder,  # noqa: E402
                          training_flops)
from reform.objectives import PretrainObjective  # noqa: E402
from reform.train import Trainer, run_epoch  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, reps: int) -> float:
    """Seconds per call of ``fn`` after as many warm-up calls: with one warm-up call and ten
    timed ones, the H200's batch-32 step came out 10-12 % below whole training loops timed
    later in the same run (an idle card starts at a low clock)."""
    for _ in range(reps):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / reps


def pretrain_step(cfg: ModelConfig, device: torch.device, batch: int, reps: int) -> float:
    torch.manual_seed(0)
    model = PretrainAutoencoder(cfg).to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(batch, 1, cfg.n_mels, cfg.window_frames, device=device).contiguous(
        memory_format=torch.channels_last)
    mask = torch.ones(batch, 1, 1, cfg.window_frames, device=device)
    weights = aux_weights(0.25, cfg.n_layers - 1)

    def step() -> None:
        with autocast(device, "bfloat16"):
            out = model(x)
        loss, _ = pretrain_loss(out, x, mask, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return batch / timed(step, device, reps)


def cluster_step(cfg: ModelConfig, device: torch.device, reps: int) -> float:
    model = ClusterAutoencoder(cfg).to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-4)
    x = torch.randn(16, 1, cfg.n_mels, cfg.window_frames, device=device).contiguous(
        memory_format=torch.channels_last)
    mask = torch.ones(16, 1, 1, cfg.window_frames, device=device)

    def step() -> None:
        with autocast(device, "bfloat16"):
            out = model(x)
        loss = masked_mse(out.reconstruction, x, mask) + cluster_loss(out.embedding)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return 16 / timed(step, device, reps)


@torch.inference_mode()
def inference(cfg: ModelConfig, device: torch.device, batch: int, reps: int) -> float:
    encoder = inference_encoder(PretrainAutoencoder(cfg).encoder).to(device, memory_format=torch.channels_last)
    x = torch.randn(batch, 1, cfg.n_mels, cfg.window_frames, device=device).contiguous(
        memory_format=torch.channels_last)

    def run() -> None:
        with autocast(device, "bfloat16"):
            encoder(x)

    return batch / timed(run, device, reps)


class ReadEveryStep:
    """The objective as the loop ran it before: every loss term read on the CPU each step,
    which makes the CPU wait for the device to finish the step."""

    def __init__(self, objective: PretrainObjective):
        self.objective = objective

    def __call__(self, model: torch.nn.Module, step) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, terms = self.objective(model, step)
        return loss, {name: torch.tensor(value.item()) for name, value in terms.items()}

    def after_step(self) -> None:
        self.objective.after_step()


def full_batches(windows: Windows, size: int, count: int, views: int) -> list[BatchPlan]:
    """``count`` planned batches of exactly ``size`` (song, channel) picks, drawn at random: a
    library with fewer channels than ``size`` repeats them (at other random places), so the
    loop trains at the batch size the model-only step is timed at (one pass of a small
    library would be one smaller batch)."""
    rng = np.random.default_rng(0)
    return [BatchPlan(tuple(windows.examples[j] for j in rng.integers(len(windows.examples), size=size)),
                      (0, 0, 0, b), views) for b in range(count)]


def loop_speed(cfg: ModelConfig, device: torch.device, objective, batches) -> float:
    """Windows/s of ``run_epoch`` over ``batches`` (a callable giving a fresh iterator) after
    a warm-up epoch over the first two."""
    torch.manual_seed(0)
    model = PretrainAutoencoder(cfg).to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    run_epoch(model, opt, itertools.islice(batches(), 2), objective, lambda n: None)
    sync(device)
    start = time.perf_counter()
    _, seen = run_epoch(model, opt, batches(), objective, lambda n: None)
    sync(device)
    return seen / (time.perf_counter() - start)


def matmul_peak(device: torch.device, n: int, reps: int) -> float:
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    return 2 * n ** 3 / timed(lambda: a @ b, device, reps) / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="a scanned library (a few dozen songs are enough)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--epochs", type=int, default=3, help="epochs per phase of the real training run")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script on a CPU")
    args = parser.parse_args()
    device = resolve(args.device)
    cfg = ModelConfig()
    big, infer_batch, reps = (8, 16, 1) if args.quick else (512, 2048, 30)
    print(f"device: {describe(device)}; torch {torch.__version__}\n")

    small = 4 if args.quick else 32
    step32 = pretrain_step(cfg, device, small, reps)
    step_big = pretrain_step(cfg, device, big, reps)
    step_cluster = cluster_step(cfg, device, reps)
    infer = inference(cfg, device, infer_batch, reps)
    flops = training_flops(PretrainAutoencoder(cfg), cfg)
    peak = matmul_peak(device, 8192 if device.type == "cuda" else 2048, reps)

    with Library(args.home, create=False) as lib:
        songs = lib.training_songs()
        windows = Windows(lib.home.spectrograms, songs, fit_normaliser(lib.home.spectrograms, songs))
        # the loop is compared with the model-only step, so it runs the same objective
        # (reconstruction only); the real run below trains with the default settings
        recon = dataclasses.replace(TrainConfig(), **PRESETS["recon"])
        objective = PretrainObjective(recon, cfg.n_layers - 1, windows.normaliser, device)
        # enough windows that the first batches do not decide the figure
        plans = full_batches(windows, small, 4 if args.quick else max(8, -(-8192 // small)), objective.views)
        start = time.perf_counter()
        n = sum(len(s) for s in steps(windows, plans, device))
        sync(device)
        data = n / (time.perf_counter() - start)
        loop = loop_speed(cfg, device, objective, lambda: steps(windows, plans, device))
        before = loop_speed(cfg, device, ReadEveryStep(objective), lambda: steps(windows, plans, device))
        resident = next(steps(windows, plans[:1], device))
        on_device = loop_speed(cfg, device, objective, lambda: itertools.repeat(resident, len(plans)))

        with tempfile.TemporaryDirectory() as folder:
            trainer = Trainer(lib.home.spectrograms, songs, Path(folder) / "run", model_cfg=cfg,
                              train_cfg=dataclasses.replace(TrainConfig(), max_epochs=args.epochs),
                              feature_version=lib.home.spectrograms.feature_version,
                              device=device.type)
            start = time.perf_counter()
            result = trainer.run("all")
            real = time.perf_counter() - start
        windows_real = sum(h["windows"] for h in result.history if h.get("epoch"))

    def share(speed: float) -> str:
        return f"{speed / step32:.0%} of the model-only step" if not args.quick else "(--quick: not comparable)"

    print(table(["what", "windows/s", "note"], [
        [f"pretraining step, batch {small}", f"{step32:.0f}", f"{step32 * flops / 1e12:.2f} TFLOP/s"],
        [f"pretraining step, batch {big}", f"{step_big:.0f}",
         f"{step_big * flops / 1e12:.2f} TFLOP/s, {step_big * flops / 1e12 / peak:.1%} of the matmul peak"],
        ["clustering step, one-song batch of 16", f"{step_cluster:.0f}", ""],
        [f"inference encoder (batch norm folded), batch {infer_batch}", f"{infer:.0f}",
         f"about {infer / 60:.0f} songs/s at 60 windows per song"],
        ["data pipeline (one reading thread)", f"{data:.0f}", f"{data / step32:.1f}x the batch-{small} step"],
        [f"whole pretraining loop, batch {small}", f"{loop:.0f}", share(loop)],
        [f"the loop on one batch kept on the device (no loading), batch {small}", f"{on_device:.0f}",
         share(on_device)],
        ["the loop reading every loss term each step (before)", f"{before:.0f}",
         share(before)],
        [f"real training, {len(songs)} songs ({len(windows.examples)} channels), both phases, "
         f"{args.epochs} epochs each",
         f"{windows_real / real:.0f}", f"{real:.0f} s in all (default settings: two views per window)"],
    ]))
    print(f"\nbfloat16 matmul peak measured on this device: {peak:.1f} TFLOP/s; "
          f"training FLOP per window: {flops / 1e9:.2f} G")


if __name__ == "__main__":
    run_main(main)
