"""The public Python API: ``reform.Library(home)`` over everything the CLI can do."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .config import AudioConfig, MelConfig, default_home, feature_version
from .errors import ModelError, QueryError, TrainError
from .store import FileRow, Home


SHIPPED_MODEL = Path(__file__).parent / "models" / "shipped.pt"


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
    def scan(self, *paths: str | os.PathLike, jobs: int | None = None, progress: bool = False):
        """Analyse new and changed files under ``paths`` (the known folders if none)."""
        from .scan import scan

        bar = None
        if progress:
            from tqdm import tqdm

            def start(total: int) -> None:
                nonlocal bar
                if total:
                    bar = tqdm(total=total, unit="song", desc="scanning", dynamic_ncols=True)

            def step(n: int) -> None:
                bar.update(n)
        try:
            return scan(self.home, [os.fspath(p) for p in paths] or None, audio_cfg=self.audio,
                        mel_cfg=self.mel, jobs=jobs, on_start=start if progress else None,
                        progress=step if progress else None)
        finally:
            if bar is not None:
                bar.close()

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
            runs = sorted((p.parent for p in self.home.models.glob("*/checkpoint.pt")),
                          key=lambda p: p.stat().st_mtime)
            if not runs:
                raise TrainError("there is no training run to resume", hint="start one with `reform train`")
            return runs[-1]
        return self.home.models / time.strftime("run-%Y%m%d-%H%M%S")

    def train(self, *, name: str | None = None, phase: str = "all", resume: bool = False,
              model_cfg=None, train_cfg=None, init=None, callback=None):
        """Train the auto-encoder on this library (see :class:`reform.train.Trainer`).

        The finished model becomes the library's active model.
        """
        from .config import ModelConfig, TrainConfig
        from .train import Trainer, read_checkpoint_configs

        folder = self.run_folder(name, resume=resume)
        if resume:
            saved_model_cfg, saved_train_cfg = read_checkpoint_configs(folder / "checkpoint.pt")
            model_cfg = saved_model_cfg
            train_cfg = train_cfg or saved_train_cfg
        trainer = Trainer(self.home.spectrograms,
                          self.training_songs(), folder, model_cfg=model_cfg or ModelConfig(),
                          train_cfg=train_cfg or TrainConfig(),
                          feature_version=self.home.spectrograms.feature_version, init=init,
                          callback=callback)
        result = trainer.run(phase, resume=resume)
        if result.files.model.exists():
            self.home.catalogue.set_meta("active_model", folder.name)
        return result
