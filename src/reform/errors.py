"""One exception tree for ReFORM, named by the stage that failed.

Every error carries a plain-sentence message, the path it concerns (if any)
and a hint of what the user can do next.  The CLI prints these as one line and
exits non-zero; tracebacks are shown only with ``--verbose``.
"""

from __future__ import annotations

from pathlib import Path

from .text import shown


class ReformError(Exception):
    """Base of every error ReFORM raises on purpose."""

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint

    def __str__(self) -> str:
        return f"{shown(self.path)}: {self.message}" if self.path else self.message  # printable, whatever its bytes


class ConfigError(ReformError):
    """An option or configuration value is invalid."""


class LibraryError(ReformError):
    """The library home or a music folder cannot be used."""


class BusyError(LibraryError):
    """Another process is changing the library home (one writer at a time)."""


class DecodeError(ReformError):
    """An audio file cannot be read or decoded."""


class FeatureError(ReformError):
    """Decoded audio cannot be turned into a spectrogram (silent, too short)."""


class StoreError(ReformError):
    """The catalogue or the spectrogram store is missing, corrupt or from another version."""


class WriteError(StoreError):
    """A file could not be written (disk full, read-only, no permission); nothing half-written
    is left behind."""


class ClusterError(ReformError):
    """Ray is missing or unreachable, or a node of the cluster cannot use the library home."""


class DatasetError(ReformError):
    """There is not enough analysed audio to build training examples."""


class ModelError(ReformError):
    """A checkpoint is missing, unreadable or incompatible with this library."""


class TrainError(ReformError):
    """Training cannot start or continue."""


class EmbedError(ReformError):
    """Embeddings are missing or were made by another model."""


class QueryError(ReformError):
    """A recommendation query names no song, or several."""


class EvaluateError(ReformError):
    """An evaluation protocol cannot give a meaningful number on this input."""


class PlayerError(ReformError):
    """A music player (MPD) cannot be reached, or refuses what it is asked."""
