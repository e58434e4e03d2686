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
import sqlite3
import sys
from collections.abc import Sequence

from .errors import ReformError


def _library(args: argparse.Namespace, create: bool = False):
    from .api import Library

    return Library(args.home, create=create)


def _print_json(data) -> None:
    # allow_nan=False: NaN is not JSON; nothing non-finite may reach this point (a test checks)
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


# -- commands ---------------------------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace) -> int:
    with _library(args, create=True) as lib:
        _print_device(args.device, embed=not args.no_embed)
        summary = lib.scan(*args.paths, jobs=args.jobs, progress=not args.quiet, embed=not args.no_embed,
                           device=args.device)
        _print_scan_summary(summary, lib)
        if not summary.interrupted and not args.no_embed:
            _print_scan_embedding(summary, lib)
    return 130 if summary.interrupted else 0


def _print_device(name: str, embed: bool = True) -> None:
    """Say where the model runs (a scan that does not embed runs no model)."""
    from .device import describe, on_gpu, resolve

    if embed:
        print(f"device: {describe(resolve(name)) if on_gpu(name) else 'cpu'}", flush=True)


def _print_scan_embedding(summary, lib) -> None:
    if summary.embedded:
        print(f"embedded {summary.embedded} songs with model {summary.embedding_model}")
    status = lib.embedding_status()
    if status["stored"] and not status["current"]:
        print("the embeddings come from another model than the active one: run `reform embed`")
    elif status["missing"]:
        print(f"{status['missing']} songs have no embedding from the active model: run `reform embed`")


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


# Training options: (flag, TrainConfig field, type, help).  The parser and the mapping onto
# the configuration are both made from this one table.
TRAIN_OPTIONS: tuple[tuple[str, str, type, str], ...] = (
    ("--max-epochs", "max_epochs", int, "cap on the epochs of each phase"),
    ("--lr", "learning_rate", float, "initial learning rate (both phases, unless --cluster-lr)"),
    ("--cluster-lr", "cluster_learning_rate", float, "initial learning rate of the clustering phase"),
    ("--batch-size", "batch_size", int, "windows per pretraining step"),
    ("--cluster-batch-size", "cluster_batch_size", int, "windows of one song per clustering step"),
    ("--aux-weight", "aux_weight", float, "scale of each auxiliary reconstruction loss"),
    ("--contrast-weight", "contrast_weight", float,
     "scale of the pretraining song-contrast term (0: reconstruction only, as the note)"),
    ("--temperature", "temperature", float, "softmax temperature of the contrast and bank losses"),
    ("--gain-db", "gain_db", float, "augmentation: random gain within +-this many dB"),
    ("--eq-db", "eq_db", float, "augmentation: random smooth equalisation within +-this many dB"),
    ("--pitch-bins", "pitch_bins", int, "augmentation: shift the mel bands by up to this many bins"),
    ("--stripe-frames", "stripe_frames", int, "masked reconstruction: widest hidden time stripe"),
    ("--stripe-bins", "stripe_bins", int, "masked reconstruction: widest hidden frequency stripe"),
    ("--stripes", "stripes", int, "hidden stripes of each kind per window"),
    ("--cluster-weight", "cluster_weight", float, "scale of the clustering loss (lambda)"),
    ("--bank-momentum", "bank_momentum", float, "bank loss: weight of a song's old vector in an update"),
    ("--bank-neighbours", "bank_neighbours", int, "bank loss: nearest songs counted as soft positives"),
    ("--bank-soft", "bank_soft", float, "bank loss: share of the target given to those neighbours"),
    ("--patience", "plateau_patience", int, "epochs without improvement that make a plateau"),
    ("--threshold", "plateau_threshold", float, "relative improvement that counts"),
    ("--seed", "seed", int, "random seed of the weights, windows and augmentations"),
    ("--threads", "threads", int, "torch threads (default: all cores)"),
)
TRAIN_CHOICES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("--cluster-loss", "cluster_loss", ("note", "bank"),
     "clustering loss: the note's MSE to the batch mean, or contrast with a bank of song vectors"),
    ("--cluster-space", "cluster_space", ("raw", "unit"),
     "note's clustering loss on the raw embedding (the note) or on unit-length embeddings"),
    ("--precision", "precision", ("bfloat16", "float32"), "arithmetic of the training steps"),
)


def _train_configs(args: argparse.Namespace):
    """Model and training settings from --preset and the explicit options (which win)."""
    import dataclasses

    from .config import PRESETS, ModelConfig, TrainConfig

    train = dict(PRESETS[args.preset])
    for _, name, *_ in TRAIN_OPTIONS + TRAIN_CHOICES:
        value = getattr(args, name)
        if value is not None:
            train[name] = value
    model = {}
    if args.widths:
        model["widths"] = tuple(int(w) for w in args.widths.split(","))
    if args.embedding_dim:
        model["embedding_dim"] = args.embedding_dim
    return dataclasses.replace(ModelConfig(), **model), dataclasses.replace(TrainConfig(), **train)


def cmd_train(args: argparse.Namespace) -> int:
    from .progress import TrainProgress

    model_cfg, train_cfg = _train_configs(args)
    with _library(args) as lib:
        if args.resume:
            print(f"resuming {lib.run_folder(args.name, resume=True)} with its own settings")
        init = lib.load_model(args.init) if args.init != "scratch" else None
        _print_device(args.device)
        progress = TrainProgress(quiet=args.quiet)
        try:
            result = lib.train(name=args.name, phase=args.phase, resume=args.resume,
                               model_cfg=model_cfg, train_cfg=train_cfg, init=init,
                               callback=progress, max_epochs=args.max_epochs if args.resume else None,
                               device=args.device)
        finally:
            progress.close()
    for phase, reason in result.stop_reasons.items():
        print(f"{phase}: {reason}")
    print(f"model folder: {result.files.folder}")
    if result.files.model.exists():
        print(f"active model: {result.files.folder.name} (embed with `reform embed`)")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    with _library(args) as lib:
        _print_device(args.device)
        summary = lib.embed(args.model, progress=not args.quiet, device=args.device)
    if summary.embedded:
        print(f"embedded {summary.embedded} songs in {summary.seconds:.1f} s "
              f"({summary.songs_per_second:.1f} songs/s, "
              f"{summary.audio_seconds / max(summary.seconds, 1e-9):.0f}x realtime) "
              f"with model {summary.model}")
    elif not summary.damaged:
        print(f"nothing to do: {summary.unchanged} songs already embedded with model {summary.model}")
    if summary.damaged:
        print(f"{len(summary.damaged)} songs could not be embedded: their spectrograms are damaged; "
              "run `reform check --repair`")
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Verify the catalogue, every spectrogram and every embedding; repair with --repair."""
    from pathlib import Path

    from .check import catalogue_problem, rebuild_catalogue
    from .config import default_home
    from .lock import WriterLock
    from .store import CATALOGUE_NAME

    home = Path(args.home or default_home()).expanduser()
    problem = catalogue_problem(home / CATALOGUE_NAME)
    if problem:
        print(f"catalogue: {problem}")
        if not args.repair:
            print("run `reform check --repair` to rebuild it from what can still be read")
            return 1
        with WriterLock(home).hold("check --repair"):
            rebuilt = rebuild_catalogue(home / CATALOGUE_NAME)
        print(f"rebuilt the catalogue: {rebuilt.kept} rows kept, {rebuilt.lost} unreadable, "
              f"{rebuilt.embeddings} embeddings kept; the damaged one is {rebuilt.damaged_copy}")
    with _library(args) as lib:
        if problem:
            _rescan_after_rebuild(lib, args)
        found, after = lib.check(repair=args.repair, progress=not args.quiet, jobs=args.jobs)
    model = f"model {found.embedding_model}" if found.embedding_model else "none stored"
    print(f"checked {found.songs} spectrograms and their embeddings ({model}): "
          f"{len(found.problems)} problems")
    for p in found.problems:
        print(f"  {p.line()}")
    if after is None:
        if found.problems:
            print("run `reform check --repair` to analyse or embed these songs again")
        return 1 if found.problems else 0
    print(f"after the repair: {len(after.problems)} problems")
    for p in after.problems:
        print(f"  {p.line()}")
    if after.of("embedding"):
        print("the stored embeddings come from another model than the active one: "
              "run `reform embed` to replace them")
    return 1 if after.problems else 0


def _rescan_after_rebuild(lib, args: argparse.Namespace) -> None:
    """A rebuilt catalogue lacks the rows it could not read: a scan of the known folders adds
    them back, reusing their stored spectrograms (no audio is decoded again)."""
    from .errors import LibraryError

    try:
        summary = lib.scan(jobs=args.jobs, progress=not args.quiet, embed=True)
    except LibraryError as exc:
        print(f"the music folders could not be scanned ({exc}): run `reform scan FOLDER` "
              "to add the songs back; their spectrograms are reused")
        return
    print(f"scanned the music folders again: {summary.reused} songs added back from their "
          f"stored spectrograms, {summary.analysed} analysed, {summary.unchanged} unchanged")


def _filters(args: argparse.Namespace):
    from .recommend import Filters

    return Filters(exclude_same_artist=args.exclude_same_artist,
                   exclude_same_album=args.exclude_same_album, max_per_artist=args.max_per_artist)


def _show(recs, args: argparse.Namespace, heading: str) -> None:
    from .export import write_m3u

    if args.output:
        skipped = write_m3u(args.output, [r.row for r in recs], relative=args.relative)
        for row in skipped:
            print(f"left out of {args.output}: {row.path!r} (a line break in the path cannot be "
                  "written in M3U)", file=sys.stderr)
    if args.json:
        _print_json([r.to_dict() for r in recs])
        return
    print(heading)
    if not recs:
        print("  (no song passes the filters)")
    for i, r in enumerate(recs, 1):
        row = r.row
        minutes, seconds = divmod(round(row.duration or 0), 60)
        print(f"{i:3d}. {r.score:6.3f}  {row.artist or '?'} - {row.title or '?'}"
              f"  [{row.album or '?'}, {minutes}:{seconds:02d}]")
    if args.output:
        print(f"wrote {args.output}")


def _recommend(args: argparse.Namespace, action: str) -> int:
    with _library(args) as lib:
        status = lib.embedding_status()
        if status["stored"] and not status["current"]:
            print("note: the embeddings come from another model than the active one; "
                  "run `reform embed` to bring them up to date", file=sys.stderr)
        elif status["missing"]:
            print(f"note: {status['missing']} songs have no embedding yet and are left out; "
                  "run `reform embed`", file=sys.stderr)
        rec = lib.recommender(metric=args.metric, index=args.index)
        seeds = [lib.resolve(q, rec) for q in args.queries]
        if action == "similar":
            recs = rec.similar(seeds[0], args.n, _filters(args))
        elif action == "mix":
            recs = rec.mix(seeds, args.n, _filters(args))
        else:
            recs = rec.playlist(seeds, args.length, _filters(args))
    names = ", ".join(s.label for s in seeds)
    _show(recs, args, {"similar": f"songs like {names}:", "mix": f"a mix from {names}:",
                       "playlist": f"a playlist from {names}:"}[action])
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    return _recommend(args, "similar")


def cmd_mix(args: argparse.Namespace) -> int:
    return _recommend(args, "mix")


def cmd_playlist(args: argparse.Namespace) -> int:
    return _recommend(args, "playlist")


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_embeddings

    with _library(args) as lib:
        version, vectors = lib.embeddings()
        n = export_embeddings(args.out, lib.songs(), vectors, version)
    print(f"wrote {n} songs to {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    _print_device(args.device)
    with _library(args) as lib:
        report = lib.evaluate(labels=None if args.labels_file else args.labels, label_file=args.labels_file,
                              label_column=args.label_column, exclude_same_album=args.exclude_same_album,
                              models=args.model or None, baselines=not args.no_baselines, seed=args.seed,
                              device=args.device)
        saved = lib.save_evaluation(report) if not args.model else None
    data = report.to_dict()
    if args.json:
        from .files import write_json

        write_json(args.json, data)
    print(f"{report.songs} songs, labels: {report.label_source or 'none'}"
          + (", album filter on" if args.exclude_same_album else ""))
    for note in report.notes:
        print(f"note: {note}")
    print()
    print(report.markdown())
    if args.per_label and report.label_source:
        print()
        print(report.per_label_markdown())
    if args.json:
        print(f"\nwrote {args.json}")
    if saved:
        print(f"saved beside the model: {saved} (shown by `reform serve`)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .config import default_home
    from .web.server import serve

    return serve(args.home or default_home(), host=args.host, port=args.port, open_browser=args.open,
                 token=args.token)


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the built-in demo library: build it, scan it, embed it, recommend."""
    from . import demo

    with _library(args, create=True) as lib:
        folder = lib.home.path / "demo-music"
        print(f"building the demo library in {folder} ...")
        demo.build(folder)
        summary = lib.scan(folder, jobs=args.jobs, progress=not args.quiet)
        _print_scan_summary(summary, lib)
        model = lib.model_path()
        print(f"\nembedding with {'the model shipped with ReFORM' if model.name == 'shipped.pt' else model}")
        embedded = lib.embed(progress=not args.quiet)
        print(f"{embedded.embedded} songs embedded, {embedded.unchanged} already were")
        rec = lib.recommender()
        for query in ("Chorale No. 1", "Beat No. 2"):
            seed = lib.resolve(query, rec)
            print(f"\nsongs like {seed.label}:")
            for i, r in enumerate(rec.similar(seed, 5), 1):
                print(f"  {i}. {r.score:.3f}  {r.row.artist} - {r.row.title}")
        seeds = [lib.resolve(q, rec) for q in ("Texture No. 1", "Arpeggio No. 3")]
        print(f"\na playlist flowing from {seeds[0].label} and {seeds[1].label}:")
        for i, r in enumerate(rec.playlist(seeds, 8), 1):
            print(f"  {i}. {r.row.artist} - {r.row.title}")
    print(f"\ntry: reform --home {args.home} similar 'Groove No. 1'   (or `reform --home {args.home} serve`)")
    return 0


# -- parser -------------------------------------------------------------------------------------------
def _device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model runs: auto (a CUDA GPU when torch sees one, else the CPU)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reform", description="ReFORM: music recommendations learned from your own music.")
    parser.add_argument("--home", default=None,
                        help="library home folder (default: $REFORM_HOME or the user data folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="build a small synthetic library, scan it, embed it, recommend")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("scan", help="analyse the music under folders (new and changed files only)")
    p.add_argument("paths", nargs="*", help="folders or files (default: the folders scanned before)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    _device_option(p)
    p.add_argument("--no-embed", action="store_true",
                   help="only analyse; by default each new song is also embedded with the active model")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("train", help="train the auto-encoder on the library (both phases)")
    p.add_argument("--phase", choices=("all", "pretrain", "cluster"), default="all")
    p.add_argument("--preset", choices=("default", "note"), default="default",
                   help="'note': the design note's settings as written (Adam from 0.1)")
    p.add_argument("--name", help="name of the run folder under <home>/models (default: a time stamp)")
    p.add_argument("--resume", action="store_true", help="continue the newest (or --name) run")
    p.add_argument("--init", default="scratch",
                   help="start from 'scratch', the 'shipped' model, or a model file (fine-tuning)")
    _device_option(p)
    for flag, name, kind, text in TRAIN_OPTIONS:
        p.add_argument(flag, dest=name, type=kind, help=text)
    for flag, name, choices, text in TRAIN_CHOICES:
        p.add_argument(flag, dest=name, choices=choices, help=text)
    p.add_argument("--widths", help="channels of the convolutional layers, e.g. 16,32,64,128,128,128")
    p.add_argument("--embedding-dim", type=int, help="size of the embedding")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("embed", help="compute song embeddings with the active model (new songs only)")
    p.add_argument("--model", help="'shipped', a run name, or a model file (default: the active model)")
    _device_option(p)
    p.set_defaults(func=cmd_embed)

    for name, helptext in (("similar", "songs like one song"), ("mix", "songs for a mix of several songs"),
                           ("playlist", "a playlist that flows from one or more songs")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("queries", nargs=1 if name == "similar" else "+", metavar="QUERY",
                       help="a path in the library, an audio file, or words of artist/title/album")
        if name == "playlist":
            p.add_argument("--length", type=int, default=20, help="number of songs (default 20)")
        else:
            p.add_argument("-n", type=int, default=10, help="number of songs (default 10)")
        p.add_argument("--exclude-same-artist", action="store_true")
        p.add_argument("--exclude-same-album", action="store_true")
        p.add_argument("--max-per-artist", type=int)
        p.add_argument("--metric", choices=("cosine", "dot", "euclidean"), default="cosine")
        p.add_argument("--index", choices=("auto", "exact", "faiss"), default="auto")
        p.add_argument("--json", action="store_true", help="a JSON list of songs")
        p.add_argument("-o", "--output", help="also write an M3U playlist (e.g. mix.m3u8)")
        p.add_argument("--relative", action="store_true", help="M3U paths relative to the playlist")
        p.set_defaults(func={"similar": cmd_similar, "mix": cmd_mix, "playlist": cmd_playlist}[name])

    p = sub.add_parser("check", help="verify the catalogue, every spectrogram and every embedding")
    p.add_argument("--repair", action="store_true",
                   help="rebuild a damaged catalogue, analyse and embed damaged songs again")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("export", help="write every song's path, tags and embedding (.npz .csv .parquet)")
    p.add_argument("out")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="measure recommendation quality against baselines")
    _device_option(p)
    p.add_argument("--labels", choices=("artist", "album", "genre"), default="artist",
                   help="the tag that says which songs belong together (default: artist)")
    p.add_argument("--labels-file", help="a TSV manifest with a 'path' column, e.g. realmusic.tsv")
    p.add_argument("--label-column", default="group", help="its column holding the label (default: group)")
    p.add_argument("--exclude-same-album", action="store_true",
                   help="ignore neighbours from the query's own album (the album filter)")
    p.add_argument("--model", action="append", help="model to evaluate (repeatable; default: the active "
                   "model with its pretraining-only stage and the untrained network)")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--per-label", action="store_true", help="also print precision@10 per label")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results as JSON to this file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("serve", help="a local web page to explore the library and listen")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this computer only; any other needs a token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--open", action="store_true", help="open the page in the web browser")
    p.add_argument("--token", help="access token (made up and printed when --host exposes the page)")
    p.set_defaults(func=cmd_serve)

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
    except (ReformError, sqlite3.Error, OSError) as exc:
        if args.verbose:
            raise
        if isinstance(exc, BrokenPipeError):  # e.g. `reform similar ... --json | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        error = _as_reform_error(exc)
        print(f"error: {error}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


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
