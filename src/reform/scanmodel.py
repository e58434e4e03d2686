"""The model a scan's workers embed with, named by its file: no torch until a worker loads it.

A scan hands this to its worker processes (``reform.scan.Embedding``).  Made in the scan's own
process from the model's card alone, it keeps torch out of that process, so that a scan with
nothing to do answers at once (importing torch alone takes a second) and a scan on the CPU
never loads the model where no song is embedded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .config import EmbedConfig

if TYPE_CHECKING:
    from .embed import Embedder, SongBatches

_loaded: dict[tuple[str, EmbedConfig], Embedder] = {}   # this process's embedders, by model and settings


@dataclass(frozen=True)
class SpectrogramEmbedder:
    """Embeds spectrograms inside scan workers.

    It travels to the worker processes as a model path and settings, and each process
    loads the model once, on its first song.  ``key`` is the name of the embeddings in
    the catalogue, read from the model's card without loading it.
    """

    model_path: str
    key: str
    cfg: EmbedConfig = EmbedConfig()

    def __call__(self, spec: np.ndarray) -> np.ndarray:
        return self.load().song(spec)

    def load(self) -> Embedder:
        """This process's embedder, the model loaded on the first call only."""
        from .checkpoint import load_bundle
        from .embed import Embedder

        embedder = _loaded.get((self.model_path, self.cfg))
        if embedder is None:
            embedder = Embedder(load_bundle(self.model_path), self.cfg)
            _loaded[(self.model_path, self.cfg)] = embedder
        return embedder

    def batches(self, device: str = "cpu") -> SongBatches:
        """Embedding in the calling process on ``device``, windows of many songs per batch."""
        from .checkpoint import load_bundle
        from .embed import Embedder, SongBatches

        return SongBatches(Embedder(load_bundle(self.model_path), self.cfg, device=device))
