"""The public Python API: ``reform.Library(home)`` over everything the CLI can do."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .config import AudioConfig, MelConfig, default_home, feature_version
from .errors import QueryError
from .store import FileRow, Home


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
