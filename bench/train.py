"""Training speed: the data pipeline, the model step, the whole loop, and the CPU's matmul peak.

Prints, measured in one run on this machine:

* windows/s of the data pipeline alone: random 640-frame windows read from the
  memory-mapped store of a scanned library, normalised and batched;
* windows/s of the default model's training step (forward, backward, Adam) on
  random tensors, in bfloat16 autocast and in float32, channels-last;
* windows/s of the whole training loop (one pretraining epoch, data included; one view,
  reconstruction only, as the model step);
* the model's training FLOP per window, the GFLOP/s achieved, and the GFLOP/s of a
  large matrix product in the same precision, as the ratio achieved / peak;
* windows/s of a few model sizes, to show why the default was chosen.

    python bench/train.py --home LIBRARY_HOME          # a scanned library (e.g. realmusic)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import run_main, table  # noqa: E402

from reform import Library  # noqa: E402
from reform.config import PRESETS, ModelConfig, TrainConfig  # noqa: E402
from reform.dataset import Windows, fit_normaliser  # noqa: E402
from reform.losses import aux_weights, pretrain_loss  # noqa: E402
from reform.model import PretrainAutoencoder, training_flops  # noqa: E402
from reform.loader import Step, device_scale, steps  # noqa: E402
from reform.objectives import PretrainObjective  # noqa: E402
from reform.train import run_epoch  # noqa: E402


def data_pipeline(windows: Windows, batch: int, seconds: float = 5.0) -> float:
    n, start, epoch = 0, time.perf_counter(), 0
    scale = device_scale(windows.normaliser, torch.device("cpu"))
    while time.perf_counter() - start < seconds:
        epoch += 1
        for batch_ in windows.pretrain_batches(seed=0, epoch=epoch, batch_size=batch):
            Step.of(batch_, scale)
            n += len(batch_.x)
    return n / (time.perf_counter() - start)


def model_step(cfg: ModelConfig, precision: str, batch: int, steps: int = 6) -> float:
    torch.manual_seed(0)
    model = PretrainAutoencoder(cfg).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(batch, 1, cfg.n_mels, cfg.window_frames).contiguous(memory_format=torch.channels_last)
    mask = torch.ones(batch, 1, 1, cfg.window_frames)
    weights = aux_weights(0.25, cfg.n_layers - 1)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            out = model(x)
        loss, _ = pretrain_loss(out, x, mask, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def matmul_peak(dtype: torch.dtype, n: int = 4096, reps: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="a scanned library home")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # the loop trains what the model step times: one view, reconstruction only (as bench/gpu.py)
    cfg, tcfg = ModelConfig(), dataclasses.replace(TrainConfig(), batch_size=args.batch, **PRESETS["recon"])

    with Library(args.home, create=False) as lib:
        songs = lib.training_songs()
        windows = Windows(lib.home.spectrograms, songs, fit_normaliser(lib.home.spectrograms, songs))
        data = data_pipeline(windows, args.batch)
        step_bf16 = model_step(cfg, "bfloat16", args.batch)
        step_fp32 = model_step(cfg, "float32", args.batch)
        model = PretrainAutoencoder(cfg).to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        objective = PretrainObjective(tcfg, cfg.n_layers - 1, windows.normaliser)
        start = time.perf_counter()
        batches = steps(windows, windows.pretrain_plan(0, 1, args.batch, objective.views), torch.device("cpu"))
        _, seen = run_epoch(model, opt, batches, objective, lambda n: None)
        loop = seen / (time.perf_counter() - start)
    flops = training_flops(PretrainAutoencoder(cfg), cfg)
    peak_bf16, peak_fp32 = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)
    print(f"{len(songs)} songs, batch {args.batch}, {args.threads} threads, model widths {cfg.widths}, "
          f"embedding {cfg.embedding_dim}\n")
    print(table(["what", "windows/s", "note"], [
        ["data pipeline (store reads, normalise, batch)", f"{data:.0f}", f"{data / step_bf16:.0f}x the model step"],
        ["model step, bfloat16 autocast", f"{step_bf16:.1f}", "random tensors"],
        ["model step, float32", f"{step_fp32:.1f}", f"bfloat16 is {step_bf16 / step_fp32:.2f}x faster"],
        ["whole training loop (bfloat16, one epoch)", f"{loop:.1f}", f"{loop / step_bf16:.0%} of the model step"],
    ]))
    print()
    print(table(["precision", "training GFLOP/window", "achieved GFLOP/s", "matmul peak GFLOP/s", "achieved/peak"], [
        ["bfloat16", f"{flops / 1e9:.2f}", f"{step_bf16 * flops / 1e9:.0f}", f"{peak_bf16:.0f}",
         f"{step_bf16 * flops / 1e9 / peak_bf16:.0%}"],
        ["float32", f"{flops / 1e9:.2f}", f"{step_fp32 * flops / 1e9:.0f}", f"{peak_fp32:.0f}",
         f"{step_fp32 * flops / 1e9 / peak_fp32:.0%}"],
    ]))
    print()
    rows = []
    for widths in [(8, 16, 32, 64, 128), (16, 32, 64, 128, 256), cfg.widths, (16, 32, 64, 128, 256, 256)]:
        c = dataclasses.replace(cfg, widths=widths)
        params = sum(p.numel() for p in PretrainAutoencoder(c).parameters())
        rows.append([str(widths), f"{params / 1e6:.2f} M", f"{training_flops(PretrainAutoencoder(c), c) / 1e9:.2f}",
                     f"{model_step(c, 'bfloat16', args.batch):.1f}"])
    print(table(["encoder widths", "parameters (pretraining)", "GFLOP/window", "windows/s (bf16)"], rows))


if __name__ == "__main__":
    run_main(main)
