"""The public Python API: ``reform.Library(home)``, a thin facade over everything the CLI can do.

Each method hands its work to the module that owns it: the home's layout, settings and
models (:mod:`reform.home`), scanning, training, embedding, recommendations, evaluation
runs (:mod:`reform.assess`) and checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .card import card_path
from .config import FINE_TUNE_BELOW, AudioConfig, MelConfig, default_home
from .errors import ConfigError, EmbedError, ModelError, QueryError, ReformError, TrainError
from .home import Home, Run, RunFiles, Settings, embedding_key, ended, faults, read_history
from .progress import Bar
from .store import FileRow, one_per_recording
from .text import agree, plural, shown, storable


class Library:
    """A library home: its catalogue, spectrograms, models and embeddings.

    Parameters
    ----------
    home : folder of the library; None means $REFORM_HOME or the user's data folder
    create : make an empty library if there is none (otherwise raise StoreError)
    read_only : open the catalogue for reading only (works in a home one cannot write to)
    audio, mel : the settings of the spectrograms; a home analysed with others is refused
        (LibraryError) unless ``reanalyse``, and then the next scan analyses every song again
    """

    def __init__(self, home: str | os.PathLike | None = None, *, create: bool = True,
                 read_only: bool = False, reanalyse: bool = False,
                 audio: AudioConfig = AudioConfig(), mel: MelConfig = MelConfig()):
        self.audio, self.mel = audio, mel
        self.home = Home(home or default_home(), Settings(audio, mel), create=create,
                         read_only=read_only, reanalyse=reanalyse)
        self.models = self.home.models

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

    def unnamed(self) -> list[str]:
        """The files and folders the scans passed over because their names are not UTF-8."""
        return self.home.unnamed()

    def damaged(self) -> list[FileRow]:
        """Every analysed file that decoding found damaged, with what it passed over (``reason``)."""
        return [row for row in self.songs() if row.reason]

    def song(self, path: str | os.PathLike) -> FileRow:
        """The catalogue row of an analysed file."""
        row = self._library_file(os.path.abspath(path))
        if row is None:
            raise QueryError("this file is not in the library", path=path,
                             hint="run `reform scan` on its folder first")
        if row.status != "ok":
            raise QueryError(f"this file could not be analysed: {row.reason}", path=path)
        return row

    def status(self) -> dict:
        """Counts for ``reform status``: songs, failed, duplicates, hours, the active model (and
        why its file cannot be loaded, if it cannot) and how many songs have an embedding
        (distinct recordings)."""
        from .card import file_problem, read_card
        from .home import SHIPPED

        counts = self.home.catalogue.counts()
        embeddings = self.embedding_status()
        version = problem = hint = None
        try:
            path = self.model_path()
            problem = file_problem(path)
            version = read_card(path)["version"]
        except ModelError as exc:   # the active run's model file is gone (an install without
            if self.models.active_name() != SHIPPED:   # a shipped model names no version, nor a problem)
                problem, hint = exc.message, exc.hint
        except KeyError:
            pass
        return {
            "home": str(self.home.path),
            "songs": counts["songs"],
            "failed": counts["failed"],
            "damaged": counts["damaged"],   # analysed, passing over what could not be read
            "unnamed": len(self.home.unnamed()),   # passed over: names not UTF-8 (`reform errors` lists them)
            "duplicates": counts["duplicates"],
            "unfinished": self.home.unfinished(),   # a catalogue made again, its songs not all back
            "folders_unknown": self.home.folders_unknown(),   # ... its music folders not known either
            "folders": self.home.roots(),           # the music folders a scan (or a repair) walks
            # those not there now (a disk not mounted): their songs are kept, their files unplayable;
            # a file scanned on its own is one of them, and there while it exists
            "missing_folders": [r for r in self.home.roots() if not os.path.exists(r)],
            "scan": self.home.scan_state(),         # "running", "interrupted" (not ended) or None
            "hours": round(counts["seconds"] / 3600, 3),
            "feature_version": self.home.spectrograms.feature_version,
            "model": {"name": self.models.active_name(), "version": version, "problem": problem, "hint": hint},
            "embeddings": {"songs": counts["unique_audio"] - embeddings["missing"],
                           "of": counts["unique_audio"], "current": embeddings["current"]},
        }

    def music_root(self) -> str:
        """The one music folder this library was scanned from (ConfigError if several or none)."""
        roots = self.home.roots()
        if not roots:
            raise ConfigError("no music folder is known yet",
                              hint="run `reform scan FOLDER`, or give --music-root FOLDER")
        if len(roots) > 1:
            files = sum(os.path.isfile(r) for r in roots)   # scanned one by one (`reform scan a.flac b.flac`)
            loose = f"{plural(files, 'file')} scanned on {agree(files, 'its', 'their')} own"
            places = (loose if files == len(roots) else f"{plural(len(roots) - files, 'music folder')} and {loose}"
                      if files else f"{len(roots)} music folders")
            common = os.path.commonpath(roots)
            raise ConfigError(f"the library's songs were scanned from {places}: say which folder holds them all",
                              hint="give --music-root FOLDER, the folder the players know as their music folder"
                                   + (f" ({common} holds every one)" if common != os.sep else ""))
        return roots[0]

    def most_played(self, n: int) -> list[FileRow]:
        """The ``n`` songs played most (by `reform mpd`), most played first."""
        if n < 1:
            return []
        by_hash = one_per_recording(self.songs())
        return [by_hash[h] for h, _ in self.home.catalogue.most_played(n) if h in by_hash]

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
             embed: bool = False, retry_failed: bool = False, forget_missing: bool = False,
             remember: bool = True, on_start: Callable[[int], None] | None = None,
             on_step: Callable[[int], None] | None = None, redo: frozenset[str] = frozenset(),
             device: str = "auto", across_songs: bool | None = None, ray: bool | str = False):
        """Analyse new and changed files under ``paths`` (the known folders if none).

        With ``embed`` each new song is also embedded with the active model while its
        spectrogram is in memory (`reform scan` does; see :meth:`scan_embedding`): by the
        worker that analysed it, or, ``across_songs``, by this process in batches of many
        songs' windows while the workers go on analysing.  ``across_songs`` None (auto)
        means on a GPU (``device`` cuda, or auto when one is visible), where large batches
        keep the card busy; on the CPU the workers embed, which measured faster
        (README, Speed).
        ``retry_failed`` tries again the files that failed before, changed or not.
        ``forget_missing`` removes the songs of a folder left with no audio (kept by default:
        see :func:`reform.scan.scan`); ``remember`` False does not add ``paths`` to the folders
        a later scan goes through.
        ``ray`` runs the per-file work on Ray (:mod:`reform.cluster`): True on a local Ray
        instance (or the one this process already joined), a string on the cluster at that
        address; ``jobs`` is then the number of Ray workers (default: the cluster's CPUs),
        and each of them embeds its own songs.
        ``progress`` shows a bar; ``on_start(total)`` and ``on_step(n)`` report the same to
        the caller (the web page's jobs use them).  ``redo`` names files to analyse again
        even if they did not change.  BusyError if another process is changing the library.
        """
        from .device import on_gpu
        from .scan import run_pool, scan

        embedding = self.scan_embedding() if embed else None
        pool = run_pool
        if ray is not False:
            from .cluster import RayPool, import_ray

            import_ray()  # no Ray: say so before any work
            pool = RayPool(None if ray is True else ray)
        gpu = embedding is not None and ray is False and on_gpu(device)
        across = gpu if across_songs is None else across_songs
        batch_device = ("cuda" if gpu else "cpu") if across else None
        with self.home.lock.hold("scan"), \
                Bar(progress, "scanning", "song", on_start, on_step) as bar:
            summary = scan(self.home, [os.fspath(p) for p in paths] or None, audio_cfg=self.audio,
                           mel_cfg=self.mel, jobs=jobs, on_start=bar.start, progress=bar.step,
                           embedding=embedding, batch_device=batch_device, redo=frozenset(redo),
                           retry_failed=retry_failed, forget_missing=forget_missing, remember=remember,
                           pool=pool)
            self.update_index()
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
            with Bar(progress, "checking", "song") as bar:
                return inspect(self.home, self.audio, self.mel, on_start=bar.start, progress=bar.step)

        found = look()
        if not repair or not found.problems:
            return found, None
        with self.home.lock.hold("check --repair"):
            forget(self.home, found.problems)
            redo = sorted(path for p in found.of("spectrogram") for path in p.paths if os.path.exists(path))
            if redo:   # those files alone: a repair adds and removes no other song
                summary = self.scan(*redo, redo=frozenset(redo), remember=False, embed=True, jobs=jobs,
                                    progress=progress)
                if summary.interrupted:
                    raise KeyboardInterrupt   # what was analysed is kept; `check --repair` goes on
            if found.of("embedding") and self.embedding_status()["current"]:
                self.embed(progress=progress)
            self.update_index()
            return found, look()

    def forget(self, *folders: str | os.PathLike):
        """Stop following music folders, or pass over folders inside them: their songs leave the
        library, the files stay (:func:`reform.scan.forget`).  BusyError if another process is
        changing the library."""
        from .scan import forget

        with self.home.lock.hold("forget"):
            forgotten = forget(self.home, [os.fspath(f) for f in folders])
            self.update_index()
            return forgotten

    def scan_embedding(self):
        """The embedder a scan hands its workers: the active model, read from its card (no
        torch in this process: :mod:`reform.scanmodel`); None when no model fits this library's
        spectrograms."""
        from .card import read_card
        from .config import EmbedConfig
        from .home import SHIPPED
        from .scanmodel import SpectrogramEmbedder

        try:
            path = self.model_path()
            card = read_card(path)
        except ModelError:
            if self.models.active_name() != SHIPPED:
                raise   # the run the user chose is lost: said now, not as songs left without embeddings
            return None   # an install that ships no model
        if card.get("feature_version") != self.home.spectrograms.feature_version:
            return None
        return SpectrogramEmbedder(str(path), EmbedConfig().key(card["version"]))

    # -- models -------------------------------------------------------------------------------
    def model_path(self, which: str | os.PathLike | None = None) -> Path:
        """Resolve a model: None is the active one; "shipped"; the name of a run in this home;
        or the path of a model file (see :class:`reform.home.Models`)."""
        return self.models.path(which)

    def runs(self) -> list[Run]:
        """Every training run of this home, oldest first, with how far it got."""
        return self.models.runs()

    def delete_runs(self, names: list[str]) -> int:
        """Delete training runs (see :meth:`reform.home.Models.delete`), and the embeddings kept of
        their models (:data:`reform.embed.KEPT_MODELS`); returns the bytes freed.  Each is checked
        before any is deleted."""
        from .home import SHIPPED

        names = list(dict.fromkeys(names))
        with self.home.lock.hold("models --delete"):
            for name in names:   # refused before anything is deleted
                self.models.deletable(name)
            gone = {embedding_key(RunFiles(self.models.folder / name).model) for name in names}
            freed = sum(self.models.delete(name) for name in names)
            # the embeddings of a model no run left has (two runs may hold the same weights)
            kept = {embedding_key(RunFiles(run.folder).model) for run in self.models.runs()}
            kept.add(embedding_key(self.model_path(SHIPPED)))
            with self.home.catalogue.transaction():
                for model in gone - kept - {None, self.home.embedding_model()}:
                    self.home.catalogue.drop_embeddings(model=model)
        return freed

    def use(self, which: str) -> str:
        """Make "shipped" or a run the active model; returns its name.  Where the library kept its
        embeddings (a model used before: :data:`reform.embed.KEPT_MODELS`), recommendations take
        them at once; only the songs that lack one wait for `reform embed`."""
        # the writer lock: an `embed` running would store the model it began with as the library's
        with self.home.lock.hold("use"), self.home.catalogue.transaction():
            name = self.models.activate(which)
            wanted = self.embedding_status(count_missing=False)["expected"]
            if wanted and wanted in self.home.catalogue.embedding_models():
                self.home.set_embedding_model(wanted)
        return name

    def load_model(self, which: str | os.PathLike | None = None):
        """Load a model bundle and check that it was trained on this library's features."""
        return self.models.load(which)

    # -- training -----------------------------------------------------------------------------
    def training_songs(self):
        """One entry per distinct analysed audio (copies of the same audio count once)."""
        from .dataset import Song

        seen: dict[str, Song] = {}
        for row in self.songs():
            if row.feature_version == self.home.spectrograms.feature_version and row.hash not in seen:
                seen[row.hash] = Song(row.hash, row.channels, row.frames, row.album)
        return list(seen.values())

    def default_start(self):
        """The model a training run starts from unless told: the shipped model (fine-tuning) on a
        library of fewer than FINE_TUNE_BELOW songs, where that recommended better than random
        weights; None (random weights) on a larger library, where they did better, and on one
        analysed with spectrogram settings the shipped model was not trained on."""
        from .home import SHIPPED

        if len(self.training_songs()) >= FINE_TUNE_BELOW:
            return None
        try:
            return self.load_model(SHIPPED)
        except ModelError:
            return None

    def run_folder(self, name: str | None = None, *, resume: bool = False) -> Path:
        """The folder of a training run: the named one, else the newest (resume) or a new one."""
        return self.models.run_folder(name, resume=resume)

    def new_run_folder(self, name: str | None = None) -> Path:
        """The folder a new run of both phases would train in; TrainError, before any work, when a
        run of that name has trained already."""
        folder = self.run_folder(name)
        _refuse_to_overwrite(RunFiles(folder), "all")
        return folder

    def train(self, *, name: str | None = None, phase: str = "all", resume: bool = False,
              model_cfg=None, train_cfg=None, init=None, callback=None,
              max_epochs: int | None = None, threads: int | None = None, precision: str | None = None,
              device: str = "auto", activate: bool = False):
        """Train the auto-encoder on this library (see :class:`reform.train.Trainer`).

        With ``resume`` the run continues with the settings it was started with, but for
        ``max_epochs`` (a higher cap lets it go on), ``threads`` and ``precision``: those are
        about the machine it now runs on, not about what it learns, and win when given.
        Started by torchrun, every process calls this and they train together
        (:mod:`reform.distributed`): rank 0 holds the home's lock, reads the songs and writes;
        the others train on what it sends them.  The model becomes the active model when both
        phases ended on their schedule and learnt (:func:`reform.home.faults`), or with
        ``activate`` (see :mod:`reform.home`).  The
        model's input height is the home's mel bands: a ``model_cfg`` asking for other
        ones is refused before any work (ConfigError).
        """
        import contextlib

        from .distributed import session
        from .train import Trainer

        own = RunFiles(self.run_folder(name)).pretrain if name and phase == "cluster" and not resume else None
        if own is not None and own.exists():   # the clustering phase of a run that pretrained: it goes
            if init is not None:               # on from that pretraining, its architecture and scaling
                raise ConfigError(f"the run {name} goes on from its own pretraining", path=own,
                                  hint="leave out --init, or give another --name for a new run")
            init = self.load_model(own)
        with session(device) as group:
            with self.home.lock.hold("train") if group.main else contextlib.nullcontext():
                # rank 0 alone reads the home and decides; the other processes get its answer
                plan: tuple | ReformError | None = None
                if group.main:
                    try:
                        plan = self._train_plan(name, resume, model_cfg, train_cfg, init, phase,
                                                dict(max_epochs=max_epochs, threads=threads, precision=precision))
                    except ReformError as exc:
                        plan = exc                     # every process stops with rank 0's reason
                plan = group.broadcast(plan)
                if isinstance(plan, ReformError):
                    raise plan
                folder, model_cfg, train_cfg, songs = plan
                # a resume of a run that had ended writes its lost or damaged model again, and
                # that alone does not make it the active model: the user may have chosen another
                # (a model written before: a run whose last write failed is finished by this one)
                was_ended = resume and card_path(RunFiles(folder).model).exists() \
                    and ended(read_history(folder))
                trainer = Trainer(self.home.spectrograms, songs, folder, model_cfg=model_cfg,
                                  train_cfg=train_cfg, feature_version=self.home.spectrograms.feature_version,
                                  init=init, callback=callback, device=device, group=group)
                result = trainer.run(phase, resume=resume)
                complete = ended(result.history) and not faults(result.history)
                if group.main and result.files.model.exists() and (activate or complete and not was_ended):
                    with self.home.catalogue.transaction():
                        self.models.activate(folder.name)
        return result

    def _train_plan(self, name, resume, model_cfg, train_cfg, init=None, phase="all", changes=None):
        """The run folder, the settings and the songs of a training run (a resumed run's own
        settings; a fine-tuned run's architecture is its starting model's); a checkpoint
        half-written by a killed run is removed."""
        import dataclasses

        from .config import ModelConfig, TrainConfig
        from .files import remove_dead_temporaries
        from .train import read_checkpoint_plan

        folder = self.run_folder(name, resume=resume)
        files = RunFiles(folder)
        if not resume:
            _refuse_to_overwrite(files, phase)
        if resume:
            if not files.checkpoint.exists():
                made = [f for f in (files.model, files.pretrain) if f.exists()]
                if made:   # trained, then its checkpoint was deleted: a new run can start from its model
                    raise TrainError(f"the run {folder.name} has lost its checkpoint ({files.checkpoint.name}), so "
                                     f"its training cannot go on; its {made[0].name} is kept", path=folder,
                                     hint=f"start a new run from it: `reform train --name {folder.name}-2 --init "
                                          f"{made[0]}`")
                raise TrainError(f"the run {folder.name} stopped before its first epoch ended: "
                                 "there is nothing to resume", path=folder,
                                 hint=f"start it again with `reform train --name {folder.name}` (without --resume), "
                                      "and the options it was started with" + (
                                          f" (its {files.config.name} holds them)" if files.config.exists() else ""))
            model_cfg, train_cfg, trained_on = read_checkpoint_plan(files.checkpoint)
        elif init is not None:
            if model_cfg is not None and self._model_config(model_cfg) != init.cfg:
                raise ConfigError("fine-tuning keeps the architecture of the model it starts from "
                                  f"(widths {','.join(map(str, init.cfg.widths))}, embedding "
                                  f"{init.cfg.embedding_dim}); these model settings differ from it",
                                  hint="leave out --widths, --embedding-dim and --projection-dim, "
                                       "or train from scratch (--init scratch)")
            model_cfg = init.cfg
        given = {key: value for key, value in (changes or {}).items() if value is not None}
        if given:
            train_cfg = dataclasses.replace(train_cfg or TrainConfig(), **given)
        if folder.is_dir():
            remove_dead_temporaries(folder)  # a checkpoint half-written when a run was killed
        songs = self.training_songs()
        if resume and trained_on is not None:
            songs = _songs_resumed(songs, trained_on, folder)
        lost = self.home.spectrograms.unreadable([s.hash for s in songs])
        if lost:   # said now, by the songs' names, rather than by a hash once the epoch reaches one
            rows = self.home.catalogue.rows_by_hash(lost)
            named = "; ".join(rows[h].path for h in lost[:3] if h in rows) + ("..." if len(lost) > 3 else "")
            raise TrainError(f"{plural(len(lost), 'song')} of the library {agree(len(lost), 'has', 'have')} a "
                             f"spectrogram that is lost or cannot be read: {named}",
                             hint="`reform check --repair` analyses them again; a song whose file is gone too "
                                  "leaves the library with `reform scan --forget-missing`")
        return (folder, self._model_config(model_cfg or ModelConfig()), train_cfg or TrainConfig(), songs)

    def _model_config(self, cfg):
        """``cfg`` with the home's mel bands as its input height: the two settings that name
        the number of bands (MelConfig, ModelConfig) must agree."""
        import dataclasses

        from .config import ModelConfig

        if cfg.n_mels == self.mel.n_mels:
            return cfg
        if cfg.n_mels != ModelConfig.n_mels:
            raise ConfigError(f"the model asks for {cfg.n_mels} mel bands, this library's "
                              f"spectrograms have {self.mel.n_mels}",
                              hint="leave the model's n_mels alone: it follows the library")
        return dataclasses.replace(cfg, n_mels=self.mel.n_mels)

    # -- embeddings and recommendations -------------------------------------------------------
    def embed(self, model: str | os.PathLike | None = None, *, progress: bool = False,
              on_start: Callable[[int], None] | None = None,
              on_step: Callable[[int], None] | None = None, device: str = "auto"):
        """Embed every song that has no embedding from the active (or given) model yet."""
        from .embed import embed_library

        bundle = self.load_model(model)
        with self.home.lock.hold("embed"), \
                Bar(progress, "embedding", "song", on_start, on_step) as bar:
            summary = embed_library(self.home.catalogue, self.home.spectrograms, bundle,
                                    on_start=bar.start, progress=bar.step, device=device)
            self.update_index()
            return summary

    def embeddings(self) -> tuple[str, dict[str, np.ndarray]]:
        """The model version of the stored embeddings and the embedding of every song hash
        (but a damaged one, as queries leave it out: Catalogue.embedding_matrix)."""
        version = self.home.embedding_model()
        hashes, matrix = self.home.catalogue.embedding_matrix(version) if version else ([], ())
        vectors = dict(zip(hashes, matrix))
        if not vectors:
            raise EmbedError("no song has an embedding yet", hint="run `reform embed`")
        return version, vectors

    def embedding_status(self, count_missing: bool = True) -> dict:
        """Which embeddings are stored and whether they come from the active model with the
        current settings (read from the model's card: no torch, no weights loaded, unless the
        card is lost), and how many songs lack one (0 when not ``count_missing``)."""
        from .card import read_card
        from .config import EmbedConfig

        stored = self.home.embedding_model()
        try:
            path = self.model_path()
        except ModelError:   # the active run lost its model file: its card still names its version
            path = RunFiles(self.models.folder / self.models.active_name()).model
        try:
            try:
                version = read_card(path)["version"]
            except ModelError:   # its card lost between two writes: loading the model writes it again
                version = self.load_model().version
            expected = EmbedConfig().key(version)
        except ModelError:
            expected = None
        # current: None where the active model cannot be found, so no one is told to embed with it
        return {"stored": stored, "expected": expected,
                "current": None if expected is None and stored is not None else
                stored is not None and stored == expected,
                "missing": self.stale_embeddings() if count_missing else 0}

    def stale_embeddings(self) -> int:
        """How many analysed songs lack an embedding from the model the embeddings come from."""
        return self.home.catalogue.missing_embeddings(self.home.embedding_model())

    def recommender(self, metric: str = "cosine", index: str = "auto", expand: int | None = None,
                    walk: int | None = None):
        """Recommendations over the home's stored search index (brought up to date, or built,
        when it is behind the embeddings; see :mod:`reform.songindex`); ``walk``: links per song of
        the walk that ranks songs, ``expand``: songs a query is averaged with instead (None: the
        defaults for the metric; see :func:`reform.recommend.ranking`)."""
        from .recommend import Recommender
        from .songindex import load

        if not self.home.catalogue.has_songs():
            raise QueryError("the library is empty", hint="run `reform scan FOLDER` first")
        return Recommender(load(self.home, metric, index), self.home.catalogue.rows_by_hash, expand, walk)

    def update_index(self) -> list[str]:
        """Bring the stored search indexes up to date with the embeddings (the writers call
        this, holding the writer lock; see :func:`reform.songindex.update`)."""
        from .songindex import update

        with self.home.lock.hold("index"):
            return update(self.home)

    def index_metrics(self) -> list[str]:
        """The metrics the home has a stored search index for."""
        from .songindex import stored_metrics

        return stored_metrics(self.home)

    def index_problems(self) -> list[str]:
        """What is wrong with the stored search indexes (see :func:`reform.songindex.problems`)."""
        from .songindex import problems

        return problems(self.home)

    def resolve(self, query: str | os.PathLike, recommender=None):
        """A query as a Seed: a library path, an audio file outside the library (analysed on the
        fly, not added), or words matched against artist, title, album and file name."""
        from .recommend import Seed
        from .search import find

        rec = recommender or self.recommender()
        text = os.fspath(query)
        path = os.path.abspath(os.path.expanduser(text))
        row = self._library_file(path) if storable(path) else None
        if row is not None:
            if row.status != "ok":
                raise QueryError(f"this file could not be analysed: {row.reason}", path=path,
                                 hint="see `reform errors`; choose another song")
            return rec.seed_of(row)
        if os.path.isfile(path):
            from .library import stored_hash

            # a copy of a library song
            copy = self.home.catalogue.rows_by_hash([stored_hash(path, self.home.spectrograms)])
            if copy:
                return rec.seed_of(next(iter(copy.values())))
            vector, outside = self._embed_file(path)
            return Seed(vector, None, shown(os.path.basename(path)), outside)
        if not storable(text):
            raise QueryError("no such file, and these words are not UTF-8", path=text,
                             hint="check the terminal's character set (its locale)")
        try:
            return rec.seed_of(find(self.home.catalogue, text, rec.one_song))
        except QueryError:
            name = os.path.basename(text.rstrip(os.sep))
            failed = [r for r in self.failures() if os.path.basename(r.path) == name]
            if len(failed) == 1:   # named by its file name: not "no song has this file name"
                raise QueryError(f"this file could not be analysed: {failed[0].reason}", path=failed[0].path,
                                 hint="see `reform errors`; choose another song") from None
            raise

    def _library_file(self, path: str):
        """The catalogue's row of ``path``, also when it names a song through another way to its
        folder than the scan took (the real folder of a scanned link, or a link to a scanned
        folder): otherwise a song of the library would be analysed again as an outside file and
        come out as its own nearest song."""
        row = self.home.catalogue.file(path=path)
        if row is not None:
            return row
        real = os.path.realpath(path)
        for root in self.home.roots():
            within = os.path.relpath(real, os.path.realpath(root))
            if within != os.pardir and not within.startswith(os.pardir + os.sep):
                row = self.home.catalogue.file(path=os.path.join(root, within))
                if row is not None:
                    return row
        return None

    def _embed_file(self, path: str) -> tuple[np.ndarray, FileRow]:
        """An outside file's song vector, and its length and tags as a row of no catalogue
        (``Seed.outside``); its tags only, where a library song's may come from its folders."""
        from .embed import Embedder
        from .errors import DecodeError, FeatureError
        from .library import read_tags
        from .scan import analyse

        version, _ = self.embeddings()
        embedder = Embedder(self.load_model())
        if embedder.key != version:
            raise EmbedError("the stored embeddings come from another model than the active one",
                             hint="run `reform embed` to bring them up to date")
        try:
            spec, info = analyse(path, self.audio, self.mel)
        except FeatureError as exc:   # silent, or too short: nothing to recommend by, as in a scan
            raise QueryError(f"the query file cannot be analysed: {exc.message}", path=path,
                             hint="choose a song with sound in it") from exc
        except DecodeError as exc:
            raise QueryError(f"the query file cannot be decoded: {exc.message}", path=path,
                             hint="check that the file plays in another player, or name a song of the "
                                  "library by words") from exc
        st, tags = os.stat(path), read_tags(path, root=os.path.dirname(path))
        row = FileRow(id=0, path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, hash=None, status="outside",
                      reason=None, duration=info.duration, sample_rate=info.sample_rate, channels=info.channels,
                      frames=info.frames, codec=info.codec, feature_version=None, artist=tags.artist,
                      album=tags.album, title=tags.title, track=tags.track, year=tags.year, genre=tags.genre,
                      updated_at=0.0)
        return embedder.song(spec), row

    def similar(self, query, n: int = 10, filters=None, **options):
        from .recommend import Filters

        rec = self.recommender(**options)
        return rec.similar(self.resolve(query, rec), n, filters or Filters())

    def mix(self, queries, n: int = 10, filters=None, how: str = "each", **options):
        """Songs for a mix of the songs ``queries`` name (one query, or several; a song named twice
        counts once); ``how``: see :meth:`reform.recommend.Recommender.mix`."""
        from .recommend import Filters

        rec = self.recommender(**options)
        return rec.mix(self._seeds(queries, rec), n, filters or Filters(), how=how)

    def playlist(self, queries, length: int = 20, filters=None, **options):
        from .recommend import Filters

        rec = self.recommender(**options)
        return rec.playlist(self._seeds(queries, rec), length, filters or Filters())

    def _seeds(self, queries, rec) -> list:
        """The seeds of one query or several, each song once: a lone string was read as a list of
        its letters, each of them a query."""
        from .recommend import distinct

        if isinstance(queries, (str, os.PathLike)):
            queries = [queries]
        return distinct(self.resolve(q, rec) for q in queries)[0]

    # -- evaluation -----------------------------------------------------------------------------
    def evaluation_songs(self, labels: str | None = "artist", label_file: str | None = None,
                         label_column: str = "group"):
        """The songs an evaluation uses, their labels and albums (see :mod:`reform.assess`)."""
        from .assess import evaluation_songs

        return evaluation_songs(self.songs(), labels, label_file, label_column)

    def evaluate(self, **options):
        """Run the retrieval protocols for baselines and models (see :func:`reform.assess.evaluate`)."""
        from .assess import evaluate

        return evaluate(self.home, **options)

    def save_evaluation(self, report):
        """Keep an evaluation of the active model beside it: an :class:`reform.assess.Saved`, true
        when kept, with where or why not (see :func:`reform.assess.save`)."""
        from .assess import save

        return save(self.home, report)


def embedding_note(stored: bool, current: bool | None, missing: int) -> str | None:
    """What recommendations lack, as the command line and the web API both say it: the stored
    embeddings are another model's than the active one (after `reform use`, until `reform embed`),
    else ``missing`` songs are left out for want of one; None when nothing is."""
    if stored and current is False:
        return "the embeddings come from another model than the active one; run `reform embed` to bring them up to date"
    if missing:
        return (f"{plural(missing, 'song')} {agree(missing, 'has', 'have')} no embedding yet and "
                f"{agree(missing, 'is', 'are')} left out; run `reform embed`")
    return None


def short_note(found: int, wanted: int, filtered: bool, others: int | None = None) -> str | None:
    """Why a list of recommendations holds fewer songs than asked for, as the command line and
    the web API both say it; None when it holds them all, or none (which each says its own way).
    ``others``: the songs the library holds beside the seeds; a list holding them all was not
    cut by the filters, active or not."""
    if not 0 < found < wanted:
        return None
    why = "the filters leave" if filtered and (others is None or found < others) else "the library has"
    return f"{found} of the {wanted} songs asked for: {why} no more"


def _songs_resumed(songs: list, trained_on: list[str], folder: Path) -> list:
    """The songs a run began with, in their order, from the library's ``songs`` now: a resumed
    run reads the windows and bank rows it would have had uninterrupted.  Songs scanned since
    wait for a new run; a song gone from the library since cannot be trained on, so the run
    cannot go on as it began (TrainError)."""
    now = {song.hash: song for song in songs}
    gone = [digest for digest in trained_on if digest not in now]
    if gone:
        raise TrainError(f"{plural(len(gone), 'song')} the run {folder.name} trains on "
                         f"{agree(len(gone), 'has', 'have')} left the library since it began, so it "
                         "cannot go on as it began", path=folder,
                         hint=f"start a new run on the library as it is: `reform train --name {folder.name}-2`")
    return [now[digest] for digest in trained_on]


def _refuse_to_overwrite(files: RunFiles, phase: str) -> None:
    """A new run may not take the folder of one that trained: its epochs, or a model in use,
    would be replaced.  A clustering phase may start in a run that only pretrained."""
    from .train import checkpoint_phase

    folder = files.folder
    if not any(f.exists() for f in (files.checkpoint, files.pretrain, files.model)) or (
            phase == "cluster" and not files.model.exists() and files.pretrain.exists()
            and checkpoint_phase(files.checkpoint) != "cluster"):
        return
    raise TrainError(f"a run named {folder.name} has trained already", path=folder,
                     hint=f"`reform train --resume --name {folder.name}` goes on with it; another --name "
                          "starts a new run (`reform models` lists them)")
