"""The ``reform`` command: thin sub-commands over the library functions.

Heavy modules (torch, the model) are imported inside the commands that need
them, so ``reform --help`` answers at once.  A ReformError becomes one plain
line on stderr and exit code 1; Ctrl-C exits with 130 after saving what was
done; tracebacks appear only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .errors import ReformError


def _library(args: argparse.Namespace, create: bool = False):
    from .api import Library

    return Library(args.home, create=create)


def _print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


# -- commands ---------------------------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace) -> int:
    with _library(args, create=True) as lib:
        summary = lib.scan(*args.paths, jobs=args.jobs, progress=not args.quiet)
        _print_scan_summary(summary, lib)
    return 130 if summary.interrupted else 0


def _print_scan_summary(summary, lib) -> None:
    if summary.interrupted:
        print(f"interrupted: {summary.analysed} songs analysed and saved; "
              "run `reform scan` again to continue")
        return
    if summary.analysed == 0 and summary.reused == 0 and summary.failed == 0 and summary.removed == 0:
        print(f"nothing to do: {summary.unchanged} songs unchanged, no audio decoded")
    else:
        rate = f" ({summary.songs_per_second:.1f} songs/s, " \
               f"{summary.audio_seconds / max(summary.wall_seconds, 1e-9):.0f}x realtime)" \
            if summary.analysed else ""
        print(f"analysed {summary.analysed} songs, {_hours(summary.audio_seconds)} of audio, "
              f"in {summary.wall_seconds:.1f} s{rate}")
        print(f"unchanged {summary.unchanged}, reused {summary.reused} (moved {summary.moved}), "
              f"removed {summary.removed}, failed {summary.failed}")
    if summary.failed_before:
        print(f"{summary.failed_before} files failed before and did not change: skipped")
    if summary.duplicates:
        print(f"{summary.duplicates} byte-identical duplicate files (shown once in recommendations)")
    status = lib.status()
    print(f"library: {status['songs']} songs, {status['hours']:.2f} h, {status['failed']} failed"
          + (" (see `reform errors`)" if status["failed"] else ""))


def cmd_status(args: argparse.Namespace) -> int:
    with _library(args) as lib:
        status = lib.status()
    if args.json:
        _print_json(status)
        return 0
    print(f"library home: {status['home']}")
    print(f"songs:        {status['songs']} ({status['hours']:.2f} h of audio)")
    print(f"failed:       {status['failed']}")
    print(f"duplicates:   {status['duplicates']}")
    print(f"features:     {status['feature_version']}")
    return 0


def cmd_errors(args: argparse.Namespace) -> int:
    with _library(args) as lib:
        failures = lib.failures()
    if args.json:
        _print_json([{"path": f.path, "reason": f.reason} for f in failures])
        return 0
    if not failures:
        print("no failures")
    for f in failures:
        print(f"{f.path}: {f.reason}")
    return 0


def _train_configs(args: argparse.Namespace):
    """Model and training settings from --preset and the explicit options (which win)."""
    import dataclasses

    from .config import PRESETS, ModelConfig, TrainConfig

    train = dict(PRESETS[args.preset])
    for option, name in (("lr", "learning_rate"), ("batch_size", "batch_size"),
                         ("cluster_batch_size", "cluster_batch_size"), ("aux_weight", "aux_weight"),
                         ("cluster_weight", "cluster_weight"), ("patience", "plateau_patience"),
                         ("threshold", "plateau_threshold"), ("max_epochs", "max_epochs"),
                         ("precision", "precision"), ("seed", "seed"), ("threads", "threads")):
        value = getattr(args, option)
        if value is not None:
            train[name] = value
    model = {}
    if args.widths:
        model["widths"] = tuple(int(w) for w in args.widths.split(","))
    if args.embedding_dim:
        model["embedding_dim"] = args.embedding_dim
    return dataclasses.replace(ModelConfig(), **model), dataclasses.replace(TrainConfig(), **train), train


def cmd_train(args: argparse.Namespace) -> int:
    from .progress import TrainProgress

    model_cfg, train_cfg, overrides = _train_configs(args)
    with _library(args) as lib:
        if args.resume:
            from .train import read_checkpoint_configs
            import dataclasses

            folder = lib.run_folder(args.name, resume=True)
            model_cfg, saved = read_checkpoint_configs(folder / "checkpoint.pt")
            explicit = {k: v for k, v in overrides.items() if k == "max_epochs" or k in ("threads",)}
            train_cfg = dataclasses.replace(saved, **explicit)
            print(f"resuming {folder}")
        init = lib.load_model(args.init) if args.init != "scratch" else None
        progress = TrainProgress(quiet=args.quiet)
        try:
            result = lib.train(name=args.name, phase=args.phase, resume=args.resume,
                               model_cfg=model_cfg, train_cfg=train_cfg, init=init,
                               callback=progress)
        finally:
            progress.close()
    for phase, reason in result.stop_reasons.items():
        print(f"{phase}: {reason}")
    print(f"model folder: {result.files.folder}")
    if result.files.model.exists():
        print(f"active model: {result.files.folder.name} (embed with `reform embed`)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    with _library(args, create=True) as lib:
        folder = lib.home.path / "demo-music"
        print(f"building the demo library in {folder} ...")
        demo.build(folder)
        summary = lib.scan(folder, jobs=args.jobs, progress=not args.quiet)
        _print_scan_summary(summary, lib)
        print()
        for song in lib.songs():
            print(f"  {song.artist} - {song.title} ({song.album}, {song.duration:.0f} s, "
                  f"{song.channels} ch)")
    return 0


# -- parser -------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reform", description="ReFORM: music recommendations learned from your own music.")
    parser.add_argument("--home", default=None,
                        help="library home folder (default: $REFORM_HOME or the user data folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="build a small synthetic library, scan it and show it")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("scan", help="analyse the music under folders (new and changed files only)")
    p.add_argument("paths", nargs="*", help="folders or files (default: the folders scanned before)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("train", help="train the auto-encoder on the library (both phases)")
    p.add_argument("--phase", choices=("all", "pretrain", "cluster"), default="all")
    p.add_argument("--preset", choices=("default", "note"), default="default",
                   help="'note': the design note's settings as written (Adam from 0.1)")
    p.add_argument("--name", help="name of the run folder under <home>/models (default: a time stamp)")
    p.add_argument("--resume", action="store_true", help="continue the newest (or --name) run")
    p.add_argument("--init", default="scratch",
                   help="start from 'scratch', the 'shipped' model, or a model file (fine-tuning)")
    p.add_argument("--max-epochs", type=int, help="cap on the epochs of each phase")
    p.add_argument("--lr", type=float, help="initial learning rate of both phases")
    p.add_argument("--batch-size", type=int, help="windows per pretraining step")
    p.add_argument("--cluster-batch-size", type=int, help="windows of one song per clustering step")
    p.add_argument("--aux-weight", type=float, help="scale of each auxiliary reconstruction loss")
    p.add_argument("--cluster-weight", type=float, help="scale of the clustering loss (lambda)")
    p.add_argument("--patience", type=int, help="epochs without improvement that make a plateau")
    p.add_argument("--threshold", type=float, help="relative improvement that counts")
    p.add_argument("--widths", help="channels of the convolutional layers, e.g. 16,32,64,128,128,128")
    p.add_argument("--embedding-dim", type=int, help="size of the embedding")
    p.add_argument("--precision", choices=("bfloat16", "float32"))
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("status", help="what the library holds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("errors", help="every file that could not be analysed, with the reason")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_errors)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.home is None:
        args.home = os.environ.get("REFORM_HOME") or None
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except ReformError as exc:
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
