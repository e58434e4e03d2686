"""Frozen dataclasses holding every setting, with the design note's values as defaults.

Each artefact ReFORM writes (spectrograms, checkpoints, embeddings) records the
settings it was made with, so that nothing made under one configuration is ever
mixed with something made under another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

# Bump when the feature code changes in a way that alters stored spectrograms.
FEATURE_CODE_VERSION = 1


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = 22050        # every file is resampled to this rate (Hz)
    resample_quality: str = "HQ"    # soxr quality: "HQ" (default) or "VHQ"
    min_duration: float = 1.0       # seconds; shorter files are recorded as too short


@dataclass(frozen=True)
class MelConfig:
    n_fft: int = 2048               # frame size in samples (the note's value)
    hop_length: int = 512           # hop size in samples (the note's value)
    n_mels: int = 128               # mel bins (the note's value)
    fmin: float = 0.0               # lowest mel band edge (Hz)
    fmax: float | None = None       # highest band edge; None means sample_rate / 2
    amin: float = 1e-10             # power floor before the logarithm (-100 dB)
    ref: float = 1.0                # 0 dB = power 1.0: a full-scale signal, so loudness is kept
    top_db: float = 80.0            # clip each song at its own maximum minus this many dB


@dataclass(frozen=True)
class ModelConfig:
    n_mels: int = 128                                      # input height: mel bins
    window_frames: int = 640                               # input width: frames (the note's value)
    widths: tuple[int, ...] = (16, 32, 64, 128, 128, 128)  # channels of the convolutional layers
    embedding_dim: int = 128                               # size of the final (dense) encoder layer
    kernel_size: int = 3                                   # convolution kernel (square)
    projection_dim: int = 0                                # pretraining only: the song contrast acts on a
                                                           # small MLP head of this size (0: on the embedding)
    pool_time: bool = False                                # the dense layer reads each channel and band's mean
                                                           # and spread over the window's time, not every place

    def __post_init__(self) -> None:
        # every convolutional layer halves the window: refused here, before a run folder exists
        if not self.widths or self.embedding_dim < 1:
            raise ConfigError("the model needs at least one convolutional layer and an embedding")
        scale = 2 ** len(self.widths)
        if self.n_mels % scale or self.window_frames % scale:
            raise ConfigError(f"{len(self.widths)} convolutional layers halve the window {len(self.widths)} times: "
                              f"its {self.n_mels} bands and {self.window_frames} frames must be divisible by "
                              f"{scale}", hint="give fewer --widths (the default has 6)")
        if self.projection_dim < 0:
            raise ConfigError("projection_dim must be 0 (no head) or positive")

    @property
    def n_layers(self) -> int:
        """K: the convolutional stages plus the final (dense) embedding layer."""
        return len(self.widths) + 1


@dataclass(frozen=True)
class AugmentConfig:
    """Changes to training windows (reform.augment); all zero: none, as in the note."""

    gain_db: float = 0.0       # uniform gain change in [-gain_db, +gain_db] dB
    eq_db: float = 0.0         # equalisation: a smooth curve within [-eq_db, +eq_db] dB over the bands
    eq_points: int = 6         # control points of the curve, spread evenly over the mel bands
    pitch_bins: int = 0        # shift the bands by up to this many mel bins, up or down
    stretch: float = 0.0       # tempo: up to 1 + stretch times faster or slower
    mix: float = 0.0           # another song mixed in underneath, its share of the power up to mix
    stripe_frames: int = 0     # widest hidden time stripe (frames); 0 hides none
    stripe_bins: int = 0       # widest hidden frequency stripe (mel bins); 0 hides none
    stripes: int = 2           # stripes of each kind per window

    @property
    def changes(self) -> bool:
        return self.gain_db > 0 or self.eq_db > 0 or self.pitch_bins > 0 or self.stretch > 0

    @property
    def hides(self) -> bool:
        return self.stripes > 0 and (self.stripe_frames > 0 or self.stripe_bins > 0)

    def check(self, bands: int, frames: int) -> None:
        """ConfigError for changes that leave little of a ``bands`` x ``frames`` window to learn
        from (a shift of 500 bins or 1000 stripes trained on blank windows without a word):
        stripes may hide at most half of either axis, a shift a quarter of the bands, gain and
        equalisation 40 dB (the measured defaults: 3 dB, 1 bin, 2 stripes of 64 frames and 16 bins)."""
        wrong = [what for what, bad in (
            (f"--pitch-bins at most {bands // 4} (a quarter of the bands)", self.pitch_bins > bands // 4),
            (f"--stripes x --stripe-bins at most {bands // 2} (half the bands)",
             self.stripes * self.stripe_bins > bands // 2),
            (f"--stripes x --stripe-frames at most {frames // 2} (half the window)",
             self.stripes * self.stripe_frames > frames // 2),
            ("--gain-db and --eq-db at most 40", max(self.gain_db, self.eq_db) > 40),
            ("--stretch at most 1 (twice as fast or slow)", self.stretch > 1)) if bad]
        if wrong:
            raise ConfigError("these augmentation settings leave too little of a window to learn from: "
                              + "; ".join(wrong), hint="the defaults are the measured ones (docs/method.md 7)")


def _option(field_name: str) -> str:
    """A setting as `reform train` takes it: ``ema`` is ``--ema``, ``gain_db`` ``--gain-db``."""
    return "--" + field_name.replace("_", "-")


@dataclass(frozen=True)
class TrainConfig:
    learning_rate: float = 1e-3       # Adam's starting rate; the note's 0.1 is the "note" preset (README)
    cluster_learning_rate: float | None = 1e-4  # the clustering phase's starting rate (None: as above)
    lr_factor: float = 0.1            # divide by 10 at each plateau
    plateau_patience: int = 6         # epochs without improvement that make a plateau
    plateau_threshold: float = 0.01   # relative improvement of the epoch loss that counts
    pretrain_plateaus: int = 3        # pretraining stops at this plateau (drops at the ones before)
    cluster_drops: int = 3            # clustering divides the rate this often, stops at the next plateau
    max_epochs: int = 400             # safety cap per phase
    batch_size: int = 32              # windows per pretraining step
    cluster_batch_size: int = 16      # windows per clustering batch, all from one song
    cluster_songs: int = 1            # one-song batches per clustering step (losses averaged); with
                                      # N training processes a multiple of N (1 then means N)
    aux_weight: float = 0.25          # scale of every auxiliary reconstruction loss
    cluster_weight: float = 1.0       # lambda: scale of the clustering loss
    cluster_space: str = "raw"        # "raw": the note's loss on the embedding; "unit": on unit length
    # -- beyond the note, chosen by the cross-validation in docs/method.md 7; `--preset note` turns
    # them all off, `--preset recon` is the reconstruction-only training of earlier versions
    contrast_weight: float = 1.0      # pretraining: scale of the song-contrast term (0: reconstruction only)
    temperature: float = 0.1          # softmax temperature of the contrast and bank losses
    contrast_loss: str = "infonce"    # pretraining's two-view term: "infonce" (the song contrast) or
                                      # "vicreg" (views kept alike, no negatives; Bardes et al.)
    contrast_prior: float = 0.0       # contrast: assumed chance that another song is of the same kind
                                      # (> 0: the debiased contrast; 0: every other song a negative)
    album_share: float = 0.0          # contrast: share of a window's target given to other songs of its
                                      # album in the batch (album tags; 0: its own song only)
    weight_decay: float = 0.0         # > 0: AdamW's decoupled decay of the weight matrices and
                                      # kernels (0: plain Adam, as in the note)
    ema: float = 0.0                  # > 0: each phase hands on a running average of its weights,
                                      # this decay per optimizer step (0: the last step's weights)
    gain_db: float = 3.0              # augmentation: random gain within +-gain_db dB
    eq_db: float = 3.0                # augmentation: smooth random equalisation within +-eq_db dB
    pitch_bins: int = 1               # augmentation: shift of up to this many mel bins
    stretch: float = 0.0              # augmentation: tempo up to 1 + stretch times faster or slower
    mix: float = 0.0                  # pretraining augmentation: a random other song mixed in, up to this share
    stripe_frames: int = 64           # masked reconstruction: widest hidden time stripe (frames)
    stripe_bins: int = 16             # masked reconstruction: widest hidden frequency stripe (bins)
    stripes: int = 2                  # hidden stripes of each kind per window
    cluster_loss: str = "bank"        # "bank": contrast with a bank of song vectors; "note": MSE to the batch mean
    bank_momentum: float = 0.5        # bank: weight of a song's old vector when its batch updates it
    bank_neighbours: int = 5          # bank: nearest songs in the bank that count as soft positives
                                      # (0: a hard bank, which the shipped model was trained with)
    bank_soft: float = 0.5            # bank: share of the target given to those neighbours
    bank_neighbourhood: str = "nearest"   # bank: "nearest", or "mutual": only those of the nearest
                                      # songs that count the song among their own nearest
    precision: str = "bfloat16"       # "bfloat16" autocast on CPU, or "float32"
    threads: int = 0                  # torch threads; 0 = all cores
    seed: int = 0

    def __post_init__(self) -> None:
        numbers = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                   if isinstance(getattr(self, f.name), float)}
        odd = [name for name, value in numbers.items() if not math.isfinite(value)]
        if odd:   # NaN or infinity reached torch as a traceback, or trained on silently
            raise ConfigError(f"{', '.join(odd)} must be a finite number")
        if self.learning_rate <= 0 or (self.cluster_learning_rate is not None and self.cluster_learning_rate <= 0):
            raise ConfigError("the learning rate must be positive")   # (0 learnt nothing, without a word)
        if self.seed < 0:
            raise ConfigError("the seed cannot be negative")
        if self.plateau_threshold < 0:
            raise ConfigError("the plateau threshold cannot be negative: no epoch would ever count as a plateau")
        if self.threads < 0:
            raise ConfigError("threads cannot be negative (0: all cores)")
        if min(self.aux_weight, self.cluster_weight) < 0:
            raise ConfigError("a loss weight cannot be negative: the model would be pushed to do worse")
        if not 0 < self.lr_factor < 1:
            raise ConfigError("lr_factor must be between 0 and 1")
        if self.cluster_space not in ("raw", "unit"):
            raise ConfigError(f"unknown cluster_space {self.cluster_space!r}; use raw or unit")
        if self.precision not in ("bfloat16", "float32"):
            raise ConfigError(f"unknown precision {self.precision!r}; use bfloat16 or float32")
        if self.batch_size < 2 or self.cluster_batch_size < 2 or self.cluster_songs < 1:
            raise ConfigError("batch sizes must be at least 2 (batch norm compares the windows of a batch), "
                              "and a clustering step takes at least 1 song")
        if self.cluster_loss not in ("note", "bank"):
            raise ConfigError(f"unknown cluster_loss {self.cluster_loss!r}; use note or bank")
        if self.bank_neighbourhood not in ("nearest", "mutual"):
            raise ConfigError(f"unknown bank_neighbourhood {self.bank_neighbourhood!r}; use nearest or mutual")
        if self.temperature <= 0:
            raise ConfigError("the temperature must be positive")
        if self.contrast_loss not in ("infonce", "vicreg"):
            raise ConfigError(f"unknown contrast_loss {self.contrast_loss!r}; use infonce or vicreg")
        if self.contrast_loss == "vicreg" and (self.album_share > 0 or self.contrast_prior > 0):
            raise ConfigError("vicreg has no negatives: album_share and contrast_prior apply to infonce only")
        if self.album_share > 0 and self.contrast_prior > 0:
            raise ConfigError("the debiased contrast (contrast_prior) takes no album share; set one of them to 0")
        shares = ("bank_momentum", "bank_soft", "contrast_prior", "album_share", "mix", "ema")
        wrong = [f"{_option(name)} {getattr(self, name):g}" for name in shares if not 0 <= getattr(self, name) < 1]
        if wrong:   # named, as `train --ema 1.5` was told of six settings at once
            raise ConfigError(f"{', '.join(wrong)}: a share lies in [0, 1)")
        sizes = ("contrast_weight", "weight_decay", "gain_db", "eq_db", "pitch_bins", "stretch", "stripe_frames",
                 "stripe_bins", "stripes", "bank_neighbours")
        wrong = [f"{_option(name)} {getattr(self, name):g}" for name in sizes if getattr(self, name) < 0]
        if wrong:
            raise ConfigError(f"{', '.join(wrong)}: weights, augmentation sizes and counts cannot be negative")

    @property
    def augment(self) -> AugmentConfig:
        """The augmentation and hidden-stripe settings as the augment module takes them."""
        return AugmentConfig(gain_db=self.gain_db, eq_db=self.eq_db, pitch_bins=self.pitch_bins,
                             stretch=self.stretch, mix=self.mix, stripe_frames=self.stripe_frames,
                             stripe_bins=self.stripe_bins, stripes=self.stripes)


@dataclass(frozen=True)
class EmbedConfig:
    hop: int = 320                  # frames between windows (half a window); measured: 160/80 change nothing
    aggregation: str = "meanstd"    # "meanstd": mean and std of the window embeddings; "mean": mean only;
                                    # "unitmeanstd"/"unitmean": the same of unit-length window embeddings;
                                    # "meanstd+map": also of the last feature map's channel statistics

    def key(self, model_version: str) -> str:
        """Name under which embeddings are stored: the model's version and these settings."""
        return f"{model_version}-{self.aggregation}-h{self.hop}"

    def __post_init__(self) -> None:
        if self.aggregation not in ("mean", "meanstd", "unitmean", "unitmeanstd", "meanstd+map"):
            raise ConfigError(f"unknown aggregation {self.aggregation!r}; "
                              "use meanstd+map, meanstd, mean, unitmeanstd or unitmean")
        if self.hop < 1:
            raise ConfigError("the hop must be at least one frame")


# What the design note leaves out: no contrast, no augmentation, no hidden stripes, its own
# clustering loss on the raw embedding.
_RECONSTRUCTION_ONLY: dict[str, Any] = {
    "contrast_weight": 0.0, "album_share": 0.0, "weight_decay": 0.0, "ema": 0.0, "gain_db": 0.0, "eq_db": 0.0,
    "pitch_bins": 0, "stretch": 0.0, "mix": 0.0, "stripe_frames": 0, "stripe_bins": 0, "cluster_loss": "note",
    "cluster_space": "raw", "bank_neighbours": 0}

# Named training presets (the explicit options win over them).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # the design note exactly as written: Adam from 0.1 in both phases, nothing beyond the note
    "note": _RECONSTRUCTION_ONLY | {"learning_rate": 0.1, "cluster_learning_rate": None},
    # the defaults of ReFORM before the cross-validation: the note with Adam from 1e-3 / 1e-4
    "recon": _RECONSTRUCTION_ONLY | {"learning_rate": 1e-3, "cluster_learning_rate": 1e-4},
}

# A library of fewer songs than this trains from the shipped model unless told otherwise (`reform
# train --init auto`): measured on libraries of 29, 57 and 115 songs (README, "Training on a small
# library")
FINE_TUNE_BELOW = 60


def feature_version(audio: AudioConfig, mel: MelConfig) -> str:
    """A short string that changes whenever stored spectrograms would change."""
    blob = json.dumps([FEATURE_CODE_VERSION, dataclasses.asdict(audio), dataclasses.asdict(mel)],
                      sort_keys=True)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:8]
    return f"mel{FEATURE_CODE_VERSION}-{audio.sample_rate}-{mel.n_fft}-{mel.hop_length}-{mel.n_mels}-{digest}"


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict[str, Any]):
    """Rebuild a config dataclass from :func:`to_dict` output, ignoring unknown keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    return cls(**kwargs)


def default_home() -> str:
    """The library home: $REFORM_HOME, else the user's data directory (e.g. ~/.local/share/reform)."""
    env = os.environ.get("REFORM_HOME")
    if env:
        return env
    from platformdirs import user_data_dir

    return user_data_dir("reform", appauthor=False)
