"""The ``reform`` command: thin sub-commands over the library functions.

Heavy modules (torch, the model) are imported inside the commands that need
them, so ``reform --help`` answers at once.  A ReformError becomes one plain
line on stderr, a hint line and exit code 1; a nonsense option value is refused
by the parser (exit code 2) before any work; Ctrl-C exits with 130 after saving
what was done (SIGTERM the same, with 143); tracebacks appear only with
``--verbose``.  The global options (``--home``, ``-q``, ``-v``) may come before
or after the sub-command.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import difflib
import importlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .errors import (ClusterError, ConfigError, DatasetError, DecodeError, EmbedError, EvaluateError, FeatureError,
                     LibraryError, ModelError, PlayerError, QueryError, ReformError, StoreError,
                     TrainError, WriteError)
from .text import RENAME_HINT, UNNAMED_REASON, agree, listing, naming_home, one_line, plural, shown

# The hint printed for an error raised without one, by the error's kind.
HINTS = {
    ConfigError: "`reform {command} --help` lists the options",
    LibraryError: "check the folder, or choose the library home with --home",
    DecodeError: "check that the file plays in another player",
    FeatureError: "check that the file holds at least a second of sound",
    StoreError: "run `reform scan` again; --verbose shows the details",
    DatasetError: "scan more music first with `reform scan FOLDER`",
    ClusterError: "the README's section on scanning with Ray says what a cluster needs",
    ModelError: "`reform models` lists the models; `reform use shipped` returns to the shipped one",
    TrainError: "run the command again with --verbose to see why",
    EmbedError: "run `reform embed`",
    QueryError: "try other words, or give the path of the file",
    EvaluateError: "scan more music, or check the labels",
    PlayerError: "check that the player runs, and where it listens",
    ReformError: "run the command again with --verbose for the details",
}


def hint_for(exc: ReformError, command: str | None) -> str:
    """The error's own hint, else the one for its kind."""
    if exc.hint:
        return exc.hint
    kind = next(k for k in type(exc).__mro__ if k in HINTS)
    return HINTS[kind].format(command=command or "COMMAND")


def _catalogue_path(args: argparse.Namespace) -> Path:
    """Where the home's catalogue is, for the checks made before the library is opened."""
    from .config import default_home
    from .store import CATALOGUE_NAME

    return Path(args.home or default_home()).expanduser() / CATALOGUE_NAME


def _library(args: argparse.Namespace, create: bool = False, read_only: bool = False,
             reanalyse: bool = False):
    from .api import Library

    lib = Library(args.home, create=create, read_only=read_only, reanalyse=reanalyse)
    if getattr(args, "command", None) not in ("check", "scan", "status", "demo") and lib.home.unfinished():
        # an interrupted repair: "the library is empty" would send the user to scan from scratch
        print("note: this library's catalogue was made again and not all its songs are back yet: "
              "`reform check --repair` adds them back", file=sys.stderr)
    return lib


def _print_json(data) -> None:
    # allow_nan=False: NaN is not JSON; nothing non-finite may reach this point (a test checks)
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def _invocation() -> str:
    """How to run reform again from here: ``reform`` when that is on the PATH and is this
    program, else the path it was started by (``.venv/bin/reform`` after ``make demo``)."""
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(script) == "reform" and os.path.isfile(script):
        found = shutil.which("reform")
        if found and os.path.samefile(found, script):
            return "reform"
        return _shortest(script)
    return f"{_shortest(sys.executable)} -m reform"


def _shortest(path: str) -> str:
    rel = os.path.relpath(path)
    if rel.startswith(".."):
        return path
    return rel if os.sep in rel else os.path.join(".", rel)


# -- option values ------------------------------------------------------------------------------------
def count(minimum: int = 1, maximum: int | None = None, why: str = ""):
    """An argparse type: a whole number of at least ``minimum`` (and at most ``maximum``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"give a whole number, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}{why}, not {value}")
        return value
    parse.__name__ = "count"
    return parse


def number(text: str) -> float:
    """An argparse type: a finite number (NaN or infinity reached the settings, which named their
    field, not the option)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a number, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def seconds(text: str) -> float:
    """An argparse type: a duration in seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a number of seconds, not {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"cannot be negative ({text})")
    return value


def widths(text: str) -> tuple[int, ...]:
    """An argparse type: channel counts separated by commas, e.g. ``16,32,64``."""
    try:
        values = tuple(int(w) for w in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"give whole numbers above 0 separated by commas, "
                                         f"e.g. 16,32,64,128 (not {text!r})")
    return values


# -- commands ---------------------------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace) -> int:
    from .audio import AUDIO_EXTENSIONS, is_audio_path, unread_format
    from .device import cuda_possible
    from .home import FOLDERS_FILE, leftovers

    if args.ray and os.path.exists(os.path.expanduser(args.ray)):   # `scan --ray FOLDER`
        raise ConfigError(f"--ray takes a Ray cluster's address, and {args.ray} is a file or folder",
                          hint="put the folders first: reform scan FOLDER --ray [ADDRESS]")
    for path in args.paths:   # checked before a new home is made for nothing
        if not os.path.exists(path) and not args.forget_missing:   # (a gone folder may be forgotten)
            raise LibraryError("no such file or folder", path=path,
                               hint="check the name (a disk not mounted? mount it first)")
        if os.path.isfile(path) and not is_audio_path(path):
            raise LibraryError("a music format ReFORM does not read" if unread_format(path) else
                               "not an audio file (unknown extension)", path=path,
                               hint=f"give folders of music or audio files ({' '.join(sorted(AUDIO_EXTENSIONS))})")
    catalogue = _catalogue_path(args)
    if not catalogue.exists() and (args.paths or (catalogue.parent / FOLDERS_FILE).is_file()):
        left = leftovers(catalogue.parent)   # the catalogue was deleted: this scan builds a new one
        if left:
            print(f"this library's catalogue is missing ({left} remain): a new one is built, and "
                  "songs whose spectrograms are stored are added back without analysing them again")
    elif not args.paths and not catalogue.exists():
        raise LibraryError("no music folder is known yet", hint="run `reform scan FOLDER`")
    def say_device(todo: int) -> None:   # once the scan holds the library, and only if there is work
        if not todo or args.no_embed:
            return
        if args.ray is None:
            _print_device(args.device)
        else:
            print("device: cpu, in each Ray worker", flush=True)

    if args.ray is None and not args.no_embed and args.device != "cpu" and (args.device == "cuda" or cuda_possible()):
        _import_held("torch")   # a GPU may embed in this process: torch comes in now, and Ctrl-C waits for it
    with _library(args, create=True, reanalyse=args.reanalyse) as lib:
        try:   # named now: a `reform use` while the scan runs does not change the model it embeds with
            model = lib.models.name_of(lib.model_path())
        except ModelError:
            model = "the active model"
        followed = set(lib.home.roots())   # before the scan, which adds a folder new to the library
        if lib.home.scan_state() == "interrupted":
            print("going on with the scan that was interrupted: what it finished is kept", flush=True)
        summary = lib.scan(*args.paths, jobs=args.jobs, progress=not args.quiet,
                           embed=not args.no_embed, retry_failed=args.retry_failed,
                           forget_missing=args.forget_missing, device=args.device,
                           ray=False if args.ray is None else args.ray or True, on_start=say_device)
        status = _print_scan_summary(summary, lib, args.paths, args.retry_failed)
        if status is not None and not args.no_embed:
            _print_scan_embedding(summary, lib, status, model)
        if args.forget_missing:   # it forgets what is gone only: a folder still holding music stays
            for path in [p for p in args.paths if os.path.isdir(p) and os.path.abspath(p) in followed]:
                print(f"note: {shown(path)} is still there, so its songs stay; `reform forget {shown(path)}` "
                      "drops it from the library", file=sys.stderr)
    if summary.interrupted:
        return 130
    nothing = summary.found == 0 and not (summary.failed or summary.removed or summary.vanished or summary.elsewhere)
    return 1 if args.paths and nothing else 0   # a folder without music given: a slip of the folder


def _print_device(name: str) -> None:
    """Say where the model runs."""
    from .device import describe, on_gpu, resolve

    print(f"device: {describe(resolve(name)) if on_gpu(name) else 'cpu'}", flush=True)


# the smallest library on which training there measured better than the shipped model (README,
# "Training on a small library": libraries of 84 to 86 songs; at 56 to 58 the two tied on p@10)
TRAIN_TIP_SONGS = 84


def _print_scan_embedding(summary, lib, status: dict, model: str) -> None:
    """What the scan embedded (with ``model``), and what is left to embed; ``status`` is the
    library's after the scan (:meth:`reform.Library.status`, as the summary printed it)."""
    from .home import SHIPPED

    if summary.embedded:
        print(f"embedded {plural(summary.embedded, 'song')} with {model}")
        if status["model"]["name"] == SHIPPED and status["songs"] >= TRAIN_TIP_SONGS:
            print("tip: `reform train` learns this library's own music; on libraries of 84 songs and more its "
                  "recommendations beat the shipped model's")
    embedded = lib.embedding_status()
    if embedded["stored"] and embedded["current"] is False:
        print("the embeddings come from another model than the active one: run `reform embed`")
    elif embedded["missing"]:
        missing = embedded["missing"]
        print(f"{plural(missing, 'song')} {agree(missing, 'has', 'have')} no embedding from the "
              "active model: run `reform embed`")


def _print_unreached(summary) -> None:
    """The music folders a scan of a catalogue made again found no audio in, or the songs of
    folders it was not given (both kept unfinished)."""
    for folder in summary.unreached:
        print(f"{folder} holds no audio now (a disk not mounted, or the music moved?): the spectrograms of its "
              "songs are kept; `reform check --repair` adds them back once it is there again")
    if summary.waiting:
        print(f"{plural(summary.waiting, 'analysed song')} of the catalogue lost {agree(summary.waiting, 'is', 'are')} "
              "not back yet: `reform scan` each other music folder to add them back from their stored spectrograms "
              "(kept until then); `reform scan --forget-missing` once they are gone for good")


def _print_scan_summary(summary, lib, paths: Sequence[str] = (), retried: bool = False) -> dict | None:
    """Print what the scan did and what the library holds now; returns the library's status
    (None after an interrupted scan, which prints only how to go on)."""
    for given, known in summary.respelled.items():
        print(f"{given} is {known} under another name: scanned as {known}")
    if summary.interrupted:
        print(f"interrupted: {plural(summary.analysed, 'song')} analysed and saved; "
              "run `reform scan` again to continue")
        return None
    if summary.found == 0 and not summary.failed:
        from .audio import AUDIO_EXTENSIONS

        where = ", ".join(paths) if paths else "the library's folders"
        if summary.elsewhere:   # a folder of links to albums: their songs are the library's already
            print(f"no audio files found in {where} but through {plural(len(summary.elsewhere), 'link')} to folders "
                  f"elsewhere in the library, whose songs are scanned there: {listing(summary.elsewhere, 3)}")
        else:
            print(f"no audio files found in {where} (ReFORM reads {' '.join(sorted(AUDIO_EXTENSIONS))})")
        if summary.removed:
            print(f"removed {plural(summary.removed, 'song')} that {agree(summary.removed, 'was', 'were')} there")
    elif summary.analysed == 0 and summary.reused == 0 and summary.failed == 0 and summary.removed == 0:
        print(f"nothing to do: {plural(summary.unchanged, 'song')} unchanged, no audio decoded")
    else:
        rate = f" ({summary.songs_per_second:.1f} songs/s, " \
               f"{summary.audio_seconds / max(summary.wall_seconds, 1e-9):.0f}x realtime)" \
            if summary.analysed else ""
        print(f"analysed {plural(summary.analysed, 'song')}{summary.new_and_changed()}, "
              f"{_hours(summary.audio_seconds)} of audio, in {summary.wall_seconds:.1f} s{rate}")
        copies = summary.reused - summary.moved - summary.retagged - summary.resumed
        how = [f"{what} {n}" for what, n in (("moved", summary.moved), ("same audio in place", summary.retagged),
                                             ("copies of known audio", copies),
                                             ("analysed before an interruption", summary.resumed)) if n]
        print(f"unchanged {summary.unchanged}, reused {summary.reused}" + (f" ({', '.join(how)})" if how else "")
              + f", removed {summary.removed}, failed {summary.failed}")
    if summary.kept:
        kept = len(summary.kept)
        print(f"{plural(kept, 'song')} could not be read again and {agree(kept, 'keeps its', 'keep their')} "
              f"earlier analysis (the next scan tries again): "
              f"{listing([f'{shown(f.entry.path)} ({f.reason})' for f in summary.kept], 3)}")
    if summary.failed_before and retried:   # only paths that cannot be listed are left
        print(f"{plural(summary.failed_before, 'path')} still cannot be listed (see `reform errors`)")
    elif summary.failed_before:
        print(f"{plural(summary.failed_before, 'file')} failed before and did not change: skipped "
              "(`reform scan --retry-failed` tries them again)")
    _print_unreached(summary)
    for folder, songs in summary.vanished.items():
        print(f"{folder} holds no audio now (a disk not mounted, or the music moved?): its "
              f"{plural(songs, 'song')} {agree(songs, 'is', 'are')} kept. Moved: `reform scan NEW-FOLDER` "
              f"first (nothing is decoded again); then, or if it is gone for good, `reform scan --forget-missing "
              f"{shlex.quote(folder)}` forgets them")
    if summary.duplicates:
        print(f"{plural(summary.duplicates, 'duplicate file')} (the same audio as another, whatever the tags: "
              "shown once in recommendations)")
    if summary.damaged:
        print(f"{plural(summary.damaged, 'damaged file')} analysed, passing over what could not be read "
              "(see `reform errors`)")
    if summary.unread:
        print(f"skipped {plural(sum(summary.unread.values()), 'file')} in formats ReFORM does not read: "
              f"{summary.unread_kinds()}")
    if summary.unnamed:
        print(f"passed over {plural(len(summary.unnamed), 'name')} that {agree(len(summary.unnamed), 'is', 'are')} "
              f"not UTF-8 ({RENAME_HINT}):")
        for path in summary.unnamed:
            print(f"  {path}")
    status = lib.status()
    print(f"library: {plural(status['songs'], 'song')}, {status['hours']:.2f} h, {status['failed']} failed"
          + (" (see `reform errors`)" if status["failed"] else ""))
    return status


def cmd_forget(args: argparse.Namespace) -> int:
    with _library(args) as lib:
        forgotten = lib.forget(*args.folders)
    for given, known in forgotten.respelled.items():
        print(f"{shown(given)} is {shown(known)} under another name")
    for folder in forgotten.folders:
        print(f"no longer a music folder of the library: {shown(folder)}")
    for folder in forgotten.passed_over:
        print(f"scans pass over {shown(folder)} from now on (`reform scan {shlex.quote(folder)}` takes it back)")
    print(f"{plural(forgotten.songs, 'file')} left the library (the files themselves are untouched); "
          f"{forgotten.freed_bytes / 2**20:.1f} MiB of spectrograms freed")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with _library(args, read_only=True) as lib:
        status = lib.status()
    if args.json:
        _print_json(status)
        return 0
    emb = status["embeddings"]
    print(f"library home: {status['home']}")
    print(f"songs:        {status['songs']} ({status['hours']:.2f} h of audio)")
    print(f"failed:       {status['failed']}" + (" (see `reform errors`)" if status["failed"] else ""))
    if status["damaged"]:
        print(f"damaged:      {status['damaged']} (analysed, passing over what could not be read; "
              "see `reform errors`)")
    if status["unnamed"]:
        print(f"passed over:  {plural(status['unnamed'], 'name')} not UTF-8 (see `reform errors`)")
    print(f"duplicates:   {status['duplicates']}")
    if status["unfinished"]:   # a repair scans the known folders; with none known, it cannot
        print("catalogue:    made again, and not all its songs added back yet: " + (
            "run `reform check --repair`" if status["folders"] and not status["folders_unknown"] else
            "the music folders were not known: `reform scan FOLDER` each of them adds its songs back from their "
            "stored spectrograms (`reform scan --forget-missing` once the others are gone for good)"))
    for folder in status["missing_folders"]:
        print(f"music folder: {shown(folder)} is not there (a disk not mounted?): its songs are kept, and "
              "cannot be played until it is back")
    if status["scan"]:
        print("scan:         running now" if status["scan"] == "running" else
              "scan:         the last one was interrupted before it ended: `reform scan` goes on")
    model = status["model"]
    print(f"active model: {model['name']}" + (f" (version {model['version']})" if model["version"] else "")
          + (f": {model['problem']}; {model['hint'] or '`reform use shipped` goes back to the shipped model'}"
             if model["problem"] else ""))
    # embeddings are kept per recording: with duplicates, fewer than the songs above
    unit = "distinct recording" if status["duplicates"] else "song"
    if emb["songs"]:
        note = " (from another model than the active one: run `reform embed`)" if emb["current"] is False else ""
        print(f"embedded:     {emb['songs']} of {plural(emb['of'], unit)}{note}")
    elif emb["of"]:
        print(f"embedded:     none of {plural(emb['of'], unit)} (run `reform embed`)")
    elif not status["unfinished"]:   # (a catalogue made again says above what brings its songs back)
        print("embedded:     no song yet (run `reform scan FOLDER`)")
    print(f"features:     {status['feature_version']}")
    return 0


def cmd_errors(args: argparse.Namespace) -> int:
    with _library(args, read_only=True) as lib:
        failures, damaged, unnamed = lib.failures(), lib.damaged(), lib.unnamed()
    if args.json:   # a name not UTF-8 with its bytes written out, as JSON cannot hold them raw
        _print_json([{"path": f.path, "reason": f.reason, "analysed": f.status == "ok"}
                     for f in failures + damaged]
                    + [{"path": shown(name), "reason": UNNAMED_REASON, "analysed": False} for name in unnamed])
        return 0
    if not failures and not unnamed:
        print("no failures")
    for f in failures:
        print(f"{shown(f.path)}: {f.reason}")
    if unnamed:
        print(f"\npassed over, {plural(len(unnamed), 'name')} not UTF-8 ({RENAME_HINT}):")
        for name in unnamed:
            print(shown(name))
    if damaged:
        print(f"\nanalysed, passing over what could not be read ({plural(len(damaged), 'file')}):")
        for f in damaged:
            print(f"{shown(f.path)}: {f.reason}")
    return 0


# Training options: (flag, TrainConfig field, type, help).  The parser and the mapping onto
# the configuration are both made from this one table.
TRAIN_OPTIONS: tuple[tuple[str, str, Callable, str], ...] = (
    ("--max-epochs", "max_epochs", count(1), "cap on the epochs of each phase"),
    ("--lr", "learning_rate", number, "initial learning rate (both phases, unless --cluster-lr)"),
    ("--cluster-lr", "cluster_learning_rate", number, "initial learning rate of the clustering phase"),
    ("--batch-size", "batch_size", count(2), "windows per pretraining step"),
    ("--cluster-batch-size", "cluster_batch_size", count(2), "windows of one song per clustering batch"),
    ("--cluster-songs", "cluster_songs", count(1),
     "one-song batches per clustering step (with N processes: a multiple of N; default 1, or N)"),
    ("--aux-weight", "aux_weight", number, "scale of each auxiliary reconstruction loss"),
    ("--weight-decay", "weight_decay", number, "AdamW's decay of the weights per step, times the rate "
     "(0: plain Adam)"),
    ("--ema", "ema", number, "each phase keeps a running average of its weights with this decay per step "
     "(0: the last step's weights)"),
    ("--contrast-weight", "contrast_weight", number,
     "scale of the pretraining song-contrast term (0: reconstruction only, as the note)"),
    ("--temperature", "temperature", number, "softmax temperature of the contrast and bank losses"),
    ("--contrast-prior", "contrast_prior", number,
     "debiased contrast: assumed chance that another song is of the same kind (0: plain contrast)"),
    ("--album-share", "album_share", number,
     "contrast: share of a window's target given to other songs of its album (album tags; 0: none)"),
    ("--gain-db", "gain_db", number, "augmentation: random gain within +-this many dB"),
    ("--eq-db", "eq_db", number, "augmentation: random smooth equalisation within +-this many dB"),
    ("--pitch-bins", "pitch_bins", int, "augmentation: shift the mel bands by up to this many bins"),
    ("--stretch", "stretch", number, "augmentation: tempo up to 1 + this many times faster or slower"),
    ("--mix", "mix", number, "pretraining augmentation: a random other song mixed in underneath, up to this share"),
    ("--stripe-frames", "stripe_frames", int, "masked reconstruction: widest hidden time stripe"),
    ("--stripe-bins", "stripe_bins", int, "masked reconstruction: widest hidden frequency stripe"),
    ("--stripes", "stripes", int, "hidden stripes of each kind per window"),
    ("--cluster-weight", "cluster_weight", number, "scale of the clustering loss (lambda)"),
    ("--bank-momentum", "bank_momentum", number, "bank loss: weight of a song's old vector in an update"),
    ("--bank-neighbours", "bank_neighbours", int, "bank loss: nearest songs counted as soft positives"),
    ("--bank-soft", "bank_soft", number, "bank loss: share of the target given to those neighbours"),
    ("--patience", "plateau_patience", count(1), "epochs without improvement that make a plateau"),
    ("--threshold", "plateau_threshold", number, "relative improvement that counts"),
    ("--seed", "seed", int, "random seed of the weights, windows and augmentations"),
    ("--threads", "threads", count(0, 4 * (os.cpu_count() or 1), " (four per core: more stall the run)"),
     "torch threads (default: all cores)"),
)
TRAIN_CHOICES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("--contrast-loss", "contrast_loss", ("infonce", "vicreg"),
     "pretraining's two-view term: the song contrast, or VICReg (views kept alike, no negatives)"),
    ("--cluster-loss", "cluster_loss", ("note", "bank"),
     "clustering loss: the note's MSE to the batch mean, or contrast with a bank of song vectors"),
    ("--bank-neighbourhood", "bank_neighbourhood", ("nearest", "mutual"),
     "bank loss: the soft positives are a song's nearest songs, or only those that count it among theirs"),
    ("--cluster-space", "cluster_space", ("raw", "unit"),
     "note's clustering loss on the raw embedding (the note) or on unit-length embeddings"),
    ("--precision", "precision", ("bfloat16", "float32"), "arithmetic of the training steps"),
)


def _train_configs(args: argparse.Namespace):
    """Model and training settings from --preset and the explicit options (which win); no model
    settings when none was given, so that a fine-tuned run takes its starting model's.  Changes
    that leave little of a window to learn from are refused here, before anything is said."""
    import dataclasses

    from .config import PRESETS, ModelConfig, TrainConfig

    train = dict(PRESETS[args.preset])
    for _, name, *_ in TRAIN_OPTIONS + TRAIN_CHOICES:
        value = getattr(args, name)
        if value is not None:
            train[name] = value
    model = {}
    if args.widths:
        model["widths"] = args.widths
    if args.embedding_dim:
        model["embedding_dim"] = args.embedding_dim
    if args.projection_dim is not None:
        model["projection_dim"] = args.projection_dim
    if args.pool_time:
        model["pool_time"] = True
    model_cfg = dataclasses.replace(ModelConfig(), **model) if model else None
    train_cfg = dataclasses.replace(TrainConfig(), **train)
    window = model_cfg or ModelConfig()   # a fine-tuned run's is its model's: the same window
    train_cfg.augment.check(window.n_mels, window.window_frames)
    return model_cfg, train_cfg


def _own_settings(folder: Path, args: argparse.Namespace, train_cfg):
    """The training settings of a run whose clustering phase is added to its pretraining
    (`train --phase cluster --name RUN`): the run's own, the options given winning; the defaults
    took their place (a run pretrained with batches of 8 and 2 epochs went on with 32 and 400).
    ``train_cfg`` where the run's checkpoint that holds them is lost."""
    import dataclasses

    from .config import PRESETS
    from .home import RunFiles
    from .train import read_checkpoint_plan

    checkpoint = RunFiles(folder).checkpoint
    if not checkpoint.exists():
        return train_cfg
    given = dict(PRESETS[args.preset]) if args.preset != "default" else {}   # a preset named, then the options
    given |= {name: getattr(args, name) for _, name, *_ in TRAIN_OPTIONS + TRAIN_CHOICES
              if getattr(args, name) is not None}
    return dataclasses.replace(read_checkpoint_plan(checkpoint)[1], **given)


RESUME_TAKES = ("max_epochs", "threads", "precision")   # what `train --resume` applies to the run


def _ignored_on_resume(args: argparse.Namespace) -> list[str]:
    """The options given to `train --resume` that the resumed run does not take (all but
    --max-epochs, which raises its cap, and those about the machine: --threads, --precision
    and --device)."""
    given = [flag for flag, name, *_ in TRAIN_OPTIONS + TRAIN_CHOICES
             if name not in RESUME_TAKES and getattr(args, name) is not None]
    given += [flag for flag, name in (("--widths", "widths"), ("--embedding-dim", "embedding_dim"),
                                      ("--projection-dim", "projection_dim"), ("--pool-time", "pool_time"))
              if getattr(args, name) is not None]
    given += ["--preset"] if args.preset != "default" else []
    given += ["--init"] if args.init != "auto" else []
    return given


def cmd_train(args: argparse.Namespace) -> int:
    from .config import FINE_TUNE_BELOW
    from .distributed import launched, main_process
    from .home import RunFiles, ended, faults
    from .progress import TrainProgress
    from .train import check_song_count

    model_cfg, train_cfg = _train_configs(args)
    main = main_process()   # under torchrun, rank 0 speaks, writes and holds the home's lock
    with _library(args, read_only=not main) as lib:
        if main and not _library_writable(args):   # said before any work or message
            raise LibraryError("the library home is not writable, and a training run is written there",
                               path=lib.home.path, hint="check that the library home is writable")
        if main:
            _print_device(args.device)   # an unusable device is refused before any other message
        songs = 0 if args.resume else len(lib.training_songs())
        if not args.resume:
            check_song_count(songs, train_cfg)
        folder = lib.run_folder(args.name, resume=args.resume)   # named now, to say how to go on
        if args.resume and main:
            print(f"resuming {folder} with its own settings")
            ignored = _ignored_on_resume(args)
            if ignored:   # they were dropped without a word; the run goes on as it was started
                print(f"note: {', '.join(ignored)} {agree(len(ignored), 'is', 'are')} not applied: a resumed run "
                      "keeps the settings it started with (a new --name starts a run with these)", file=sys.stderr)
        own = args.phase == "cluster" and not args.resume and RunFiles(folder).pretrain.exists()
        if own:
            if args.init != "auto":
                raise ConfigError(f"the run {folder.name} goes on from its own pretraining",
                                  hint="leave out --init, or give another --name for a new run")
            init = None   # the run's own pretraining, which the library loads as its start
            train_cfg = _own_settings(folder, args, train_cfg)
            if main:
                print(f"the clustering phase of {folder.name} goes on from its pretraining, with its settings")
        elif args.init != "auto":
            try:
                init = lib.load_model(args.init) if args.init != "scratch" else None
            except ModelError as exc:   # `reform use`'s hint names what use takes; --init takes two more
                if exc.message.startswith("no model named"):
                    raise ModelError(exc.message, path=exc.path, hint="--init takes 'auto', 'scratch', 'shipped', "
                                     "a run's name (`reform models` lists them) or a model.pt file") from None
                raise
        elif args.preset == "default" and model_cfg is None and not args.resume:
            init = lib.default_start()    # the shipped model has the default settings' architecture
            if main and init is not None:
                print(f"fine-tuning the shipped model: on libraries of fewer than {FINE_TUNE_BELOW} songs that "
                      "measured better than starting from random weights (--init scratch starts from them)")
        else:
            init = None
            if main and not args.resume and songs < FINE_TUNE_BELOW:
                # --init auto would fine-tune the shipped model here, which has the default settings' shape
                print("starting from random weights: the shipped model is trained with the default settings "
                      "and another preset or architecture cannot start from it")
        if main and launched():
            print(f"training on {os.environ['WORLD_SIZE']} processes (torchrun)", flush=True)
        progress = TrainProgress(quiet=args.quiet or not main)
        try:
            result = lib.train(name=folder.name, phase=args.phase, resume=args.resume,
                               model_cfg=model_cfg, train_cfg=train_cfg, init=init,
                               callback=progress, **({name: getattr(args, name) for name in RESUME_TAKES}
                                                     if args.resume else {}),
                               device=args.device, activate=args.activate)
        except KeyboardInterrupt:
            progress.close()
            if main:
                print(f"the run {folder.name} keeps its last finished epoch: `reform train --resume --name "
                      f"{folder.name}` goes on from there" if RunFiles(folder).checkpoint.exists() else
                      "no epoch had finished, so there is nothing to resume", file=sys.stderr)
            raise
        except WriteError as exc:   # a full disk: the same command again would be "trained already"
            if not RunFiles(folder).checkpoint.exists() or "run the command again" not in (exc.hint or ""):
                raise
            raise WriteError(exc.message, path=exc.path, hint=exc.hint.replace(
                "run the command again", f"`reform train --resume --name {folder.name}`")) from exc
        finally:
            progress.close()
        name = result.files.folder.name
        chosen = lib.models.active_name()
        active = chosen == name
        # a model written again with the same weights (a lost model.pt, from its checkpoint) has them
        embedded = active and lib.embedding_status(count_missing=False)["current"] and not lib.stale_embeddings()
    if not main:
        return 0
    for phase, reason in result.stop_reasons.items():
        # a resume goes on with the phase it stopped in: a higher cap does not reopen an ended one
        print(f"{phase}: {reason}" + (", before this resume" if phase in result.earlier else ""))
    failed = faults(result.history)
    for phase, why in failed.items():
        print(f"warning: the {'pretraining' if phase == 'pretrain' else 'clustering phase'} learnt nothing "
              f"usable: {why}; a lower learning rate "
              "(--lr, --cluster-lr) avoids it, see the README's table of learning rates", file=sys.stderr)
    print(f"model folder: {result.files.folder}")
    if active:
        print(f"active model: {name}" + (" (every song has its embedding already)" if embedded else
                                         " (embed with `reform embed`)"))
    elif result.files.model.exists():
        why = ("it failed (above)" if failed else f"the active model stays {chosen}" if ended(result.history)
               else "a phase stopped before its schedule ended")
        print(f"not made active: {why}; `reform use {name}` makes it active anyway (or train with --activate)")
    elif result.files.pretrain.exists():   # `--phase pretrain`: a model of both phases is what recommends
        print(f"pretrained only: `reform train --phase cluster --name {result.files.folder.name}` adds the "
              "clustering phase")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    def say_device(todo: int) -> None:   # once the library is held, and only if there is work
        if todo:
            _print_device(args.device)

    with _library(args) as lib:
        try:
            summary = lib.embed(args.model, progress=not args.quiet, device=args.device, on_start=say_device)
        except KeyboardInterrupt:
            print("the songs embedded so far are kept (every 64): `reform embed` goes on", file=sys.stderr)
            raise
        name = lib.models.name_of(lib.model_path(args.model))
        usable = args.model == "shipped" or args.model in {run.name for run in lib.models.runs()}
        try:   # (a lost active run is no reason to fail after the work: embedding another is a way out)
            active = lib.models.name_of(lib.model_path()) if usable else name
        except ModelError:
            active = name
    if usable and active != name and (summary.embedded or summary.unchanged):
        # one set of embeddings is kept: the recommendations now warn that they are not the active model's
        print(f"note: the active model is still {active}; `reform use {args.model}` makes {name} the one "
              "recommendations expect", file=sys.stderr)
    if summary.embedded:
        print(f"embedded {plural(summary.embedded, 'song')} in {summary.seconds:.1f} s "
              f"({summary.songs_per_second:.1f} songs/s, "
              f"{summary.audio_seconds / max(summary.seconds, 1e-9):.0f}x realtime) with {name}")
    elif not summary.damaged:
        print(f"nothing to do: {plural(summary.unchanged, 'song')} already embedded with {name}")
    if summary.damaged:
        print(f"{plural(len(summary.damaged), 'song')} could not be embedded: their spectrograms are "
              "damaged; run `reform check --repair`")
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Verify the catalogue, every spectrogram and embedding, the index and the model files;
    repair with --repair."""
    from .check import catalogue_problem, rebuild_catalogue
    from .home import REBUILD_HINT, RunFiles
    from .lock import WriterLock

    catalogue = _catalogue_path(args)
    problem = catalogue_problem(catalogue)
    if problem:
        print(f"catalogue: {problem}")
        if not args.repair:
            print(REBUILD_HINT if not catalogue.exists() else
                  "run `reform check --repair` to rebuild it from what can still be read")
            return 1
        with WriterLock(catalogue.parent).hold("check --repair"):
            rebuilt = rebuild_catalogue(catalogue)
        if rebuilt.damaged_copy is None:
            print("built a new catalogue")
        else:
            print(f"rebuilt the catalogue: {rebuilt.kept} rows kept, {rebuilt.lost} unreadable, "
                  f"{rebuilt.embeddings} embeddings kept; the damaged one is {rebuilt.damaged_copy}")
    with _library(args, read_only=not args.repair) as lib:
        if args.repair:
            lib.load_model()   # a repair embeds with the active model: refused while it is damaged
        if not problem and lib.home.unfinished():
            print("catalogue: made again, and not all its songs added back yet (a repair or a scan was "
                  "interrupted)")
            if not args.repair:
                print("run `reform check --repair` to scan the music folders and add them back")
                return 1
        if problem or lib.home.unfinished():
            if _rescan_after_rebuild(lib, args):
                return 130
        try:
            found, after = lib.check(repair=args.repair, progress=not args.quiet, jobs=args.jobs)
        except KeyboardInterrupt:
            if args.repair:
                print("what was repaired is kept: `reform check --repair` goes on", file=sys.stderr)
            raise
        index = lib.index_problems()
        damaged_index = [line for line in index if "damaged" in line]
        built = bool(damaged_index) or not lib.index_metrics()   # (none stored: the repair builds one)
        if args.repair and index:
            lib.update_index()
        copies = lib.home.copy_problems()
        if args.repair and copies:
            lib.home.write_copies()
        runs = {path: line for run in lib.models.runs() for path, line in RunFiles(run.folder).problems().items()}
        unusable = [] if args.repair else _model_problem(lib)
        if unusable and _active_path(lib) in runs:   # said once, by its run's line with the way out
            unusable = []
        runs = list(runs.values())
        # embeddings of another model than the active one: a repair embeds with the active one,
        # so only `reform embed`, which replaces them all, gives these songs theirs
        stale = bool(found.of("embedding")) and lib.embedding_status(count_missing=False)["current"] is False
    model = f"model {found.embedding_model}" if found.embedding_model else "none stored"
    counted = len(found.problems) + len(damaged_index) + len(unusable) + len(copies) + len(runs)
    print(f"checked {plural(found.songs, 'spectrogram')}, their embeddings ({model}), the search index, "
          f"the active model, the training runs' model files and the copies beside the catalogue: "
          f"{plural(counted, 'problem')}")
    for p in found.problems:
        print(f"  {p.line()}")
    for line in index + unusable + copies + runs:
        print(f"  {line}")
    if args.repair and index:
        print("search index: built again" if built else "search index: brought up to date")
    if args.repair and copies:
        print("copies beside the catalogue: written again")
    if after is None:
        if stale:
            print("the stored embeddings come from another model than the active one: `reform embed` replaces "
                  "them all, these songs' too")
        # not for songs whose files are gone alone: the repair cannot help them, their lines say what can
        repairable = [p for p in found.problems if not p.unrepairable and not (stale and p.what == "embedding")]
        if repairable or (damaged_index or copies) and not args.repair:
            print("run `reform check --repair` to analyse or embed these songs again, build the index, or write "
                  "the copies")
        return 1 if found.problems or (damaged_index or copies) and not args.repair or unusable or runs else 0
    # a training run's damaged files are not the repair's to write: each line says what does
    print(f"after the repair: {plural(len(after.problems) + len(runs), 'problem')}")
    for p in after.problems:
        print(f"  {p.line()}")
    for line in runs:
        print(f"  {line}")
    if after.of("embedding"):
        print("the stored embeddings come from another model than the active one: "
              "run `reform embed` to replace them")
    return 1 if after.problems or runs else 0


def _active_path(lib) -> Path | None:
    try:
        return lib.models.path()
    except ModelError:
        return None


def _model_problem(lib) -> list[str]:
    """The active model as a problem line, when its file cannot be loaded (scans and queries
    that embed would stop on it)."""
    try:
        lib.load_model()
    except ModelError as exc:
        return [f"active model {lib.models.active_name()}: {exc.message}; "
                + (exc.hint or "`reform use shipped` goes back to the shipped model, or train the run again")]
    return []


def _rescan_after_rebuild(lib, args: argparse.Namespace) -> bool:
    """A rebuilt catalogue lacks the rows it could not read: a scan of the known folders adds
    them back, reusing their stored spectrograms (no audio is decoded again).  Returns whether
    it was interrupted (the next repair goes on: the catalogue stays marked unfinished)."""
    from .errors import LibraryError

    try:
        summary = lib.scan(jobs=args.jobs, progress=not args.quiet, embed=True)
    except LibraryError as exc:
        print(f"the music folders could not be scanned ({exc}): run `reform scan FOLDER` "
              "to add the songs back; their spectrograms are reused")
        return False
    if summary.interrupted:
        print(f"interrupted: {plural(summary.reused + summary.analysed, 'song')} added back so far; "
              "run `reform check --repair` again to add the others", file=sys.stderr)
        return True
    print(f"scanned the music folders again: {plural(summary.reused, 'song')} added back from their "
          f"stored spectrograms, {summary.analysed} analysed, {summary.unchanged} unchanged")
    _print_unreached(summary)
    return False


def _filters(args: argparse.Namespace):
    from .recommend import Filters

    return Filters(exclude_same_artist=args.exclude_same_artist,
                   exclude_same_album=args.exclude_same_album, max_per_artist=args.max_per_artist)


def _show(recs, args: argparse.Namespace, heading: str, lead: tuple = ()) -> None:
    """Print (or give as JSON) the recommendations; with ``-o`` also write them as M3U, after
    the songs of ``lead`` (a playlist's seeds, so that the file plays from where it flows)."""
    from .export import write_m3u

    if args.output:
        rows = [*lead, *(r.row for r in recs)]
        skipped = write_m3u(args.output, rows, relative=args.relative)
        for row in skipped:
            print(f"left out of {shown(args.output)}: {shown(row.path)} (a line break in the path cannot be "
                  "written in M3U)", file=sys.stderr)
        gone = [row for row in rows if row not in skipped and not os.path.exists(row.path)]
        if gone:   # a music folder away (a disk not mounted), or files deleted since the last scan
            print(f"note: {plural(len(gone), 'song')} in {shown(args.output)} {agree(len(gone), 'has', 'have')} "
                  f"no file there now, which a player skips: {listing([shown(r.path) for r in gone], 3)} "
                  "(`reform status` names a music folder that is not there; `reform scan` takes deleted files "
                  "out of the library)", file=sys.stderr)
    if args.json:
        _print_json([r.to_dict() for r in recs])
        return
    print(heading)
    if not recs:
        print("  (no song passes the filters)" if _filters(args).active else "  (the library has no other song)")
    for i, r in enumerate(recs, 1):
        row = r.row
        minutes, secs = divmod(round(row.duration or 0), 60)
        album = f"{one_line(row.album)}, " if row.album else ""
        # a file deleted since the last scan, or its disk away: a player would skip it in silence
        gone = "" if os.path.exists(row.path) else "  (no file there now)"
        print(f"{i:3d}. {r.score:6.3f}  {row.label}  [{album}{minutes}:{secs:02d}]{gone}")
    if args.output:
        written = [row for row in lead if row not in skipped]   # a seed left out is not first in it
        first = f" ({plural(len(written), 'seed song')} first)" if written else ""
        print(f"wrote {shown(args.output)}{first}")


def _embedding_note(lib, songs: int) -> None:
    """Say when the embeddings are another model's, or when some songs have none (counted
    only up to EXACT_LIMIT indexed songs: in a million-song library counting them takes
    longer than the query; `reform status` says it there)."""
    from .api import embedding_note
    from .index import EXACT_LIMIT

    status = lib.embedding_status(count_missing=songs <= EXACT_LIMIT)
    note = embedding_note(bool(status["stored"]), status["current"], status["missing"])
    if note:
        print(f"note: {note}", file=sys.stderr)


def _recommend(args: argparse.Namespace, action: str) -> int:
    from .api import short_note
    from .export import check_output, check_playlist_name

    if args.output:
        args.output = str(check_output(args.output))   # `-o '~/x.m3u8'` quoted: written where checked
        check_playlist_name(args.output)
    elif args.relative:
        raise ConfigError("--relative is for the M3U file -o writes, and none is asked for",
                          hint="add -o FILE.m3u8, or leave out --relative")
    with _library(args, read_only=True) as lib:
        rec = lib.recommender(metric=args.metric, index=args.index, expand=args.expand, walk=args.walk)
        _embedding_note(lib, len(rec))
        seeds = _distinct(lib.resolve(q, rec) for q in args.queries)
        filters = _filters(args)
        wanted = args.length if action == "playlist" else args.n
        if action == "similar":
            recs = rec.similar(seeds[0], wanted, filters)
        elif action == "mix":
            recs = rec.mix(seeds, wanted, filters, how="centre" if args.centre else "each")
        else:
            recs = rec.playlist(seeds, wanted, filters)
        if note := short_note(len(recs), wanted, filters.active, len(rec) - len(seeds)):   # none: said below
            print(f"note: {note}", file=sys.stderr)
        if action == "similar" and (note := _walk_note(rec, recs)):
            print(f"note: {note}", file=sys.stderr)
        if action == "mix" and not args.centre and len(seeds) > 1 and any(
                a.score < b.score for a, b in zip(recs, recs[1:])):   # (0.521 above 0.871 looked like a mistake)
            print("note: a mix takes each seed's nearest songs in turn, and a score is the song's cosine to its own "
                  "seed, so the scores need not fall down the list", file=sys.stderr)
    names = ", ".join(s.label for s in seeds)
    # a playlist's file starts with its seeds (those of the library, each once), as a radio does;
    # similar and mix are lists of other songs
    lead = tuple({s.row.id: s.row for s in seeds if s.row is not None}.values()) if action == "playlist" else ()
    _show(recs, args, {"similar": f"songs like {names}:", "mix": f"a mix from {names}:",
                       "playlist": f"a playlist from {names}:"}[action], lead)
    return 0


def _walk_note(rec, recs) -> str | None:
    """Why a list's scores rise somewhere down it: the walk ranks it, and a score is the song's
    cosine to the query (a person saw 0.317 above 0.339 and took it for a mistake)."""
    if rec.walk and any(a.score < b.score for a, b in zip(recs, recs[1:])):
        return ("ranked by a walk along chains of close songs; a score is the song's cosine to the query, so "
                "the scores need not fall down the list (`--walk 0` ranks by them)")
    return None


def _distinct(seeds) -> list:
    """The seeds with a song given twice taken once (:func:`reform.recommend.distinct`); says which were."""
    from .recommend import distinct

    kept, repeated = distinct(seeds)
    for seed, first in repeated:
        if seed.row is not None and first.row is not None and seed.row.path != first.row.path:
            # `mix song.flac backup/song.flac`: two files, one audio, which "given twice" did not tell
            print(f"note: {shown(seed.row.path)} holds the same audio as {shown(first.row.path)}: taken once",
                  file=sys.stderr)
        else:
            print(f"note: {seed.label} was given twice: taken once", file=sys.stderr)
    return kept


def cmd_similar(args: argparse.Namespace) -> int:
    return _recommend(args, "similar")


def cmd_mix(args: argparse.Namespace) -> int:
    return _recommend(args, "mix")


def cmd_playlist(args: argparse.Namespace) -> int:
    return _recommend(args, "playlist")


def cmd_export(args: argparse.Namespace) -> int:
    from .export import check_output, export_embeddings, export_format

    args.out = str(check_output(args.out, ".npz"))   # first: a folder given is said to be one, not an unknown format
    export_format(args.out)
    with _library(args, read_only=True) as lib:
        version, vectors = lib.embeddings()
        n = export_embeddings(args.out, lib.songs(), vectors, version)
        _embedding_note(lib, len(vectors))   # songs without an embedding are not in the file
    print(f"wrote {plural(n, 'song')} to {shown(args.out)}")
    return 0


# what the columns of `reform evaluate` mean, for a reader who is no retrieval researcher
EVALUATE_LEGEND = (
    "same-song top-1: how often the other half of a song, cut in two, comes first among all halves; "
    "MRR: the mean of 1/rank of that half.\n"
    "p@5, p@10: the share of a song's 5 or 10 nearest songs that have its label (a library with few "
    "songs per label cannot reach 1); mAP: the same over the whole ranking. Higher is better everywhere; "
    "the untrained network and the baselines show what the model adds.")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .export import check_output

    if args.labels_file and args.labels:   # one was silently dropped
        raise ConfigError("--labels and --labels-file both say which songs belong together",
                          hint="give one: a tag (--labels) or a file of labels (--labels-file)")
    if args.label_column and not args.labels_file:
        raise ConfigError("--label-column names a column of the labels file, and none is given",
                          hint="add --labels-file FILE, or leave out --label-column")
    if args.json:
        args.json = str(check_output(args.json, ".json"))

    def started(name: str, i: int, n: int) -> None:
        if i == 1:   # the labels are read: what could be refused was
            _print_device(args.device)
        if not args.quiet:
            print(f"evaluating {i}/{n}: {name}", file=sys.stderr, flush=True)

    with _library(args, read_only=True) as lib:
        report = lib.evaluate(labels=None if args.labels_file else args.labels or "artist",
                              label_file=args.labels_file, label_column=args.label_column or "group",
                              exclude_same_album=args.exclude_same_album,
                              models=args.model or None, baselines=not args.no_baselines, seed=args.seed,
                              device=args.device, expand=args.expand, walk=args.walk, on_method=started,
                              progress=not args.quiet)
        saved = lib.save_evaluation(report) if not args.model else None
    data = report.to_dict()
    print(f"{plural(report.songs, 'song')}, labels: {report.label_source or 'none'}"
          + (", album filter on" if args.exclude_same_album else ""))
    for note in report.notes:
        print(f"note: {note}")
    print()
    print(report.markdown())
    print("\n" + EVALUATE_LEGEND)
    if args.per_label and report.label_source:
        print()
        print("p@10 of each label's songs:")
        print(report.per_label_markdown())
    if args.json:
        from .files import write_json

        write_json(args.json, data)
        print(f"\nwrote {shown(args.json)}")
    if saved:
        print(f"saved for the model: {saved.path} (shown by `reform serve` and `reform models`)")
    else:   # with --json too: that file is not the copy `reform models` and the page show
        why = saved.why if saved is not None else \
            "the models named with --model are compared, not the active one's figures"
        print(f"\nnot saved: {why}" + ("" if args.json else "; --json FILE keeps the figures"))
    return 0


LABELS_SHOWN = 14   # characters of the labels column of `reform models` (a labels file's name can be long)


def cmd_models(args: argparse.Namespace) -> int:
    from .card import read_card

    if args.delete:
        names = list(dict.fromkeys(args.delete))
        with _library(args) as lib:
            freed = lib.delete_runs(names)
        print(f"deleted {plural(len(names), 'run')} ({', '.join(names)}): {freed / 2**20:.1f} MiB freed")
        return 0
    with _library(args, read_only=True) as lib:
        active = lib.models.active_name()
        runs = lib.runs()
        shipped = read_card(lib.model_path("shipped")).get("info", {})
        shipped_evaluation = lib.models.shipped_evaluation()
        try:
            holder = lib.home.lock.holder()
        except StoreError:   # a home this user cannot write to: no training of theirs runs in it
            holder = None
    training = holder is not None and holder.task == "train"
    if args.json:
        _print_json({"active": active, "shipped_evaluation": shipped_evaluation,
                     "training_now": holder.describe() if training else None, "runs": [
            {"name": r.name, "state": r.state, "complete": r.complete, "usable": r.usable,
             "epochs": r.epochs, "evaluation": r.evaluation, "finished_at": r.finished_at,
             "started_from": r.started_from}
            for r in runs]})
        return 0
    print(f"  {'model':28s} {'epochs':>9s}  {'p@10':>5s}  {'top-1':>5s}  {'labels':{LABELS_SHOWN}s}  state")
    epochs = shipped.get("epochs", {})
    rows = [("shipped", f"{epochs.get('pretrain', '?')}+{epochs.get('cluster', '?')}", shipped_evaluation,
             f"shipped with ReFORM ({shipped.get('data', 'trained elsewhere')})")]
    rows += [(r.name, f"{r.epochs['pretrain']}+{r.epochs['cluster']}", r.evaluation, r.state) for r in runs]
    if active not in {name for name, *_ in rows}:   # chosen, then its folder renamed or deleted
        rows.append((active, "-", None, "no longer in the models folder (renamed or deleted?): `reform use "
                     "NAME` chooses another"))
    for name, done, evaluation, state in rows:
        p10, top1 = ((f"{evaluation['p10']:.3f}" if "p10" in evaluation else "-",
                      f"{evaluation['same_song_top1']:.3f}") if evaluation else ("-", "-"))
        labels = ((evaluation or {}).get("labels") or "-") if p10 != "-" else "-"
        if len(labels) > LABELS_SHOWN:
            labels = labels[:LABELS_SHOWN - 1] + "…"
        print(f"{'*' if name == active else ' '} {name:28s} {done:>9s}  {p10:>5s}  {top1:>5s}  "
              f"{labels:{LABELS_SHOWN}s}  {state}")
    print("\n* active.  epochs: pretraining+clustering.  p@10 (by the labels named) and top-1 come from "
          "`reform evaluate`\n(saved for the active model).  `reform use NAME` changes the active model.")
    if training:   # a run "in progress or interrupted" is in progress; the way on said beside it waits
        print(f"a training runs now ({holder.describe()}): a run in progress above is that one")
    return 0


def cmd_use(args: argparse.Namespace) -> int:
    with _library(args) as lib:
        name = lib.use(args.model)
        status = lib.embedding_status()
    print(f"active model: {name}")
    if status["stored"] and status["current"] is False:
        print("the stored embeddings come from another model: run `reform embed` to use this one")
    elif status["current"] and status["missing"]:   # its embeddings kept from when it was used before
        missing = status["missing"]
        print(f"its embeddings were kept, and {plural(missing, 'song')} {agree(missing, 'lacks', 'lack')} one: "
              "run `reform embed`")
    return 0


LMS_PORT = 11000   # the port Lyrion's Music Similarity plugin asks by default


def cmd_serve(args: argparse.Namespace) -> int:
    from .config import default_home
    from .web.server import serve

    return serve(args.home or default_home(), host=args.host, port=args.port, open_browser=args.open,
                 token=args.token, named=args.home is not None and args.home != os.environ.get("REFORM_HOME"),
                 lms_port=None if args.no_lms else LMS_PORT if args.lms_port is None else args.lms_port,
                 lms_optional=args.lms_port is None,   # the default port taken: the page alone, with a warning
                 lms_host=args.lms_host, lms_allow=tuple(args.lms_allow or ()),
                 music_dir=_music_dir(args.music_dir))


def _music_dir(given: str | None) -> str | None:
    """A player's music folder as given on this computer (``--music-dir``), or None where there is
    no such folder, said by name (a name mistyped was only found to hold no song of the library)."""
    if given is None:
        return None
    folder = os.path.expanduser(given)
    if not os.path.isdir(folder):   # (a service may start before its disk is mounted: not an error)
        print(f"note: no such folder on this computer: {given} (--music-dir): the player's music folder is "
              "learned from the songs it names instead", file=sys.stderr)
        return None
    return folder


def _rules(args: argparse.Namespace, **extra):
    from .radio import Rules

    return Rules(artist_gap=args.artist_gap, album_gap=args.album_gap, min_duration=args.min_duration,
                 max_duration=args.max_duration, filters=_filters(args), **extra)


def cmd_mpd(args: argparse.Namespace) -> int:
    from . import mpd
    from .radio import MusicRoot

    where = mpd.address(args.host, args.port)
    music_dir = _music_dir(args.music_dir)
    home_writable = _library_writable(args)
    with _library(args, read_only=not home_writable) as lib:
        radio = mpd.Radio(lib, _rules(args, no_repeat=args.no_repeat), ahead=args.ahead,
                          root=MusicRoot(music_dir) if music_dir else None,
                          record=home_writable, say=lambda line: print(line, flush=True))
        try:
            mpd.run(radio, where, say=lambda line: print(line, flush=True))
        except KeyboardInterrupt:
            print("stopped", flush=True)
    return 0


def _short_note(playlist, length: int, why: str,
                library: Callable[[], tuple[int, str]] | None = None) -> str | None:
    """The note on a playlist written with fewer songs than asked for, as similar, mix and playlist
    say it; ``library``: how many songs it could hold at most, and the words for them (a radio: the
    songs of the library a playlist there can hold), asked only of a playlist that came up short."""
    held = len(playlist.rows)
    if 0 < held < length:
        most, which = library() if library is not None else (None, "")
        reason = f"the library has no more{which}" if most is not None and held >= most else f"no more pass {why}"
        return f"note: {playlist.title} holds {held} of the {length} songs asked for: {reason}"
    return None


def _library_writable(args: argparse.Namespace) -> bool:
    catalogue = _catalogue_path(args)
    return os.access(catalogue, os.W_OK) and os.access(catalogue.parent, os.W_OK)


def cmd_playlists(args: argparse.Namespace) -> int:
    from . import playlists
    from .progress import Bar
    from .store import FileRow

    playlists.playlist_folder(args.to)   # a file in its place: said before the playlists are made
    with _library(args, read_only=True) as lib:
        root = playlists.music_root(args.music_root or lib.music_root())
        # radios and mixes hold only songs a playlist under the root can name, whose files are there;
        # each file looked at once (a radio asked again of every song it passed over: 46,000 times
        # for five radios over 342 songs, a third of the command's time)
        checked: dict[str, bool] = {}

        def writable(row: FileRow) -> bool:
            if row.path not in checked:
                checked[row.path] = playlists.unwritable(row, root) is None
            return checked[row.path]

        rules = _rules(args, keep=writable)
        rec = lib.recommender()
        _embedding_note(lib, len(rec))

        @functools.cache
        def holdable() -> tuple[int, str]:
            """The songs a radio can hold here (a file gone, or outside the root, it cannot)."""
            held = len({row.hash for row in lib.songs() if rec.has(row.hash) and writable(row)})   # recordings
            return held, "" if held == len(rec) else f" that a playlist here can hold ({held} of its {len(rec)} songs)"

        wanted = []
        played = lib.most_played(args.most_played)
        seeds, unmatched = [], []
        for query in args.radio or []:   # one radio whose song has gone stops none of the others
            try:
                seed = lib.resolve(query, rec).row
                if seed is None:
                    raise QueryError("a radio starts from a song of the library, and this file is not one",
                                     path=query, hint="scan its folder first")
                seeds.append(seed)
            except QueryError as exc:
                unmatched.append((query, exc))
        unheard = [row for row in played if not rec.has(row.hash)]   # (scanned with --no-embed, say)
        seeds += [row for row in played if rec.has(row.hash)]
        unique: dict[str, FileRow] = {}   # one radio per song, however often it is asked for
        for row in seeds:
            unique.setdefault(row.hash, row)
        mixing = dataclasses.replace(rules, no_repeat=0)   # a mix follows no listening: nothing to repeat
        limits = mixing.limits()
        notes = []   # said once the bar is done
        # about a second a radio on a few hundred songs: a bar on a terminal counts them
        with Bar(not args.quiet, "playlists", "playlist") as bar:
            bar.start(len(unique) + len(args.mix or []))
            for row in unique.values():
                wanted.append(playlists.radio(rec, row, args.length, rules, root))
                if len(wanted[-1].rows) == 1 and args.length > 1:
                    notes.append(f"note: {wanted[-1].title} holds its seed alone: no other song passes the rules "
                                 f"({rules.limits()})")
                else:
                    notes.append(_short_note(wanted[-1], args.length, f"the rules ({rules.limits()})", holdable))
                bar.step(1)
            for folder in args.mix or []:
                wanted.append(playlists.folder_mix(rec, lib.songs(), folder, args.length, mixing))
                notes.append(_short_note(wanted[-1], args.length,
                                         "the filters" if limits == "none" else f"the rules ({limits})"))
                bar.step(1)
        for note in filter(None, notes):
            print(note, file=sys.stderr)
    if args.most_played and not played:
        message = "no play is recorded yet, so --most-played has no song to start from"
        if not wanted:   # nothing else asked for: leave the folder as it is
            raise ConfigError(message, hint="`reform mpd` records what MPD plays; or add --radio QUERY or --mix FOLDER")
        print(f"note: {message}", file=sys.stderr)
    if unheard:
        message = (f"{plural(len(unheard), 'most played song')} {agree(len(unheard), 'has', 'have')} no embedding "
                   f"to start a radio from: {listing([r.label for r in unheard], 3)}")
        if not wanted:
            raise QueryError(message, hint="`reform embed` embeds the songs scanned without one")
        print(f"note: {message} (`reform embed`)", file=sys.stderr)
    for query, exc in unmatched[0 if wanted else 1:]:   # with nothing to write, the first is the error
        print(f"note: --radio {query}: {exc.message}; its playlist is not written", file=sys.stderr)
    if not wanted:
        if unmatched:
            raise unmatched[0][1]
        raise ConfigError("no playlist asked for", hint="add --radio QUERY, --most-played N or --mix FOLDER")
    report = playlists.write_folder(args.to, wanted, root, args.prefix, f".{args.extension}")
    for name in report.written:
        print(f"wrote      {name}")
    for name in report.unchanged:
        print(f"unchanged  {name}")
    for name in report.removed:
        print(f"removed    {name} (no longer asked for)")
    for name, why in report.left_alone:
        print(f"left alone {name}: {why}")
    for title, earlier, why in report.empty:
        print(f"not written {title}: {why}" + (" (an earlier file of it is kept)" if earlier else ""))
    left = report.outside_root + report.unwritable + report.gone
    if left:   # radios and mixes choose only songs a playlist can hold: a file went while they were made
        print(f"note: {plural(left, 'song')} left out: {agree(left, 'its file', 'their files')} changed while "
              "the playlists were made (`reform scan` brings the library up to date)")
    if report.left_alone and not (report.written or report.unchanged or report.untouched):
        raise ConfigError("no playlist was written", hint="each one asked for is left alone (the lines above say why)")
    if report.untouched:
        raise ConfigError("no playlist was written, and the folder is left as it was",
                          hint="give --music-root the folder the library's songs are in" if report.misplaced else
                          "ask for other playlists (see the lines above)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the built-in demo library: build it, scan it, embed it, recommend."""
    from . import demo

    with _library(args, create=True) as lib:
        folder = lib.home.path / "demo-music"
        print(f"building the demo library in {folder} ...")
        demo.build(folder)
        summary = lib.scan(folder, jobs=args.jobs, progress=not args.quiet)
        _print_scan_summary(summary, lib)
        print(f"\nembedding with {lib.models.name_of(lib.model_path())}")
        embedded = lib.embed(progress=not args.quiet)
        print(f"{plural(embedded.embedded, 'song')} embedded, {embedded.unchanged} already were")
        rec = lib.recommender()
        for query in ("Chorale No. 1", "Beat No. 2"):
            seed = lib.resolve(query, rec)
            print(f"\nsongs like {seed.label}:")
            for i, r in enumerate(rec.similar(seed, 5), 1):
                print(f"  {i}. {r.score:.3f}  {r.row.label}")
        seeds = [lib.resolve(q, rec) for q in ("Texture No. 1", "Arpeggio No. 3")]
        print(f"\na playlist flowing from {seeds[0].label} and {seeds[1].label}:")
        for i, r in enumerate(rec.playlist(seeds, 8), 1):
            print(f"  {i}. {r.row.label}")
    # the default home (no --home, no $REFORM_HOME) needs no option to be found again
    run = _invocation() + (f" --home {shlex.quote(args.home)}" if args.home else "")
    print(f"\ntry: {run} similar 'Groove No. 1'   (or `{run} serve`)")
    return 0


# -- parser -------------------------------------------------------------------------------------------
def _device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model runs: auto (a CUDA GPU when torch sees one, else the CPU)")


def _global_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--home, -v and -q; sub-commands repeat them without defaults, so they may come after."""
    keep = {} if defaults else {"default": argparse.SUPPRESS}
    parser.add_argument("--home", help="library home folder (default: $REFORM_HOME or the user data "
                        "folder)", **({"default": None} if defaults else keep))
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors", **keep)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars", **keep)


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exclude-same-artist", action="store_true", help="no song by an artist of the seeds")
    p.add_argument("--exclude-same-album", action="store_true", help="no song from an album of the seeds")
    p.add_argument("--max-per-artist", type=count(1), metavar="N", help="at most N songs per artist")


def _add_radio_rules(p: argparse.ArgumentParser) -> None:
    _add_filters(p)
    p.add_argument("--artist-gap", type=count(0), default=3, metavar="N",
                   help="an artist returns only after N other songs (default 3; 0: no rule)")
    p.add_argument("--album-gap", type=count(0), default=5, metavar="N",
                   help="an album returns only after N other songs (default 5; 0: no rule)")
    p.add_argument("--min-duration", type=seconds, default=0.0, metavar="S",
                   help="leave out songs shorter than S seconds")
    p.add_argument("--max-duration", type=seconds, default=0.0, metavar="S",
                   help="leave out songs longer than S seconds (0: no limit)")


def _default_of(cfg, name: str, text: str) -> str:
    """" (default X)" for a training option's help, unless the text gives it or there is none."""
    value = getattr(cfg, name)
    if value is None or isinstance(value, bool) or "default" in text:
        return ""
    return f" (default {value:g})" if isinstance(value, float) else f" (default {value})"


# what a user may call a command, for the hint of a command that is not one
_CALLED_OTHERWISE = {"web": "serve", "server": "serve", "ui": "serve", "gui": "serve", "recommend": "similar",
                     "like": "similar", "info": "status", "analyse": "scan", "analyze": "scan", "add": "scan",
                     "import": "scan", "fit": "train", "verify": "check", "repair": "check", "remove": "forget",
                     "delete": "forget", "model": "models"}


class Parser(argparse.ArgumentParser):
    """argparse, with its errors one line and a hint like every other error (not the usage)."""

    given: Sequence[str] = ()   # the words this parser (or subcommand's parser) was given

    def parse_known_args(self, args=None, namespace=None):
        self.given = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str, hint: str | None = None):
        hint = (hint or self._dash_hint(message) or self._command_hint(message)
                or f"`{self.prog} --help` lists what it takes")
        self.exit(2, f"error: {message}\nhint: {hint}\n")

    def _command_hint(self, message: str) -> str | None:
        """The command meant by a word that is not one: a slip of the keys (`reform similr`), or
        what other tools call it (`reform web` is `reform serve`)."""
        said = re.match(r"argument COMMAND: invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if not said:
            return None
        word, commands = said[1].lower(), re.findall(r"'?([\w-]+)'?", said[2])
        meant = _CALLED_OTHERWISE.get(word) or next(iter(difflib.get_close_matches(word, commands, 1)), None)
        return f"did you mean `{self.prog} {meant}`?" if meant in commands else None

    def _dash_hint(self, message: str) -> str | None:
        """How to give an argument that starts with '-' (``reform similar "-dash-start"``), which
        argparse takes for an unknown option, and then says the argument is missing."""
        if "arguments are required" not in message:
            return None
        known = [flag for action in self._actions for flag in action.option_strings]
        strays = [word for word in self.given if word.startswith("-") and word != "--"
                  and not any(flag.startswith(word.split("=")[0]) for flag in known)]   # (or abbreviated)
        if not strays:
            return None
        missing = message.rsplit(": ", 1)[-1]
        return (f"a {missing} that starts with '-' goes after `--`: "
                f"`{self.prog} -- {' '.join(shlex.quote(w) for w in strays)}`")


def build_parser() -> argparse.ArgumentParser:
    import dataclasses

    from .config import FINE_TUNE_BELOW, PRESETS, TrainConfig
    from .recommend import EXPAND, WALK

    parser = Parser(prog="reform", description="ReFORM: music recommendations learned from your own music.")
    parser.add_argument("--version", action="version", version=f"reform {__version__}")
    _global_options(parser, defaults=True)
    common = Parser(add_help=False)
    _global_options(common, defaults=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                help="what to do; `reform COMMAND --help` tells more")

    def command(name: str, helptext: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=helptext, description=helptext, parents=[common])
        p.set_defaults(func=func)
        return p

    p = command("demo", "build a small synthetic library (in HOME/demo-music), scan it, embed it, recommend",
                cmd_demo)
    p.add_argument("--jobs", type=count(1), default=None, help="worker processes (default: all cores)")

    p = command("scan", "analyse the music under folders (new and changed files only)", cmd_scan)
    p.add_argument("paths", nargs="*", help="folders or files (default: the folders scanned before)")
    p.add_argument("--jobs", type=count(1), default=None,
                   help="worker processes (default: all cores; with --ray: the cluster's CPUs)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the work on Ray: the cluster at ADDRESS (e.g. auto, or HOST:6379), "
                        "else a local Ray instance; needs `pip install 'reform-music[cluster]'` "
                        "and the library home on a filesystem every node mounts at the same path")
    _device_option(p)
    p.add_argument("--no-embed", action="store_true",
                   help="only analyse; by default each new song is also embedded with the active model")
    p.add_argument("--retry-failed", action="store_true",
                   help="try again every file that failed, even if it did not change")
    p.add_argument("--forget-missing", action="store_true",
                   help="remove the songs whose files are gone; those of a folder that now holds no audio, "
                        "or is gone, only when it (or a folder above it) is named: it is more often a disk not "
                        "mounted; `reform forget FOLDER` drops a folder that is still there")
    p.add_argument("--reanalyse", action="store_true",
                   help="analyse every song again when the library was made with other settings "
                        "(another version of ReFORM's spectrograms)")

    p = command("train", "train the auto-encoder on the library (both phases)", cmd_train)
    p.add_argument("--phase", choices=("all", "pretrain", "cluster"), default="all",
                   help="which phases to run (default: all)")
    p.add_argument("--preset", choices=tuple(PRESETS), default="default",
                   help="'note': the design note as written (Adam from 0.1, nothing beyond it); "
                        "'recon': reconstruction only, the earlier defaults")
    p.add_argument("--name", help="name of the run folder under <home>/models (default: a time stamp)")
    p.add_argument("--resume", action="store_true",
                   help="continue the newest (or --name) run, on the songs it began with")
    p.add_argument("--activate", action="store_true",
                   help="make the model active even if a phase was cut short (by --max-epochs)")
    p.add_argument("--init", default="auto",
                   help="start from 'scratch' (random weights), the 'shipped' model or a model file "
                        f"(fine-tuning); 'auto' (default): the shipped model on libraries of fewer than "
                        f"{FINE_TUNE_BELOW} songs, else scratch")
    _device_option(p)
    defaults = dataclasses.replace(TrainConfig(), **PRESETS["default"])   # what --preset default trains with
    for flag, name, kind, text in TRAIN_OPTIONS:
        p.add_argument(flag, dest=name, type=kind, help=text + _default_of(defaults, name, text))
    for flag, name, choices, text in TRAIN_CHOICES:
        p.add_argument(flag, dest=name, choices=choices, help=text + _default_of(defaults, name, text))
    p.add_argument("--widths", type=widths,
                   help="channels of the convolutional layers, e.g. 16,32,64,128,128,128")
    p.add_argument("--embedding-dim", type=count(1), help="size of the embedding")
    p.add_argument("--projection-dim", type=count(0),
                   help="pretraining: the song contrast acts on an MLP head of this size (0: on the embedding)")
    p.add_argument("--pool-time", action="store_true", default=None,
                   help="the embedding reads the last feature map's mean and spread over time, not every place")

    p = command("embed", "embed the songs that lack the model's embedding (new songs; every song after a train "
                "or `reform use`)", cmd_embed)
    p.add_argument("--model", help="'shipped', a run name, or a model file (default: the active model)")
    _device_option(p)

    for name, helptext in (("similar", "songs like one song"), ("mix", "songs for a mix of several songs"),
                           ("playlist", "a playlist that flows from one or more songs")):
        p = command(name, helptext, {"similar": cmd_similar, "mix": cmd_mix, "playlist": cmd_playlist}[name])
        p.add_argument("queries", nargs=1 if name == "similar" else "+", metavar="QUERY",
                       help="a path in the library, an audio file, or words of artist/title/album")
        if name == "playlist":
            p.add_argument("--length", "-n", type=count(1), default=20,
                           help="songs after the seeds (default 20); a file written with -o starts with the "
                                "seeds that are songs of the library, in the order given, and flows on from the last")
        else:
            p.add_argument("-n", type=count(1), default=10, help="number of songs (default 10)")
        if name == "mix":
            p.add_argument("--centre", action="store_true",
                           help="the songs nearest the seeds' centre, instead of each seed's nearest songs in "
                                "turn (which keeps every seed's kind in the mix; bench/mix.py)")
        _add_filters(p)
        p.add_argument("--metric", choices=("cosine", "dot", "euclidean"), default="cosine",
                       help="how closeness is measured and shown (default: cosine); song vectors have unit "
                            "length, so dot and euclidean rank songs as the plain cosine does (--walk 0 --expand "
                            "0): the walk and the expansion need the cosine")
        p.add_argument("--index", choices=("auto", "exact", "faiss"), default="auto",
                       help="the stored index as it is (auto: exact up to 200,000 songs, FAISS IVF-PQ "
                            "above), exact search over its vectors, or FAISS whatever the size")
        p.add_argument("--walk", type=count(0), default=None, metavar="N",
                       help=f"rank songs by a walk over the query's nearest songs, N links per song (fewer, down to "
                            f"10, in a library of at most 6N songs; default {WALK} with the cosine; 0: no walk); a "
                            "playlist takes its candidates so, and orders them by its flow")
        p.add_argument("--expand", type=count(0), default=None, metavar="N",
                       help="instead of the walk, average the query with its N nearest songs before searching "
                            f"(default {EXPAND} with the cosine and --walk 0; 0: the plain cosine)")
        p.add_argument("--json", action="store_true", help="a JSON list of songs")
        p.add_argument("-o", "--output", help="also write an M3U playlist (e.g. mix.m3u8)")
        p.add_argument("--relative", action="store_true", help="M3U paths relative to the playlist")

    p = command("check", "verify the catalogue, every spectrogram and embedding, the index and the model files",
                cmd_check)
    p.add_argument("--repair", action="store_true",
                   help="rebuild a damaged catalogue, analyse and embed damaged songs again")
    p.add_argument("--jobs", type=count(1), default=None, help="worker processes (default: all cores)")

    p = command("export", "write every song's path, tags and embedding (.npz .csv .parquet)", cmd_export)
    p.add_argument("out", help="the file to write; its extension (.npz, .csv, .parquet) picks the format")

    p = command("evaluate", "measure recommendation quality against baselines", cmd_evaluate)
    _device_option(p)
    p.add_argument("--labels", choices=("artist", "album", "genre"),
                   help="the tag that says which songs belong together (default: artist)")
    p.add_argument("--labels-file", help="a TSV or CSV file with a 'path' column and a label column (see "
                   "--label-column), instead of --labels")
    p.add_argument("--label-column", help="the labels file's column holding the label (default: group)")
    p.add_argument("--exclude-same-album", action="store_true",
                   help="ignore neighbours from the query's own album (the album filter)")
    p.add_argument("--model", action="append", help="model to evaluate (repeatable; default: the active "
                   "model, with its pretraining-only stage when it is a run of this library, and the "
                   "untrained network)")
    p.add_argument("--no-baselines", action="store_true", help="leave out the random, length and MFCC "
                   "baselines")
    p.add_argument("--walk", type=count(0), default=None, metavar="N",
                   help=f"rank the models' songs by a walk with N links per song (fewer, down to 10, in a library "
                        f"of at most 6N songs), as recommendations do (default {WALK}; 0: no walk)")
    p.add_argument("--expand", type=count(0), default=None, metavar="N",
                   help=f"instead of the walk, each query averaged with its N nearest songs first (default "
                        f"{EXPAND} with --walk 0; 0: plain cosine)")
    p.add_argument("--per-label", action="store_true", help="also print precision@10 per label")
    p.add_argument("--seed", type=count(0), default=0, help="random seed of the baselines and song order")
    p.add_argument("--json", help="also write the results as JSON to this file")

    p = command("models", "the models of this library: shipped, each training run, the active one",
                cmd_models)
    p.add_argument("--json", action="store_true", help="as JSON")
    p.add_argument("--delete", action="append", metavar="RUN", help="delete a training run (a trial, one cut "
                   "short or failed; never the active one), and the embeddings kept of its model (repeatable)")

    p = command("use", "make a model the active one: 'shipped' or a run's name", cmd_use)
    p.add_argument("model", help="'shipped' or the name of a run (see `reform models`)")

    p = command("serve", "a local web page to explore the library and listen", cmd_serve)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this computer only; any other needs a token)")
    p.add_argument("--port", type=count(0), default=8765, help="port of the page (default 8765)")
    p.add_argument("--open", action="store_true", help="open the page in the web browser")
    p.add_argument("--token", help="access token (made up and printed when --host exposes the page)")
    p.add_argument("--lms-port", type=count(0), default=None,
                   help=f"port of the service Lyrion's Music Similarity plugin asks (default {LMS_PORT}, "
                        "the plugin's; if another program has it, the page is served without it)")
    p.add_argument("--no-lms", action="store_true", help="do not answer Lyrion's plugin")
    p.add_argument("--lms-host", default="127.0.0.1",
                   help="address of that service (default 127.0.0.1: Lyrion on this computer)")
    p.add_argument("--lms-allow", action="append", metavar="ADDRESS",
                   help="the Lyrion server's address, required when --lms-host is not this computer")
    p.add_argument("--music-dir", help="Lyrion's music folder as this computer sees it (default: learned "
                   "from the first song it names)")

    p = command("mpd", "keep MPD's queue a few songs ahead with songs like what plays", cmd_mpd)
    p.add_argument("--host", help="MPD's host or socket (default: $MPD_HOST, else localhost)")
    p.add_argument("--port", type=count(1, 65535), help="MPD's port (default: $MPD_PORT, else 6600)")
    p.add_argument("--music-dir", help="MPD's music_directory as this computer sees it (default: asked "
                   "from MPD, or learned from the song playing)")
    p.add_argument("--ahead", type=count(1), default=3, help="songs to keep queued after the one playing "
                   "(default 3)")
    p.add_argument("--no-repeat", type=count(0), default=50, metavar="N",
                   help="no song played or queued within the last N comes back (default 50)")
    _add_radio_rules(p)

    p = command("playlists", "write and refresh M3U playlists in a folder (Navidrome, Jellyfin...)",
                cmd_playlists)
    p.add_argument("--to", required=True, metavar="DIR",
                   help="the playlist folder (created, with its parents, if missing)")
    p.add_argument("--radio", action="append", metavar="QUERY", help="a radio playlist from this song "
                   "(repeatable)")
    p.add_argument("--most-played", type=count(0), default=0, metavar="N",
                   help="a radio playlist for each of the N songs `reform mpd` saw played most")
    p.add_argument("--mix", action="append", metavar="FOLDER",
                   help="a mix of songs like those in this folder (repeatable)")
    p.add_argument("--length", type=count(1), default=30,
                   help="songs per playlist, a radio's seed included (default 30)")
    p.add_argument("--music-root", help="write song paths relative to this folder (default: the "
                   "library's music folder, when it has one)")
    p.add_argument("--prefix", help="put this before each relative path (default: the way from the "
                   "playlist folder to the music root, e.g. ../; give '' for MPD's playlist folder)")
    p.add_argument("--extension", choices=("m3u8", "m3u"), default="m3u8",
                   help="the playlists' file extension (default: m3u8; MPD's playlist folder reads m3u; "
                        "the text is UTF-8 either way)")
    _add_radio_rules(p)

    p = command("forget", "stop following music folders, or pass over a folder inside one: their songs "
                "leave the library, the files stay", cmd_forget)
    p.add_argument("folders", nargs="+", metavar="FOLDER",
                   help="a music folder the library follows, or a folder inside one")

    p = command("status", "what the library holds", cmd_status)
    p.add_argument("--json", action="store_true", help="as JSON")

    p = command("errors", "every file that could not be analysed, with the reason, and every damaged file "
                "analysed, passing over what could not be read", cmd_errors)
    p.add_argument("--json", action="store_true", help="as JSON")
    return parser


def _extra_hint(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> str | None:
    """What was meant by words a command does not take: an option mistyped (`--lenght`), named
    with the command's own options; the words of a query not in quotes, and, for `similar`, a
    mix of several songs (the words quoted may match no song)."""
    command = getattr(args, "command", None)
    sub = next((a.choices[command] for a in parser._actions if isinstance(a, argparse._SubParsersAction)
                and command in a.choices), parser)
    options = [flag for action in sub._actions for flag in action.option_strings]
    for word in (w.split("=")[0] for w in extra if w.startswith("--")):
        meant = difflib.get_close_matches(word, options, 1)
        if meant:
            return f"did you mean {meant[0]}? `{sub.prog} --help` lists its options"
    if any(w.startswith("-") for w in extra):
        return f"`{sub.prog} --help` lists its options"
    if command == "similar":   # (named after the home given: the parser speaks before the output names it)
        words = args.queries + extra
        return naming_home(f"put a query of several words in quotes: `reform similar \"{' '.join(words)}\"`; or, "
                           f"for songs like several songs at once: `reform mix {' '.join(map(shlex.quote, words))}`",
                           args.home)
    if command == "playlists" and args.radio:
        return f"put a query of several words in quotes: --radio \"{' '.join([args.radio[-1], *extra])}\""
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}", hint=_extra_hint(parser, args, extra))
    if args.home is not None and not args.home.strip():   # `--home "$UNSET_VARIABLE"`: not the default home
        parser.error("--home is empty", hint="give the library home folder, or leave --home out for "
                                             "$REFORM_HOME or the user data folder")
    if args.home is not None:   # every way on printed names it: copied, it must act on this home
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _NamingHome(out, args.home), _NamingHome(err, args.home)
        try:
            return _run(parser, args)
        finally:
            sys.stdout, sys.stderr = out, err
    args.home = os.environ.get("REFORM_HOME") or None   # which holds for a copied command too
    return _run(parser, args)


class _NamingHome:
    """A text stream that writes every `reform ...` command in what it is given with the home
    given by --home: the hints and ways on ("run `reform scan` again to continue"), copied as
    printed, acted on the default home ("no model named ...")."""

    def __init__(self, stream, home: str):
        self._stream, self._home = stream, home

    def write(self, text: str) -> int:
        self._stream.write(naming_home(text, self._home))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if args.command in WITH_TORCH:
            _import_held("torch")
        return args.func(args)
    except (ReformError, sqlite3.Error, OSError) as exc:
        if isinstance(exc, BrokenPipeError):  # e.g. `reform similar ... --json | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0   # not a failure, with -v too
        if args.verbose:
            raise
        error = _as_reform_error(exc)
        print(f"error: {error}", file=sys.stderr)
        print(f"hint: {hint_for(error, args.command)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# the commands that load a model (a scan, only where it may embed on a GPU: :func:`cmd_scan`'s own import)
WITH_TORCH = {"demo", "train", "embed", "evaluate", "serve"}


def _import_held(module: str) -> None:
    """Import ``module`` with Ctrl-C and SIGTERM held back until it is in, then let them act.

    torch's import runs C++ that calls back into Python: a Ctrl-C raised inside such a call
    ended the process with "terminate called after throwing an instance of
    'pybind11::error_already_set'" (SIGABRT) instead of "interrupted" and 130.  Handlers that only
    note the signal hold it back whichever thread the system hands it to."""
    if threading.current_thread() is not threading.main_thread():
        importlib.import_module(module)
        return
    caught: list[int] = []
    before = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
              for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        importlib.import_module(module)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    if caught:   # as it would have acted: Ctrl-C's KeyboardInterrupt, SIGTERM's stop, or the default
        handler = before[caught[0]]
        if callable(handler):
            handler(caught[0], None)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(caught[0])


def _as_reform_error(exc: Exception) -> ReformError:
    """A damaged catalogue read outside a transaction, or a write that failed where no
    module expected it (a full disk), is still one line with a hint."""
    if isinstance(exc, ReformError):
        return exc
    if isinstance(exc, sqlite3.Error):
        from .store import catalogue_error

        return catalogue_error(exc)
    from .files import DISK_REFUSED, write_error

    if exc.errno in DISK_REFUSED:
        return write_error(exc, exc.filename or "?")
    return ReformError(exc.strerror or str(exc), path=exc.filename)
