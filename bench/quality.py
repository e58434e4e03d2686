"""Recommendation quality on music no model has heard: cross-validation over soundtracks.

The songs of the realmusic and extramusic manifests (shared/realmusic/fetch.sh, with
EXTRA=1: 25 game soundtracks, 342 songs, 17.3 h) are split by soundtrack ("group")
into k folds of about equal size.  Two protocols:

held-out
    For every fold, each method is trained on the songs of the other folds and
    evaluated on the fold's songs, which it never heard.  Per-query results are
    pooled over the folds.
own-library (methods marked ``own``)
    For every fold, a model is trained without labels on the fold's songs themselves
    (what `reform train` does on a person's library), from scratch or fine-tuned from
    that fold's held-out model, and evaluated on the same songs.  With ``--library-share S``
    every fold's library is a random share S of its songs, to see how small a library
    training still helps.

Measured on each fold's songs only: label retrieval with the soundtrack as label
(p@10, leave-one-out), same-song retrieval with halves cut in the middle (top-1),
and same-song retrieval with unequal parts, the first 40 % against the last 50 %
of each song, so that a song's length says nothing about which parts belong
together.  Every figure comes with a bootstrap 95 % interval over the pooled
queries, and differences between methods with a paired interval on the same
queries.

    python bench/quality.py --home DATA/home-all --work DATA/cv \\
        --manifest DATA/realmusic.tsv DATA/extramusic.tsv --methods default,note [--folds 3]

The home must hold every song of the manifests (`reform scan` of their folders);
models and per-fold results are kept in the work folder, so a second run only
computes what is missing.  Prints the tables and writes them to WORK/quality.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import read_manifest, table  # noqa: E402

from reform import Library  # noqa: E402
from reform import evaluate as ev  # noqa: E402
from reform import space  # noqa: E402
from reform.checkpoint import Bundle, load_bundle  # noqa: E402
from reform.config import PRESETS, EmbedConfig, ModelConfig, TrainConfig  # noqa: E402
from reform.dataset import Normaliser, Song, fit_normaliser  # noqa: E402
from reform.embed import AGGREGATIONS, Embedder, aggregate, song_windows  # noqa: E402
from reform.model import ClusterAutoencoder  # noqa: E402
from reform.recommend import WALK, WALK_POOL  # noqa: E402
from reform.train import Trainer  # noqa: E402

# -- what is compared --------------------------------------------------------------------------------
# A trained method: TrainConfig overrides ("train"), ModelConfig overrides ("model"), the phases
# ("phase": all or pretrain), optionally the pretraining of another method to start the clustering
# phase from ("after") or a run of another method to go on from ("continue": its cap raised, or its
# clustering phase added), a share of the training songs ("fraction", for the learning curve), and
# for the own-library protocol ("own"): train on the fold's own songs, from scratch or from the
# held-out model of method ``init``.  Every "train" is a set of changes to the reconstruction-only
# preset (the defaults before this measurement), so that a method means the same whatever the defaults.
NOTE = PRESETS["note"]
OLD_DEFAULT: dict = {}
CONTRAST = {"contrast_weight": 1.0}
# the augmentation ranges of the default until HALF_AUGMENT measured better: "the default
# pretraining" in the comments below is CONTRAST | AUGMENT | STRIPES
AUGMENT = {"gain_db": 6.0, "eq_db": 6.0, "pitch_bins": 2}
HALF_AUGMENT = {"gain_db": 3.0, "eq_db": 3.0, "pitch_bins": 1}
BANK = {"max_epochs": 10, "cluster_loss": "bank"}      # a clustering phase with the hard bank
SOFT = {"bank_neighbours": 5, "bank_soft": 0.5}       # ... its 5 nearest songs sharing half the target
STRIPES = {"stripe_frames": 64, "stripe_bins": 16}
METHODS: dict[str, dict] = {
    "note": {"train": NOTE},
    "recon": {"train": OLD_DEFAULT},
    "recon-pre": {"train": OLD_DEFAULT, "phase": "pretrain"},
    "contrast-pre": {"train": CONTRAST, "phase": "pretrain"},
    "contrast-aug-pre": {"train": CONTRAST | AUGMENT, "phase": "pretrain"},
    "contrast-aug-stripes-pre": {"train": CONTRAST | AUGMENT | STRIPES, "phase": "pretrain"},
    "stripes-pre": {"train": STRIPES, "phase": "pretrain"},
    "cas-t02-pre": {"train": CONTRAST | AUGMENT | STRIPES | {"temperature": 0.2}, "phase": "pretrain"},
    "cas-t05-pre": {"train": CONTRAST | AUGMENT | STRIPES | {"temperature": 0.5}, "phase": "pretrain"},
    "cas-w03-pre": {"train": CONTRAST | AUGMENT | STRIPES | {"contrast_weight": 0.3}, "phase": "pretrain"},
    "c-stripes-pre": {"train": CONTRAST | STRIPES, "phase": "pretrain"},
    "c-b64-pre": {"train": CONTRAST | {"batch_size": 64}, "phase": "pretrain"},
    "cas-b64-pre": {"train": CONTRAST | AUGMENT | STRIPES | {"batch_size": 64}, "phase": "pretrain"},
    # clustering phases after the contrast, augmentation and stripes pretraining (10 epochs at most)
    "cas-note": {"after": "contrast-aug-stripes-pre", "train": CONTRAST | AUGMENT | STRIPES | {"max_epochs": 10}},
    "cas-bank": {"after": "contrast-aug-stripes-pre",
                 "train": CONTRAST | AUGMENT | STRIPES | BANK},
    # the learning curve: the default pretraining on a share of the training folds' songs
    "cas-pre-25": {"train": CONTRAST | AUGMENT | STRIPES, "phase": "pretrain", "fraction": 0.25},
    "cas-pre-50": {"train": CONTRAST | AUGMENT | STRIPES, "phase": "pretrain", "fraction": 0.5},
    # ... and again with the half ranges (the default pretraining now)
    "cas05-pre-25": {"train": CONTRAST | HALF_AUGMENT | STRIPES, "phase": "pretrain", "fraction": 0.25},
    "cas05-pre-50": {"train": CONTRAST | HALF_AUGMENT | STRIPES, "phase": "pretrain", "fraction": 0.5},
    # the own-library protocol with the default settings: trained on the fold's own songs (no labels)
    "own-cas-pre": {"own": True, "train": CONTRAST | AUGMENT | STRIPES, "phase": "pretrain"},
    "own-cas-bank": {"own": True, "after": "own-cas-pre",
                     "train": CONTRAST | AUGMENT | STRIPES | BANK},
    # the bank's nearest songs as soft positives (5 neighbours share half of the target)
    "cas-banksoft": {"after": "contrast-aug-stripes-pre",
                     "train": CONTRAST | AUGMENT | STRIPES | BANK | SOFT},
    "own-cas-banksoft": {"own": True, "after": "own-cas-pre",
                         "train": CONTRAST | AUGMENT | STRIPES | BANK | SOFT},
    # the own-library protocol fine-tuned from the fold's held-out model (`reform train --init shipped`):
    # both phases, at most 10 epochs each, against own-cas-pre / own-cas-bank trained from scratch
    "own-ft-pre": {"own": True, "init": "cas-bank", "phase": "pretrain",
                   "train": CONTRAST | AUGMENT | STRIPES | {"max_epochs": 10}},
    "own-ft-bank": {"own": True, "after": "own-ft-pre",
                    "train": CONTRAST | AUGMENT | STRIPES | BANK},
    # the embedding's size, with the default pretraining
    "cas-e256-pre": {"train": CONTRAST | AUGMENT | STRIPES, "model": {"embedding_dim": 256}, "phase": "pretrain"},
    # the augmentation's strength: twice and half the gain, equalisation and pitch ranges of the
    # earlier default (AUGMENT); half is the default since
    "cas-aug2-pre": {"train": CONTRAST | STRIPES | {"gain_db": 12.0, "eq_db": 12.0, "pitch_bins": 4},
                     "phase": "pretrain"},
    "cas-aug05-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT, "phase": "pretrain"},
    # ... and the half ranges through both phases and both protocols (hard and soft bank)
    "cas05-bank": {"after": "cas-aug05-pre", "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK},
    "cas05-banksoft": {"after": "cas-aug05-pre", "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT},
    "own-cas05-pre": {"own": True, "train": CONTRAST | STRIPES | HALF_AUGMENT, "phase": "pretrain"},
    "own-cas05-bank": {"own": True, "after": "own-cas05-pre", "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK},
    "own-cas05-banksoft": {"own": True, "after": "own-cas05-pre",
                           "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT},
    # fine-tuning with the half ranges: from the held-out model with the shipped model's settings,
    # 10 epochs per phase, `reform train --init shipped` with the defaults (soft neighbours)
    "own-ft05-pre": {"own": True, "init": "cas05-bank", "phase": "pretrain",
                     "train": CONTRAST | STRIPES | HALF_AUGMENT | {"max_epochs": 10}},
    "own-ft05-banksoft": {"own": True, "after": "own-ft05-pre",
                          "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT},
    # more of the target to the neighbours, or more neighbours (on the library's own songs)
    "own-cas05-soft10": {"own": True, "after": "own-cas05-pre", "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK
                         | {"bank_neighbours": 10, "bank_soft": 0.5}},
    "own-cas05-soft07": {"own": True, "after": "own-cas05-pre", "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK
                         | {"bank_neighbours": 5, "bank_soft": 0.7}},
    "own-cas05-soft085": {"own": True, "after": "own-cas05-pre", "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK
                          | {"bank_neighbours": 5, "bank_soft": 0.85}},
    # a quarter of the earlier augmentation ranges (1.5 dB; the pitch shift stays one bin)
    "cas-aug025-pre": {"train": CONTRAST | STRIPES | {"gain_db": 1.5, "eq_db": 1.5, "pitch_bins": 1},
                       "phase": "pretrain"},
    # the song contrast on a projection head (128 -> 128 -> 128) instead of the embedding itself
    "cas05-head-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT, "model": {"projection_dim": 128},
                       "phase": "pretrain"},
    # tempo changes beside the default augmentation: up to 1.2 times faster or slower
    "cas05-str02-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"stretch": 0.2}, "phase": "pretrain"},
    # another song mixed in underneath each view (BYOL-A's mixup), its share of the power up to 0.4
    "cas05-mix04-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"mix": 0.4}, "phase": "pretrain"},
    # the default pretraining handing on a running average of its weights (about the last 100 steps)
    "cas05-ema-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"ema": 0.99}, "phase": "pretrain"},
    # a narrower model (the last three layers 64 channels wide instead of 128), default pretraining
    "cas05-narrow-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT, "model": {"widths": (16, 32, 64, 64, 64, 64)},
                         "phase": "pretrain"},
    # AdamW's decoupled weight decay (0.5: the weights shrink by about a quarter over 40 epochs
    # of a fold, lr x decay x 560 steps), default pretraining
    "cas05-wd-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"weight_decay": 0.5}, "phase": "pretrain"},
    # a colder contrast than the default 0.1 (0.5 and 0.2 lost on both protocols' measures)
    "cas05-t005-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"temperature": 0.05}, "phase": "pretrain"},
    # the default pretraining again with another seed (other initial weights, windows and
    # changes): how far training's own randomness moves the measures
    "cas05-seed1-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"seed": 1}, "phase": "pretrain"},
    "cas05-seed2-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"seed": 2}, "phase": "pretrain"},
    # the contrast's album share: half of a window's target to the other songs of its album (the
    # catalogue's album tags of the training songs: held out only, since here they name the soundtrack)
    "cas05-album05-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"album_share": 0.5}, "phase": "pretrain"},
    # ... nearly all of it (0.9): close to a contrast supervised by album
    "cas05-album09-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"album_share": 0.9}, "phase": "pretrain"},
    # VICReg in place of the song contrast: the two views kept alike, no song pushed away
    "cas05-vicreg-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"contrast_loss": "vicreg"},
                         "phase": "pretrain"},
    # ... on a 512-number projection head above the embedding (VICReg's expander)
    "cas05-vicreg-head-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"contrast_loss": "vicreg"},
                              "model": {"projection_dim": 512}, "phase": "pretrain"},
    # `reform train`'s default on a library's own songs with seeds 1 and 2 (other initial weights,
    # windows and augmentations), both phases
    **{f"own-cas05-seed{i}-pre": {"own": True, "train": CONTRAST | STRIPES | HALF_AUGMENT | {"seed": i},
                                  "phase": "pretrain"} for i in (1, 2)},
    **{f"own-cas05-seed{i}-banksoft": {"own": True, "after": f"own-cas05-seed{i}-pre",
                                       "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT | {"seed": i}}
       for i in (1, 2)},
    # 0.7 of the bank's target to the 5 soft neighbours, after the seeds 1 and 2 pretrainings
    **{f"own-cas05-seed{i}-soft07": {"own": True, "after": f"own-cas05-seed{i}-pre",
                                     "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT
                                     | {"bank_soft": 0.7, "seed": i}} for i in (1, 2)},
    # the own-library clustering phase with mutual neighbours only as soft positives
    "own-cas05-mutual": {"own": True, "after": "own-cas05-pre",
                         "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT | {"bank_neighbourhood": "mutual"}},
    # the default pretraining's three seeds side by side (each song vector the three models' mean+std)
    "ens-seeds3-pre": {"ensemble": ["cas-aug05-pre", "cas05-seed1-pre", "cas05-seed2-pre"]},
    # the dense layer reads the last map's mean and spread over time (temporal pooling, as tagging
    # networks do) instead of every place of it: held out, and on a library's own songs
    "cas05-pool-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT, "model": {"pool_time": True}, "phase": "pretrain"},
    "own-cas05-pool-pre": {"own": True, "train": CONTRAST | STRIPES | HALF_AUGMENT, "model": {"pool_time": True},
                           "phase": "pretrain"},
    "own-cas05-pool-banksoft": {"own": True, "after": "own-cas05-pool-pre", "model": {"pool_time": True},
                                "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT},
    "cas05-pool-bank": {"after": "cas05-pool-pre", "model": {"pool_time": True},
                        "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK},
    # ... with seeds 1 and 2, paired against the default pretraining's seeds 1 and 2
    **{f"cas05-pool-seed{i}-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"seed": i},
                                   "model": {"pool_time": True}, "phase": "pretrain"} for i in (1, 2)},
    # what the shipped model knows beside what `reform train` learns on the library: the held-out
    # model with the shipped model's settings and the own-library default, side by side
    "ens-held-own": {"ensemble": ["cas05-bank", "own-cas05-banksoft"]},
    # `reform train`'s default clustering phase on a library's own songs without the exploration
    # cap of 10 epochs: up to 30, so that its schedule can divide the rate and stop
    "own-cas05-banksoft-e30": {"own": True, "after": "own-cas05-pre",
                               "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT | {"max_epochs": 30}},
    # `reform train`'s default on a library's own songs with neither exploration cap: pretraining
    # gone on from its 40th epoch until the schedule's third plateau (at most 150), then the
    # soft-neighbour clustering phase
    "own-cas05-pre-full": {"own": True, "continue": "own-cas05-pre", "phase": "pretrain",
                           "train": CONTRAST | STRIPES | HALF_AUGMENT | {"max_epochs": 150}},
    "own-cas05-banksoft-full": {"own": True, "after": "own-cas05-pre-full",
                                "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT},
    # `reform train --init shipped` on a library's own songs for as long as training from scratch is
    # capped (40 pretraining epochs instead of 10), then the soft-neighbour clustering phase
    "own-ft05-pre-e40": {"own": True, "init": "cas05-bank", "phase": "pretrain",
                         "train": CONTRAST | STRIPES | HALF_AUGMENT},
    "own-ft05-banksoft-e40": {"own": True, "after": "own-ft05-pre-e40",
                              "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT},
    # the own-library clustering phase with a softer bank (temperature 0.2 instead of 0.1: other songs
    # pushed away less hard)
    "own-cas05-t02": {"own": True, "after": "own-cas05-pre",
                      "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT | {"temperature": 0.2}},
    # ... and with a clustering phase that starts at 3e-4 instead of 1e-4 (set for the note's loss)
    "own-cas05-clr3e4": {"own": True, "after": "own-cas05-pre",
                         "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT | {"cluster_learning_rate": 3e-4}},
    # ... and with a steadier bank (each batch moving its song's vector by a tenth instead of half)
    "own-cas05-mom09": {"own": True, "after": "own-cas05-pre",
                        "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT | {"bank_momentum": 0.9}},
    # `reform train`'s default as it runs on a smaller library (--library-share): pretraining until
    # its schedule's third plateau (the exploration cap of 40 epochs would be 40 steps on 30 songs),
    # then the soft-neighbour clustering phase for up to 30 epochs
    "own-cas05-pre-sched": {"own": True, "phase": "pretrain",
                            "train": CONTRAST | STRIPES | HALF_AUGMENT | {"max_epochs": 400}},
    "own-cas05-banksoft-sched": {"own": True, "after": "own-cas05-pre-sched",
                                 "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT | {"max_epochs": 30}},
    # ... and `reform train --init shipped` there: the same, from the fold's held-out model
    "own-ft05-pre-sched": {"own": True, "init": "cas05-bank", "phase": "pretrain",
                           "train": CONTRAST | STRIPES | HALF_AUGMENT | {"max_epochs": 400}},
    "own-ft05-banksoft-sched": {"own": True, "after": "own-ft05-pre-sched",
                                "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT | {"max_epochs": 30}},
    # the same since each auxiliary decoder starts as the main decoder's last layers
    # (`PretrainAutoencoder.start_from`); the two above were trained with them random
    "own-ftw05-pre-sched": {"own": True, "init": "cas05-bank", "phase": "pretrain",
                            "train": CONTRAST | STRIPES | HALF_AUGMENT | {"max_epochs": 400}},
    "own-ftw05-banksoft-sched": {"own": True, "after": "own-ftw05-pre-sched",
                                 "train": CONTRAST | STRIPES | HALF_AUGMENT | BANK | SOFT | {"max_epochs": 30}},
    # the debiased contrast: one other song in ten taken to be of the window's own kind
    "cas05-dcl01-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"contrast_prior": 0.1},
                        "phase": "pretrain"},
    # the default training without its hidden stripes (which also change both views of the
    # contrast): pretraining held out; both phases on a library's own songs
    "cas05-nostripes-pre": {"train": CONTRAST | HALF_AUGMENT, "phase": "pretrain"},
    "own-cas05ns-pre": {"own": True, "train": CONTRAST | HALF_AUGMENT, "phase": "pretrain"},
    "own-cas05ns-banksoft": {"own": True, "after": "own-cas05ns-pre",
                             "train": CONTRAST | HALF_AUGMENT | BANK | SOFT},
    # ... and with stripes twice as wide (128 frames, 32 bins)
    "cas05-wide-stripes-pre": {"train": CONTRAST | HALF_AUGMENT | {"stripe_frames": 128, "stripe_bins": 32},
                               "phase": "pretrain"},
    # a heavier contrast beside the reconstruction (0.3 lost p@10 against 1)
    "cas05-w3-pre": {"train": CONTRAST | STRIPES | HALF_AUGMENT | {"contrast_weight": 3.0},
                     "phase": "pretrain"},
    # the model's size: the last two convolutional layers twice as wide (6.7 M parameters, not 3.1)
    "cas-wide-pre": {"train": CONTRAST | AUGMENT | STRIPES, "model": {"widths": (16, 32, 64, 128, 256, 256)},
                     "phase": "pretrain"},
    # training time: the default pretraining gone on from its 40th epoch to the 80th (no 40-epoch
    # run had met the third plateau; the loss was still falling)
    "cas-pre-80": {"continue": "contrast-aug-stripes-pre", "phase": "pretrain",
                   "train": CONTRAST | AUGMENT | STRIPES | {"max_epochs": 80}},
    # clustering phases after the same contrast pretraining (20 epochs at most)
    "c-note": {"after": "contrast-pre", "train": CONTRAST | {"max_epochs": 20}},
    "c-bank": {"after": "contrast-pre", "train": CONTRAST | {"max_epochs": 20, "cluster_loss": "bank"}},
    "c-banksoft": {"after": "contrast-pre", "train": CONTRAST | {"max_epochs": 20, "cluster_loss": "bank"} | SOFT},
}
# query-time variants (reform.space.similarity's settings) scored with --query-time, by name
QUERY_TIME: dict[str, dict] = {
    **{f"{t}+{h}": {"transform": t, "hubness": h}
       for t, h in (("centre", "none"), ("zscore", "none"), ("whiten", "none"), ("none", "csls"),
                    ("none", "mp"), ("centre", "csls"), ("centre", "mp"))},
    # every query (qe) or every song (dba) averaged with its nearest songs
    **{f"{name}{n}": {"average": average, "neighbours": n}
       for name, average in (("qe", "queries"), ("dba", "all")) for n in (1, 2, 3, 5, 10)},
    # graph diffusion over mutual nearest neighbours, started at the song or at it and its neighbours
    **{f"diffusion{n}{tail}": {"average": average, "neighbours": n}
       for tail, average in (("", "diffusion"), ("-near", "diffusion-near")) for n in (5, 10, 20)},
    "diffusion10-spread099": {"average": "diffusion", "neighbours": 10, "spread": 0.99},
    # the same, with the nearest song by the plain cosine kept first
    **{f"diffusion{n}{tail}-first": {"average": average, "neighbours": n, "keep_nearest": True}
       for tail, average in (("", "diffusion"), ("-near", "diffusion-near")) for n in (10, 20)},
    # the recommender's walk (the last one above) going on longer or stopping sooner
    **{f"diffusion20-near-first-spread{round(spread * 100):03d}":
       {"average": "diffusion-near", "neighbours": 20, "keep_nearest": True, "spread": spread}
       for spread in (0.8, 0.99)},
    # the walk as recommendations rank: 20 links, fewer on a small library (space.walk_links), weighted
    # by the cosine to the power space.WALK_ALPHA, and to the cube it had first (named by the power, so
    # that a cached result never stands for another power)
    **{f"walk-power{alpha:g}": {"walk": WALK, "alpha": alpha} for alpha in sorted({3.0, space.WALK_ALPHA})},
}
CAP = 40   # epoch cap of the exploration runs (going on to the schedule's end changed nothing: cas-pre-80)


@dataclasses.dataclass
class Fold:
    index: int
    groups: list[str]
    test: list          # catalogue rows of the fold's songs
    train: list         # catalogue rows of the other folds' songs


def make_folds(rows: list, group_of: dict[str, str], k: int) -> list[Fold]:
    """Soundtracks dealt to k folds, largest first, each to the fold with the fewest songs."""
    sizes = Counter(group_of[r.hash] for r in rows)
    members: list[list[str]] = [[] for _ in range(k)]
    for group in sorted(sizes, key=lambda g: (-sizes[g], g)):
        members[min(range(k), key=lambda i: (sum(sizes[g] for g in members[i]), i))].append(group)
    return [Fold(i, sorted(m), [r for r in rows if group_of[r.hash] in m],
                 [r for r in rows if group_of[r.hash] not in m]) for i, m in enumerate(members)]


def manifest_folds(lib: Library, manifests: list[str], k: int) -> tuple[list[Fold], dict[str, str]]:
    """The k folds of the manifests' songs in the home, and each song's soundtrack by its hash
    (a song in the home twice counted once); says how many songs of the manifests are missing."""
    group_of_path = {os.path.realpath(r["path"]): r["group"] for m in manifests for r in read_manifest(m)}
    rows = {}
    for r in lib.songs():
        if os.path.realpath(r.path) in group_of_path:
            rows.setdefault(r.hash, r)
    group_of = {h: group_of_path[os.path.realpath(r.path)] for h, r in rows.items()}
    missing = len(set(group_of_path)) - len({os.path.realpath(r.path) for r in lib.songs()} & set(group_of_path))
    if missing:
        print(f"note: {missing} songs of the manifests are not in the home (scan their folders)")
    return make_folds(sorted(rows.values(), key=lambda r: r.path), group_of, k), group_of


def cached_folds_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a bench that reads this bench's work folder: the home, the manifests, the
    work folder and the number of folds, the same as this bench was run with."""
    parser.add_argument("--home", required=True, help="the home this bench was run on")
    parser.add_argument("--manifest", nargs="+", required=True)
    parser.add_argument("--work", required=True, help="bench/quality.py's work folder")
    parser.add_argument("--folds", type=int, default=3)


def fold_order(fold: Fold, seed: int = 0) -> list:
    """The fold's songs in the order every score and cache of the fold keeps them: shuffled,
    so that ties do not follow the folders."""
    return [fold.test[i] for i in np.random.default_rng(seed).permutation(len(fold.test))]


def share_of(items: list, share: float, seed: list[int]) -> list:
    """A random ``share`` of ``items`` (at least 2) in their order, the same for the same seed."""
    keep = np.random.default_rng(seed).permutation(len(items))[: max(2, round(len(items) * share))]
    return [items[i] for i in sorted(keep)]


# -- the parts of every song that are embedded -------------------------------------------------------
PARTS = ("full", "first", "second", "early", "late")


def parts(spec: np.ndarray) -> dict[str, np.ndarray]:
    """The whole song, its halves, and its first 40 % and last 50 % (channels, frames, mels)."""
    n = spec.shape[1]
    mid = n // 2
    return {"full": spec, "first": spec[:, :mid], "second": spec[:, mid:],
            "early": spec[:, : int(n * 0.4)], "late": spec[:, n - n // 2:]}


@dataclasses.dataclass
class Scores:
    """Per-query results of one method on one fold."""

    p10: np.ndarray        # (queries,) precision@10, soundtrack as label
    groups: np.ndarray     # (queries,) the query's soundtrack
    top1: np.ndarray       # (2 songs,) other half ranked first
    top1_unequal: np.ndarray   # (2 songs,) first 40 % <-> last 50 %

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **dataclasses.asdict(self))

    @classmethod
    def load(cls, path: Path) -> Scores:
        with np.load(path, allow_pickle=False) as data:
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def score(vectors: dict[str, np.ndarray], labels: list[str], metric="cosine") -> Scores:
    asked, label_scores = ev.label_queries(vectors["full"], labels, metric=metric)
    return Scores(p10=label_scores[:, 1], groups=np.array([labels[i] for i in asked]),
                  top1=ev.same_song_hits(vectors["first"], vectors["second"], metric)["top1"],
                  top1_unequal=ev.same_song_hits(vectors["early"], vectors["late"], metric)["top1"])


def featurize(specs: list[dict[str, np.ndarray]], fn: Callable[[np.ndarray], np.ndarray],
              standardised: bool) -> dict[str, np.ndarray]:
    out = {p: np.stack([fn(s[p]) for s in specs]) for p in PARTS}
    if standardised:   # parts compared with each other share one standardisation
        out["full"] = ev.standardise(out["full"])
        for a, b in (("first", "second"), ("early", "late")):
            both = ev.standardise(np.concatenate([out[a], out[b]]))
            out[a], out[b] = both[: len(specs)], both[len(specs):]
    return out


def window_embeddings(bundle: Bundle, specs: list[dict[str, np.ndarray]]) -> dict[str, list[np.ndarray]]:
    """Every window embedding of every part of every song, with the last feature map's channel
    statistics after it (all that any aggregation takes)."""
    embedder = Embedder(bundle, EmbedConfig(aggregation="meanstd+map"))
    return {p: [embedder.windows(song_windows(s[p], bundle.normaliser, embedder.window, embedder.hop))
                for s in specs] for p in PARTS}


def aggregated(windows: dict[str, list[np.ndarray]], how: str, dim: int) -> dict[str, np.ndarray]:
    """Song vectors of the windows; ``dim``: the embedding's size (the columns after it are the
    feature map's statistics, which only "meanstd+map" reads)."""
    return {p: np.stack([aggregate(w if how.endswith("+map") else w[:, :dim], how, dim) for w in ws])
            for p, ws in windows.items()}


def cached_windows(name: str, bundle: Bundle, fold: Fold, work: Path, count: int,
                   load_specs: Callable[[], list[dict[str, np.ndarray]]]) -> dict[str, list[np.ndarray]]:
    """The window rows of a model on a fold's songs, computed once (again when an older cache
    holds the embeddings without the feature map's statistics)."""
    cached = work / "windows" / name / f"fold{fold.index}.npz"
    if cached.exists():
        with np.load(cached) as data:
            windows = {p: [data[f"{p}{i}"].astype(np.float32) for i in range(count)] for p in PARTS}
        if windows["full"][0].shape[1] > bundle.cfg.embedding_dim:
            return windows
    windows = window_embeddings(bundle, load_specs())
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cached, **{f"{p}{i}": w.astype(np.float16) for p, ws in windows.items() for i, w in enumerate(ws)})
    return windows


# -- training -------------------------------------------------------------------------------------------
def train(lib: Library, rows: list, folder: Path, spec: dict, work: Path, fold: Fold) -> Path:
    """Train (or finish training) one method on ``rows``; returns the model file.  A run it goes on
    from ("after", "continue") lies beside ``folder``'s method; a model it starts from ("init"), a
    held-out one, under ``work``."""
    phase = spec.get("phase", "all")
    target = folder / ("model.pt" if phase == "all" else "pretrain.pt")
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    init = None
    if "after" in spec and not (folder / "pretrain.pt").exists():
        source = folder.parent.parent / spec["after"] / f"fold{fold.index}" / "pretrain.pt"
        if not source.exists():
            raise SystemExit(f"{spec['after']} has not been trained on fold {fold.index} yet")
        for name in ("pretrain.pt", "pretrain.json"):
            if (source.parent / name).exists():
                (folder / name).write_bytes((source.parent / name).read_bytes())
    if "continue" in spec and not (folder / "checkpoint.pt").exists():
        # go on from another method's run on this fold (its cap raised, or its next phase)
        source = folder.parent.parent / spec["continue"] / f"fold{fold.index}" / "checkpoint.pt"
        if not source.exists():
            raise SystemExit(f"{spec['continue']} has not been trained on fold {fold.index} yet")
        (folder / "checkpoint.pt").write_bytes(source.read_bytes())
    if "init" in spec:
        init = load_bundle(work / "runs" / spec["init"] / f"fold{fold.index}" / "model.pt")
    if spec.get("own") and spec.get("train", {}).get("album_share", 0) > 0:
        raise SystemExit("the own-library protocol trains without labels, and album tags are the soundtrack here")
    songs = list({r.hash: Song(r.hash, r.channels, r.frames, r.album) for r in rows}.values())
    if "fraction" in spec:   # the learning curve: a random share of the training songs
        songs = share_of(songs, spec["fraction"], [fold.index, 7])
    train_cfg = dataclasses.replace(TrainConfig(), **(PRESETS["recon"] | {"max_epochs": CAP}
                                                      | spec.get("train", {})))
    model_cfg = dataclasses.replace(ModelConfig(), **spec.get("model", {}))
    trainer = Trainer(lib.home.spectrograms, songs, folder, model_cfg=model_cfg, train_cfg=train_cfg,
                      feature_version=lib.home.spectrograms.feature_version, init=init)
    resume = (folder / "checkpoint.pt").exists()
    run_phase = "cluster" if "after" in spec else phase
    started = time.perf_counter()
    result = trainer.run(run_phase, resume=resume)
    print(f"  trained {folder} in {time.perf_counter() - started:.0f} s: {result.stop_reasons}", flush=True)
    return target


def ensemble(members: list[str], fold: Fold, work: Path, count: int) -> dict[str, np.ndarray]:
    """Song vectors of several trained methods side by side: each member's mean+std (unit
    length), concatenated and scaled to unit length, so that the cosine is the members' mean."""
    parts: dict[str, list[np.ndarray]] = {p: [] for p in PARTS}
    for member in members:
        cached = work / "windows" / member / f"fold{fold.index}.npz"
        if not cached.exists():
            raise SystemExit(f"{member} has not been evaluated on fold {fold.index} yet")
        dim = dataclasses.replace(ModelConfig(), **METHODS[member].get("model", {})).embedding_dim
        with np.load(cached) as data:
            for p in PARTS:
                parts[p].append(np.stack([aggregate(data[f"{p}{i}"].astype(np.float32)[:, :dim], "meanstd", dim)
                                          for i in range(count)]))
    return {p: np.concatenate(v, axis=1) / np.sqrt(len(v)) for p, v in parts.items()}


# -- one fold -----------------------------------------------------------------------------------------------
def evaluate_fold(lib: Library, fold: Fold, methods: list[str], work: Path, group_of: dict[str, str],
                  query_time: bool = False, seed: int = 0, out: Path | None = None) -> None:
    """Score every method and baseline on the fold's songs.  Held-out models are trained under
    ``work``; the results, window embeddings and own-library models under ``out`` (``work`` unless
    the fold's songs are a share of them: another library)."""
    out = out or work
    results = out / "results"
    rows = fold_order(fold, seed)
    labels = [group_of[r.hash] for r in rows]
    specs: list[dict[str, np.ndarray]] | None = None
    reference: list[Normaliser] = []   # the held-out models' normaliser, fitted on the fold's training songs

    def plain(bundle: Bundle) -> bool:
        """Whether a model's untrained network is the fold's plain "untrained": the default shape,
        fed as the held-out models are."""
        if bundle.cfg != ModelConfig():
            return False
        if not reference:
            songs = list({r.hash: Song(r.hash, r.channels, r.frames, r.album) for r in fold.train}.values())
            reference.append(fit_normaliser(lib.home.spectrograms, songs, seed=TrainConfig().seed))
        return all(np.allclose(getattr(bundle.normaliser, f), getattr(reference[0], f), atol=0.05)
                   for f in ("mean", "std"))

    def load_specs() -> list[dict[str, np.ndarray]]:
        nonlocal specs
        if specs is None:
            specs = [parts(np.asarray(lib.home.spectrograms.open(r.hash))) for r in rows]
        return specs

    def done(name: str) -> bool:
        return (results / name / f"fold{fold.index}.npz").exists()

    def keep(name: str, scores: Scores) -> None:
        scores.save(results / name / f"fold{fold.index}.npz")
        print(f"  fold {fold.index} {name}: p@10 {scores.p10.mean():.3f}  top-1 {scores.top1.mean():.3f}  "
              f"unequal {scores.top1_unequal.mean():.3f}", flush=True)

    def score_query_time(name: str, vectors: dict[str, np.ndarray]) -> None:
        for variant, settings in QUERY_TIME.items():
            if not done(f"{name}@meanstd+{variant}"):
                ranking = ((lambda v, kw=settings: space.walks(v, kw["walk"], WALK_POOL, kw["alpha"]))
                           if "walk" in settings
                           else (lambda v, kw=settings: space.similarity(v, **kw)))
                keep(f"{name}@meanstd+{variant}", score(vectors, labels, metric=ranking))

    baselines = {
        "random": lambda: {p: np.random.default_rng([seed, i]).standard_normal((len(rows), 128))
                           for i, p in enumerate(PARTS)},
        "MFCC mean+std": lambda: featurize(load_specs(), ev.mfcc_stats, True),
        "log-mel mean+std": lambda: featurize(load_specs(), ev.logmel_stats, True),
    }
    for name, compute in baselines.items():
        if not done(name):
            keep(name, score(compute(), labels))
    if not done("song length"):
        keep("song length", score(featurize(load_specs(), ev.song_length, False), labels, metric="euclidean"))

    for method in methods:
        spec = METHODS[method]
        if "ensemble" in spec:
            vectors = ensemble(spec["ensemble"], fold, out, len(rows))
            if not done(f"{method}@meanstd"):
                keep(f"{method}@meanstd", score(vectors, labels))
            if query_time:
                score_query_time(method, vectors)
            continue
        own = spec.get("own", False)
        folder = (out if own else work) / "runs" / method / f"fold{fold.index}"
        model_path = train(lib, fold.test if own else fold.train, folder, spec, work, fold)
        bundles = {method: model_path}
        if model_path.name == "model.pt" and (folder / "pretrain.pt").exists() and "after" not in spec:
            bundles[f"{method}:pretrain"] = folder / "pretrain.pt"
        for name, path in bundles.items():
            bundle = load_bundle(path)
            dim = bundle.cfg.embedding_dim
            if query_time or not all(done(f"{name}@{how}") for how in AGGREGATIONS):
                windows = cached_windows(name, bundle, fold, out, len(rows), load_specs)
            for how in AGGREGATIONS:
                if not done(f"{name}@{how}"):
                    keep(f"{name}@{how}", score(aggregated(windows, how, dim), labels))
            if query_time:
                score_query_time(name, aggregated(windows, "meanstd", dim))
            # the same network untrained, with the same input normalisation and aggregation: the
            # plain one where the model has the default shape and the held-out models' normaliser
            # (a model fed otherwise, as own-library ones are, was paired with whichever untrained
            # network ran first on the fold)
            untrained = "untrained" if plain(bundle) else f"untrained-{method}"
            wanted = [f"{untrained}@{how}" for how in AGGREGATIONS]
            wanted += [f"{untrained}@meanstd+{variant}" for variant in QUERY_TIME] if query_time else []
            if not all(done(w) for w in wanted):
                torch.manual_seed(seed)
                network = Bundle(ClusterAutoencoder(bundle.cfg), bundle.cfg, bundle.normaliser,
                                 bundle.feature_version, "cluster", "untrained", {})
                windows = window_embeddings(network, load_specs())
                for how in AGGREGATIONS:
                    if not done(f"{untrained}@{how}"):
                        keep(f"{untrained}@{how}", score(aggregated(windows, how, dim), labels))
                if query_time:
                    score_query_time(untrained, aggregated(windows, "meanstd", dim))


# -- peers (bench/peers: each in its own environment) ------------------------------------------------------
PEERS = {"peer: musicnn MSD penultimate": ("musicnn", "musicnn_features.py", False),
         "peer: bliss": ("bliss", "bliss_features.py", True)}


def peer_features(venvs: Path, name: str, script: str, paths: list[str], work: Path) -> dict[str, np.ndarray]:
    """The peer's vector of every song (whole songs only), computed once into the work folder."""
    out = work / "peers" / f"{name}.npz"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        listing = out.with_suffix(".txt")
        listing.write_text("\n".join(paths))
        subprocess.run(["nice", "-n", "10", str(venvs / name / "bin" / "python"),
                        str(Path(__file__).parent / "peers" / script), "--paths", str(listing),
                        "--out", str(out), "--jobs", "2"], check=True)
    with np.load(out) as data:
        return dict(zip(data["paths"], data["features"]))


def evaluate_peers(fold: Fold, labels_of: dict[str, str], features: dict[str, dict[str, np.ndarray]],
                   results: Path, seed: int = 0) -> None:
    """p@10 of each peer on the fold's songs (the peers see whole files: no same-song protocol)."""
    rows = fold_order(fold, seed)
    labels = [labels_of[r.hash] for r in rows]
    for name, (_, _, standardised) in PEERS.items():
        if name not in features or (results / name / f"fold{fold.index}.npz").exists():
            continue
        x = np.stack([features[name][os.path.realpath(r.path)] for r in rows]).astype(np.float64)
        x[~np.isfinite(x).all(1)] = 0.0            # a song the peer could not decode: no information
        if standardised:
            x = ev.standardise(x)
        asked, label_scores = ev.label_queries(x, labels)
        Scores(label_scores[:, 1], np.array([labels[i] for i in asked]), np.zeros(0),
               np.zeros(0)).save(results / name / f"fold{fold.index}.npz")


# -- the report ---------------------------------------------------------------------------------------------
def pooled(work: Path, name: str, k: int) -> list[Scores] | None:
    paths = [work / "results" / name / f"fold{i}.npz" for i in range(k)]
    return [Scores.load(p) for p in paths] if all(p.exists() for p in paths) else None


def interval(values: np.ndarray, groups: np.ndarray | None = None) -> str:
    """Mean and bootstrap 95 % interval, resampling queries, or with ``groups`` whole soundtracks."""
    if len(values) == 0:
        return "–"
    mean, low, high = (ev.bootstrap_interval(values) if groups is None else
                       ev.group_bootstrap_interval(values, groups))
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def report(work: Path, k: int, reference: str) -> str:
    names = sorted(p.name for p in (work / "results").iterdir() if pooled(work, p.name, k))
    rows, diffs = [], []
    ref = pooled(work, reference, k)
    for name in names:
        folds = pooled(work, name, k)
        cat = {f: np.concatenate([getattr(s, f) for s in folds]) for f in ("p10", "groups", "top1", "top1_unequal")}
        rows.append([name, interval(cat["p10"]), interval(cat["p10"], cat["groups"]), interval(cat["top1"]),
                     interval(cat["top1_unequal"])]
                    + [f"{s.p10.mean():.3f} / " + (f"{s.top1.mean():.3f}" if len(s.top1) else "–")
                       for s in folds])
        # a model fed otherwise than the held-out models is paired with its own untrained network
        method, _, how = name.partition("@")
        own = f"untrained-{method.split(':')[0]}@{how}"
        own_scores = pooled(work, own, k) if reference.startswith("untrained@") and name != own else None
        against, base = (own, own_scores) if own_scores else (reference, ref)
        if base is not None and name != reference:
            d = {f: np.concatenate([getattr(s, f) - getattr(r, f) if len(getattr(s, f)) and len(getattr(r, f))
                                    else np.zeros(0)
                                    for s, r in zip(folds, base)])
                 for f in ("p10", "top1", "top1_unequal")}
            diffs.append([name, against, interval(d["p10"]), interval(d["p10"], cat["groups"])]
                         + [interval(d[f]) for f in ("top1", "top1_unequal")])
    songs = sum(len(s.top1) // 2 for s in pooled(work, "random", k) or [])
    text = [f"{k} folds over the soundtracks, {songs} songs, pooled; bootstrap 95 % intervals, resampling "
            "the queries or (\"by soundtrack\") whole soundtracks, whose songs are not independent queries.", "",
            table(["method", "p@10", "p@10, by soundtrack", "same-song top-1", "top-1, unequal parts"]
                  + [f"fold {i}: p@10 / top-1" for i in range(k)], rows)]
    if diffs:
        text += ["", f"Paired differences against {reference}, or a model's own untrained network where it "
                     "is fed otherwise (same queries):", "",
                 table(["method", "against", "p@10", "p@10, by soundtrack", "same-song top-1", "top-1, unequal parts"],
                       diffs)]
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="a home holding every song of the manifests")
    parser.add_argument("--manifest", nargs="+", required=True, help="realmusic.tsv [extramusic.tsv]")
    parser.add_argument("--work", required=True, help="folder for the models and per-fold results")
    parser.add_argument("--methods", default="", help=f"comma-separated, of: {', '.join(METHODS)}")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--only-fold", type=int, help="run one fold (the report needs all)")
    parser.add_argument("--reference", default="untrained@meanstd", help="method the differences are to")
    parser.add_argument("--query-time", action="store_true",
                        help="also score the methods and their untrained networks with centring, whitening, "
                             "hubness reduction and neighbour averaging")
    parser.add_argument("--peers", metavar="VENVS",
                        help="score the peers too, from the environments of bench/peers/setup.sh VENVS")
    parser.add_argument("--library-share", type=float, default=1.0, metavar="S",
                        help="evaluate on a random share S of each fold's songs (the same songs for every "
                             "method), a smaller library; results and own-library models in WORK/share-S")
    parser.add_argument("--library-draw", type=int, default=0, metavar="D",
                        help="with --library-share: another random draw of the songs (in WORK/share-S-D)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    if args.folds < 3:
        sys.exit("use at least 3 folds")
    if not 0 < args.library_share <= 1:
        sys.exit("--library-share is a share of each fold's songs, above 0 and at most 1")
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        sys.exit(f"unknown methods: {', '.join(unknown)}")
    torch.set_num_threads(args.threads)
    work = Path(args.work).resolve()
    with Library(args.home, create=False) as lib:
        folds, group_of = manifest_folds(lib, args.manifest, args.folds)
        rows = {r.hash: r for f in folds for r in f.test}
        work.mkdir(parents=True, exist_ok=True)
        (work / "folds.json").write_text(json.dumps({f.index: f.groups for f in folds}, indent=1))
        out = work
        if args.library_share < 1:
            draw = [args.library_draw] if args.library_draw else []
            out = work / "-".join(map(str, [f"share-{args.library_share:g}", *draw]))
            folds = [dataclasses.replace(f, test=share_of(f.test, args.library_share, [f.index, 11, *draw]))
                     for f in folds]
        features = {}
        if args.peers:
            paths = sorted(os.path.realpath(r.path) for r in rows.values())
            for name, (venv, script, _) in PEERS.items():
                features[name] = peer_features(Path(args.peers), venv, script, paths, work)
        for fold in folds:
            if args.only_fold is not None and fold.index != args.only_fold:
                continue
            print(f"fold {fold.index}: {len(fold.test)} songs of {', '.join(fold.groups)}", flush=True)
            evaluate_peers(fold, group_of, features, out / "results")
            evaluate_fold(lib, fold, methods, work, group_of, args.query_time, out=out)
    text = report(out, args.folds, args.reference)
    (out / "quality.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
