"""The public Python API: ``reform.Library(home)`` over everything the CLI can do."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .config import AudioConfig, MelConfig, default_home, feature_version
from .errors import EmbedError, EvaluateError, ModelError, QueryError, TrainError
from .store import FileRow, Home


SHIPPED_MODEL = Path(__file__).parent / "models" / "shipped.pt"


class _Progress:
    """A tqdm bar (when asked for) plus the caller's own start/step callbacks."""

    def __init__(self, show: bool, desc: str, unit: str, on_start=None, on_step=None):
        self.show, self.desc, self.unit = show, desc, unit
        self.on_start, self.on_step = on_start, on_step
        self.bar = None

    def start(self, total: int) -> None:
        if self.show and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=self.unit, desc=self.desc, dynamic_ncols=True)
        if self.on_start:
            self.on_start(total)

    def step(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)
        if self.on_step:
            self.on_step(n)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _last_written(run: Path) -> float:
    """When a training run last saved anything: its checkpoint, else its settings."""
    files = [run / "checkpoint.pt", run / "config.json"]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


class Library:
    """A library home: its catalogue, spectrograms, models and embeddings.

    Parameters
    ----------
    home : folder of the library; None means $REFORM_HOME or the user's data folder
    create : make an empty library if there is none (otherwise raise StoreError)
    """

    def __init__(self, home: str | os.PathLike | None = None, *, create: bool = True,
                 audio: AudioConfig = AudioConfig(), mel: MelConfig = MelConfig()):
        self.audio, self.mel = audio, mel
        self.home = Home(home or default_home(), feature_version(audio, mel), create=create)

    def close(self) -> None:
        self.home.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- catalogue ----------------------------------------------------------------------------
    def songs(self) -> list[FileRow]:
        """Every analysed file, sorted by path."""
        return self.home.catalogue.files(status="ok")

    def failures(self) -> list[FileRow]:
        """Every file that could not be analysed, with its reason."""
        return self.home.catalogue.files(status="failed")

    def song(self, path: str | os.PathLike) -> FileRow:
        """The catalogue row of an analysed file."""
        row = self.home.catalogue.file(path=os.path.abspath(path))
        if row is None:
            raise QueryError("this file is not in the library", path=path,
                             hint="run `reform scan` on its folder first")
        if row.status != "ok":
            raise QueryError(f"this file could not be analysed: {row.reason}", path=path)
        return row

    def status(self) -> dict:
        """Counts for ``reform status``: songs, failed, duplicates, hours, models, embeddings."""
        counts = self.home.catalogue.counts()
        return {
            "home": str(self.home.path),
            "songs": counts["songs"],
            "failed": counts["failed"],
            "duplicates": counts["duplicates"],
            "hours": round(counts["seconds"] / 3600, 3),
            "feature_version": self.home.spectrograms.feature_version,
        }

    # -- spectrograms -------------------------------------------------------------------------
    def spectrogram(self, path: str | os.PathLike) -> np.ndarray:
        """The stored log-mel spectrogram of a song.

        Returns
        -------
        ndarray, shape (channels, n_mels, frames), float32, in dB (channels in file order)
        """
        row = self.song(path)
        stored = self.home.spectrograms.open(row.hash)  # (C, T, M) float16, memory-mapped
        return np.ascontiguousarray(stored.transpose(0, 2, 1), dtype=np.float32)

    # -- scanning -----------------------------------------------------------------------------
    def scan(self, *paths: str | os.PathLike, jobs: int | None = None, progress: bool = False,
             embed: bool = False, on_start: Callable[[int], None] | None = None,
             on_step: Callable[[int], None] | None = None, redo: frozenset[str] = frozenset(),
             device: str = "auto"):
        """Analyse new and changed files under ``paths`` (the known folders if none).

        With ``embed`` the workers also embed each new song with the active model while its
        spectrogram is in memory (`reform scan` does; see :meth:`scan_embedding`).
        ``progress`` shows a bar; ``on_start(total)`` and ``on_step(n)`` report the same to
        the caller (the web page's jobs use them).  ``redo`` names files to analyse again
        even if they did not change.  With a GPU (``device`` cuda, or auto when one is
        visible) the workers only analyse, and this process then embeds the new songs on the
        GPU in batches of many songs' windows.  BusyError if another process is changing
        the library.
        """
        from .device import on_gpu
        from .scan import scan

        gpu = embed and on_gpu(device)
        embedding = self.scan_embedding() if embed and not gpu else None
        with self.home.lock.hold("scan"), \
                _Progress(progress, "scanning", "song", on_start, on_step) as bar:
            summary = scan(self.home, [os.fspath(p) for p in paths] or None, audio_cfg=self.audio,
                           mel_cfg=self.mel, jobs=jobs, on_start=bar.start, progress=bar.step,
                           embedding=embedding, redo=frozenset(redo))
        if gpu and self.scan_embedding() is not None:
            summary.embedded = self.embed(progress=progress, device=device).embedded
        return summary

    def check(self, *, repair: bool = False, progress: bool = False, jobs: int | None = None):
        """Verify every stored spectrogram and embedding (see :mod:`reform.check`).

        With ``repair`` the songs whose spectrogram is damaged are analysed again and the
        songs lacking a sound embedding are embedded again (when the stored embeddings come
        from the active model; otherwise `reform embed` replaces them all).  Returns the
        inspection before, and after the repair (None without ``repair``).
        """
        from .check import forget, inspect

        def look():
            with _Progress(progress, "checking", "song") as bar:
                return inspect(self.home, self.audio, self.mel, on_start=bar.start, progress=bar.step)

        found = look()
        if not repair or not found.problems:
            return found, None
        with self.home.lock.hold("check --repair"):
            forget(self.home, found.problems)
            redo = {path for p in found.of("spectrogram") for path in p.paths}
            if redo:
                self.scan(redo=frozenset(redo), embed=True, jobs=jobs, progress=progress)
            if found.of("embedding") and self.embedding_status()["current"]:
                self.embed(progress=progress)
            return found, look()

    def scan_embedding(self):
        """The embedder a scan hands its workers: the active model, read from its card (no
        torch in this process); None when no model fits this library's spectrograms."""
        from .card import read_card
        from .config import EmbedConfig
        from .embed import SpectrogramEmbedder

        try:
            path = self.model_path()
            card = read_card(path)
        except ModelError:
            return None
        if card.get("feature_version") != self.home.spectrograms.feature_version:
            return None
        return SpectrogramEmbedder(str(path), EmbedConfig().key(card["version"]))

    # -- models -------------------------------------------------------------------------------
    def model_path(self, which: str | os.PathLike | None = None) -> Path:
        """Resolve a model: None is the active one (the last trained here, else the shipped
        model); "shipped"; the name of a run in this home; or the path of a model file."""
        if which is None:
            active = self.home.catalogue.get_meta("active_model")
            if active and (self.home.models / active / "model.pt").exists():
                return self.home.models / active / "model.pt"
            which = "shipped"
        if which == "shipped":
            if not SHIPPED_MODEL.exists():
                raise ModelError("no model is trained yet and this installation ships none",
                                 hint="run `reform train` to train one on your library")
            return SHIPPED_MODEL
        path = Path(which)
        if (self.home.models / str(which) / "model.pt").exists():
            return self.home.models / str(which) / "model.pt"
        if path.is_dir() and (path / "model.pt").exists():
            return path / "model.pt"
        if path.is_file():
            return path
        raise ModelError(f"no model named {which!r}", hint="use 'shipped', a run name from "
                         f"{self.home.models}, or the path of a model.pt file")

    def load_model(self, which: str | os.PathLike | None = None):
        """Load a model bundle and check that it was trained on this library's features."""
        from .checkpoint import load_bundle

        path = self.model_path(which)
        bundle = load_bundle(path)
        if bundle.feature_version != self.home.spectrograms.feature_version:
            raise ModelError(f"the model was trained on other spectrogram settings "
                             f"({bundle.feature_version}, this library has "
                             f"{self.home.spectrograms.feature_version})", path=path,
                             hint="train a model on this library with `reform train`")
        return bundle

    # -- training -----------------------------------------------------------------------------
    def training_songs(self):
        """One entry per distinct analysed audio (byte-identical copies count once)."""
        from .dataset import Song

        seen: dict[str, Song] = {}
        for row in self.songs():
            if row.feature_version == self.home.spectrograms.feature_version and row.hash not in seen:
                seen[row.hash] = Song(row.hash, row.channels, row.frames)
        return list(seen.values())

    def run_folder(self, name: str | None = None, *, resume: bool = False) -> Path:
        """The folder of a training run: the named one, else the newest (resume) or a new one."""
        import time

        if name:
            return self.home.models / name
        if resume:
            runs = [p.parent for p in self.home.models.glob("*/config.json")]
            runs += [p.parent for p in self.home.models.glob("*/checkpoint.pt") if p.parent not in runs]
            if not runs:
                raise TrainError("there is no training run to resume", hint="start one with `reform train`")
            return max(runs, key=_last_written)
        return self.home.models / time.strftime("run-%Y%m%d-%H%M%S")

    def train(self, *, name: str | None = None, phase: str = "all", resume: bool = False,
              model_cfg=None, train_cfg=None, init=None, callback=None,
              max_epochs: int | None = None, device: str = "auto"):
        """Train the auto-encoder on this library (see :class:`reform.train.Trainer`).

        With ``resume`` the run continues with the settings it was started with (only
        ``max_epochs`` may raise its cap).  The finished model becomes the active model.
        """
        import dataclasses

        from .config import ModelConfig, TrainConfig
        from .files import remove_dead_temporaries
        from .train import Trainer, read_checkpoint_configs

        folder = self.run_folder(name, resume=resume)
        if resume:
            if not (folder / "checkpoint.pt").exists():
                raise TrainError(f"the run {folder.name} stopped before its first epoch ended: "
                                 "there is nothing to resume", path=folder,
                                 hint=f"start it again with `reform train --name {folder.name}` "
                                      "(without --resume)")
            model_cfg, train_cfg = read_checkpoint_configs(folder / "checkpoint.pt")
        if max_epochs is not None:
            train_cfg = dataclasses.replace(train_cfg or TrainConfig(), max_epochs=max_epochs)
        with self.home.lock.hold("train"):  # a scan must not remove spectrograms it reads
            if folder.is_dir():
                remove_dead_temporaries(folder)  # a checkpoint half-written when a run was killed
            trainer = Trainer(self.home.spectrograms,
                              self.training_songs(), folder, model_cfg=model_cfg or ModelConfig(),
                              train_cfg=train_cfg or TrainConfig(),
                              feature_version=self.home.spectrograms.feature_version, init=init,
                              callback=callback, device=device)
            result = trainer.run(phase, resume=resume)
            if result.files.model.exists():
                with self.home.catalogue.transaction():
                    self.home.catalogue.set_meta("active_model", folder.name)
        return result

    # -- embeddings and recommendations -------------------------------------------------------
    def embed(self, model: str | os.PathLike | None = None, *, progress: bool = False,
              on_start: Callable[[int], None] | None = None,
              on_step: Callable[[int], None] | None = None, device: str = "auto"):
        """Embed every song that has no embedding from the active (or given) model yet."""
        from .embed import embed_library

        bundle = self.load_model(model)
        with self.home.lock.hold("embed"), \
                _Progress(progress, "embedding", "song", on_start, on_step) as bar:
            return embed_library(self.home.catalogue, self.home.spectrograms, bundle,
                                 on_start=bar.start, progress=bar.step, device=device)

    def embeddings(self) -> tuple[str, dict[str, np.ndarray]]:
        """The model version of the stored embeddings and the embedding of every song hash."""
        version = self.home.catalogue.get_meta("embedding_model")
        vectors = self.home.catalogue.embeddings(version) if version else {}
        if not vectors:
            raise EmbedError("no song has an embedding yet", hint="run `reform embed`")
        return version, vectors

    def embedding_status(self) -> dict:
        """Which embeddings are stored and whether they come from the active model with the
        current settings (read from the model's card: no torch, no weights loaded)."""
        from .card import read_card
        from .config import EmbedConfig

        stored = self.home.catalogue.get_meta("embedding_model")
        try:
            expected = EmbedConfig().key(read_card(self.model_path())["version"])
        except ModelError:
            expected = None
        return {"stored": stored, "expected": expected,
                "current": stored is not None and stored == expected,
                "missing": self.stale_embeddings()}

    def stale_embeddings(self) -> int:
        """How many analysed songs lack an embedding from the model the embeddings come from."""
        version = self.home.catalogue.get_meta("embedding_model")
        have = set(self.home.catalogue.embeddings(version)) if version else set()
        return len({row.hash for row in self.songs()} - have)

    def recommender(self, metric: str = "cosine", index: str = "auto"):
        from .recommend import Recommender

        if not self.songs():
            raise QueryError("the library is empty", hint="run `reform scan FOLDER` first")
        _, vectors = self.embeddings()
        return Recommender(self.songs(), vectors, metric=metric, index=index)

    def resolve(self, query: str | os.PathLike, recommender=None):
        """A query as a Seed: a library path, an audio file outside the library (analysed on the
        fly, not added), or words matched against artist, title, album and file name."""
        from .recommend import Seed

        rec = recommender or self.recommender()
        text = os.fspath(query)
        path = os.path.abspath(os.path.expanduser(text))
        row = self.home.catalogue.file(path=path)
        if row is not None:
            if row.status != "ok":
                raise QueryError(f"this file could not be analysed: {row.reason}", path=path)
            return rec.seed_of(row)
        if os.path.isfile(path):
            return Seed(self._embed_file(path), None, os.path.basename(path))
        return rec.seed_of(rec.find(text))

    def _embed_file(self, path: str) -> np.ndarray:
        from .embed import Embedder, spectrogram_of_file
        from .errors import DecodeError

        version, _ = self.embeddings()
        embedder = Embedder(self.load_model())
        if embedder.key != version:
            raise EmbedError("the stored embeddings come from another model than the active one",
                             hint="run `reform embed` to bring them up to date")
        try:
            spec = spectrogram_of_file(path, self.audio, self.mel)
        except DecodeError as exc:
            raise QueryError(f"the query file cannot be decoded: {exc.message}", path=path) from exc
        return embedder.song(spec)

    def similar(self, query, n: int = 10, filters=None, **options):
        from .recommend import Filters

        rec = self.recommender(**options)
        return rec.similar(self.resolve(query, rec), n, filters or Filters())

    def mix(self, queries, n: int = 10, filters=None, **options):
        from .recommend import Filters

        rec = self.recommender(**options)
        return rec.mix([self.resolve(q, rec) for q in queries], n, filters or Filters())

    def playlist(self, queries, length: int = 20, filters=None, **options):
        from .recommend import Filters

        rec = self.recommender(**options)
        if isinstance(queries, (str, os.PathLike)):
            queries = [queries]
        return rec.playlist([self.resolve(q, rec) for q in queries], length, filters or Filters())

    # -- evaluation -----------------------------------------------------------------------------
    def save_evaluation(self, report) -> Path | None:
        """Keep an evaluation of the active model beside it as evaluation.json (a model trained
        in this home; the shipped model's folder belongs to the installation)."""
        from .files import write_json

        path = self.model_path()
        if path.name != "model.pt" or self.home.models not in path.parents:
            return None
        target = path.parent / "evaluation.json"
        write_json(target, report.to_dict())
        return target

    def evaluation_songs(self, labels: str | None = "artist", label_file: str | None = None,
                         label_column: str = "group"):
        """The songs an evaluation uses (one per distinct audio), their labels and albums, and
        notes on what was left out and why."""
        from .evaluate import read_label_file

        rows = {}
        for row in self.songs():
            rows.setdefault(row.hash, row)
        rows = list(rows.values())
        notes: list[str] = []
        if label_file:
            by_path = read_label_file(label_file, label_column)
            known = {os.path.realpath(r.path) for r in self.songs()}
            unknown = [p for p in by_path if p not in known]
            if unknown:
                notes.append(f"{len(unknown)} paths of the labels file are not in the library: ignored")
            found = [(r, by_path.get(os.path.realpath(r.path)) or by_path.get(r.path)) for r in rows]
            source = f"{os.path.basename(label_file)}:{label_column}"
        elif labels:
            if labels not in ("artist", "album", "genre"):
                raise EvaluateError(f"unknown label {labels!r}; use artist, album, genre or --labels-file")
            found = [(r, getattr(r, labels)) for r in rows]
            source = labels
        else:
            return rows, None, [r.album or "" for r in rows], notes, None
        missing = [r for r, lab in found if not lab]
        if missing:
            notes.append(f"{len(missing)} songs have no {source} label: left out")
        kept = [(r, lab) for r, lab in found if lab]
        return ([r for r, _ in kept], [lab for _, lab in kept], [r.album or "" for r, _ in kept],
                notes, source)

    def evaluate(self, *, labels: str | None = "artist", label_file: str | None = None,
                 label_column: str = "group", exclude_same_album: bool = False,
                 models: list[str | os.PathLike] | None = None, stages: bool = True,
                 baselines: bool = True, seed: int = 0, extra: dict | None = None,
                 device: str = "auto"):
        """Run the retrieval protocols (see :mod:`reform.evaluate`) for baselines and models.

        ``models`` are model specs (see :meth:`model_path`), by default the active model.
        With ``stages`` the same network untrained and, for a training run, its
        pretraining-only stage (no clustering phase) are evaluated too.  ``extra`` maps a
        method name to a function that returns its MethodVectors for the evaluated
        catalogue rows, in their order (used by bench/quality.py for the peers).
        """
        from . import evaluate as ev
        from .checkpoint import Bundle, load_bundle
        from .embed import Embedder
        from .model import ClusterAutoencoder

        rows, label_list, albums, notes, source = self.evaluation_songs(labels, label_file, label_column)
        order = np.random.default_rng(seed).permutation(len(rows))  # ties must not follow the folders
        rows = [rows[i] for i in order]
        albums = [albums[i] for i in order]
        label_list = None if label_list is None else [label_list[i] for i in order]
        if len(rows) < 2:
            raise EvaluateError(f"the evaluation needs at least 2 songs, {len(rows)} are usable",
                                hint="scan more music, or check the labels")
        specs = [self.home.spectrograms.open(r.hash) for r in rows]
        methods: list[tuple[str, Callable[[], ev.MethodVectors]]] = []
        if baselines:
            methods += [
                ("random", lambda: ev.random_vectors(len(rows), seed=seed)),
                ("song length only", lambda: ev.featurize(specs, ev.song_length, standardised=False,
                                                          metric="euclidean")),
                ("MFCC mean+std (20)", lambda: ev.featurize(specs, ev.mfcc_stats, standardised=True)),
                ("log-mel mean+std", lambda: ev.featurize(specs, ev.logmel_stats, standardised=True)),
            ]
        bundles: list[tuple[str, Bundle]] = []
        paths = [self.model_path(m) for m in (models or [None])]
        for path in paths:
            bundle = self.load_model(path)
            label = "ReFORM" if len(paths) == 1 else f"ReFORM {path.parent.name}"
            if stages:
                import torch

                torch.manual_seed(seed)
                untrained = ClusterAutoencoder(bundle.cfg)
                bundles.append((f"{label}: untrained network", Bundle(
                    untrained, bundle.cfg, bundle.normaliser, bundle.feature_version, "cluster",
                    "untrained", {})))
                if path.name == "model.pt" and (path.parent / "pretrain.pt").exists():
                    bundles.append((f"{label}: pretraining only (no clustering phase)",
                                    load_bundle(path.parent / "pretrain.pt")))
            phases = "both phases" if bundle.kind == "cluster" else "pretraining only"
            bundles.append((f"{label} ({phases})", bundle))
        for name, bundle in bundles:
            methods.append((name, lambda b=bundle: ev.featurize(specs, Embedder(b, device=device).song,
                                                                  standardised=False)))
        results = []
        for name, compute in methods:
            results.append(ev.score(name, compute(), label_list, albums, exclude_same_album))
        for name, compute_rows in (extra or {}).items():
            results.append(ev.score(name, compute_rows(rows), label_list, albums, exclude_same_album))
        if label_list is not None:
            skipped = results[0].labels.skipped_single if results[0].labels else []
            if skipped:
                notes.append(f"labels with a single song are not queried (they still compete as "
                             f"distractors): {', '.join(skipped)}")
        return ev.EvaluationReport(results, len(rows), source, notes)
