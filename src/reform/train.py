"""The two training phases, the plateau schedule, checkpoints and resume.

Pretraining fits the auto-encoder with its auxiliary decoders; the clustering
phase drops them, freezes batch norm and adds the clustering loss.  Both use
Adam and divide the learning rate by 10 whenever the epoch loss stops
improving (see :class:`PlateauSchedule`).  A checkpoint is written atomically
after every epoch, so Ctrl-C or a crash loses at most the epoch in progress
and ``resume=True`` continues exactly where the last complete epoch ended.

Started by torchrun, several processes train one model together (a
:class:`~reform.distributed.Group`): each takes its part of every step, they
decide the schedule on the loss of the whole epoch, and only the first (rank 0)
writes the run's files.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint
from .average import WeightAverage
from .bank import MemoryBank
from .card import file_problem, read_card
from .checkpoint import Bundle
from .config import ModelConfig, TrainConfig, from_dict, to_dict
from .dataset import Normaliser, Song, Windows, album_ids, fit_normaliser, shard_steps
from .device import resolve as resolve_device
from .distributed import Group
from .errors import ConfigError, ModelError, TrainError
from .files import json_text, write_text
from .home import RunFiles, read_history
from .loader import Step, steps
from .model import ClusterAutoencoder, PretrainAutoencoder
from .objectives import ClusterObjective, PretrainObjective, fill_bank
from .store import SpectrogramStore
from .text import plural

Objective = PretrainObjective | ClusterObjective

Callback = Callable[[dict[str, Any]], None]


# -- schedule -------------------------------------------------------------------------------------
@dataclass
class PlateauSchedule:
    """Divides the learning rate at each plateau of the epoch loss and ends the phase.

    A plateau is ``patience`` consecutive epochs whose loss is not below the best
    loss so far by more than ``threshold`` (relative).  The first ``max_drops``
    plateaus divide the rate; plateau number ``stop_at`` ends the phase.
    """

    patience: int
    threshold: float
    max_drops: int
    stop_at: int
    best: float = math.inf
    bad_epochs: int = 0
    plateaus: int = 0

    def step(self, loss: float) -> str:
        """Feed one epoch loss; returns "continue", "drop", "stop" or "diverged"."""
        if not math.isfinite(loss):
            return "diverged"
        if loss < self.best * (1.0 - self.threshold):
            self.best, self.bad_epochs = loss, 0
            return "continue"
        self.bad_epochs += 1
        if self.bad_epochs < self.patience:
            return "continue"
        self.plateaus += 1
        self.bad_epochs = 0
        if self.plateaus >= self.stop_at:
            return "stop"
        return "drop" if self.plateaus <= self.max_drops else "continue"


def pretrain_schedule(cfg: TrainConfig) -> PlateauSchedule:
    """Pretraining stops at plateau ``pretrain_plateaus`` (3): the rate drops at the ones before."""
    return PlateauSchedule(cfg.plateau_patience, cfg.plateau_threshold,
                           max_drops=cfg.pretrain_plateaus - 1, stop_at=cfg.pretrain_plateaus)


def cluster_schedule(cfg: TrainConfig) -> PlateauSchedule:
    """Clustering divides the rate at its first ``cluster_drops`` (3) plateaus, stops at the next."""
    return PlateauSchedule(cfg.plateau_patience, cfg.plateau_threshold,
                           max_drops=cfg.cluster_drops, stop_at=cfg.cluster_drops + 1)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam over the trainable parameters, as the note trains; with ``weight_decay``, AdamW
    decaying the weight matrices and kernels (not biases or batch-norm scales and shifts)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if weight_decay <= 0:
        return torch.optim.Adam(trainable, lr=lr)
    groups = [{"params": [p for p in trainable if p.ndim > 1], "weight_decay": weight_decay},
              {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


# -- one epoch ------------------------------------------------------------------------------------
def run_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator[Step],
              objective: Objective, on_batch: Callable[[int], None], per_step: int = 1,
              group: Group | None = None, average: WeightAverage | None = None) -> tuple[dict, int]:
    """One pass over ``batches``, ``per_step`` of them per optimizer step (each folded into
    ``average`` if given); returns the mean of every loss term over the windows of every
    process, and their count.

    The terms are summed where the model is and read once, at the end: a GPU then runs
    behind the CPU, which prepares the next batches while the card trains on this one."""
    group = group or Group()
    model.train()
    totals: dict[str, torch.Tensor] = {}
    seen = 0
    for i, step in enumerate(batches):
        last = (i + 1) % per_step == 0
        loss, terms = objective(model, step)
        if i % per_step == 0:
            optimizer.zero_grad(set_to_none=True)
        with group.accumulating(model, last):   # the processes average gradients once per step
            loss.backward()
        if last:
            optimizer.step()
            objective.after_step()
            if average is not None:
                average.update()
        for name, value in terms.items():
            weighted = value.double() * step.weight
            totals[name] = totals[name] + weighted if name in totals else weighted
        seen += len(step)
        on_batch(len(step) * group.world)
    local = torch.stack(list(totals.values())).tolist() if totals else []
    *sums, seen = group.sum([*local, seen])
    return {name: value / max(seen, 1) for name, value in zip(totals, sums, strict=True)}, int(seen)


@torch.no_grad()
def embedding_spread(model: torch.nn.Module, probe: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict:
    """How far apart songs are in the embedding space, against how spread each song is.

    ``between`` is the mean squared distance of song means to their overall mean,
    ``within`` the mean squared distance of windows to their song's mean (over the songs
    longer than a window, whose windows differ); a ratio
    that grows means windows of one song gather while songs stay apart, and both
    shrinking towards zero would be a collapse.
    """
    windows, _, song = probe
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.from_numpy(windows).to(device).contiguous(memory_format=torch.channels_last)
    emb = model.encoder(x)[-1].float().cpu().numpy()
    model.train(was_training)
    songs = np.unique(song)
    means = np.stack([emb[song == s].mean(0) for s in songs])
    # a song shorter than a window gives the same window every time: no spread to measure
    varied = [i for i, s in enumerate(songs) if np.ptp(windows[song == s], axis=0).any()]
    within = float(np.mean([((emb[song == songs[i]] - means[i]) ** 2).sum(1).mean() for i in varied])
                   if varied else 0.0)
    between = float(((means - means.mean(0)) ** 2).sum(1).mean())
    return {"spread_between": between, "spread_within": within,
            "spread_ratio": between / within if within > 0 else math.inf}


# -- a training run -------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Everything that changes during training, saved after every epoch."""

    phase: str                      # the phase in progress: "pretrain" or "cluster"
    epoch: int = 0                  # completed epochs of that phase
    lr: float = 0.0
    schedule: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    finished: bool = False          # the phase ended (plateaus or the epoch cap)
    stop_reason: str = ""
    capped: bool = False            # it ended at the epoch cap (a resume with a higher cap goes on)


@dataclass
class TrainResult:
    files: RunFiles
    history: list[dict]
    stop_reasons: dict[str, str]
    earlier: frozenset[str] = frozenset()   # phases that had ended before this (resumed) run began


def check_song_count(songs: int, cfg: TrainConfig) -> None:
    """TrainError when a library has too few analysed songs to train on."""
    if songs < max(2, cfg.cluster_songs):
        raise TrainError(f"training needs at least {max(2, cfg.cluster_songs)} analysed songs "
                         f"(a clustering step takes {cfg.cluster_songs}), the library has {songs}",
                         hint="scan more music with `reform scan FOLDER`")


class Trainer:
    """Runs the requested phases of one training run, resumably.

    Parameters
    ----------
    store, songs : where the spectrograms are and which songs to learn from
    folder : the run's folder (models/<name>)
    model_cfg, train_cfg : settings; stored in every checkpoint
    feature_version : of the spectrograms; stored so embedding refuses other features
    init : a trained bundle to start from (fine-tuning) instead of random weights
    callback : receives progress events (epoch start, batches, epoch end); rank 0 only
    device : "auto" (a CUDA GPU when torch sees one), "cpu" or "cuda"
    group : the training processes (:func:`reform.distributed.session`); its device wins
    """

    def __init__(self, store: SpectrogramStore, songs: list[Song], folder: Path, *,
                 model_cfg: ModelConfig, train_cfg: TrainConfig, feature_version: str,
                 init: Bundle | None = None, callback: Callback | None = None,
                 device: str = "auto", group: Group | None = None):
        self.group = group or Group(device=resolve_device(device))
        self.device = self.group.device
        self.store, self.songs = store, songs
        self.files = RunFiles(Path(folder))
        self.model_cfg, self.cfg = model_cfg, shared_config(train_cfg, self.group.world)
        self.feature_version = feature_version
        self.init = init
        self.callback = (callback if self.group.main else None) or (lambda event: None)
        check_song_count(len(songs), self.cfg)

    # -- public ---------------------------------------------------------------------------------
    def run(self, phase: str = "all", resume: bool = False) -> TrainResult:
        if phase not in ("all", "pretrain", "cluster"):
            raise TrainError(f"unknown phase {phase!r}; use pretrain, cluster or all")
        group = self.group
        torch.set_num_threads(self.cfg.threads or max(1, (os.cpu_count() or 1) // group.local_world))
        saved = None
        if resume:
            if not self.files.checkpoint.exists():
                raise TrainError("there is no checkpoint to resume", path=self.files.folder,
                                 hint="start a new run with `reform train`")
            saved = checkpoint.load(self.files.checkpoint)
            if phase == "pretrain" and saved["state"]["phase"] == "cluster":   # it would do nothing
                raise TrainError(f"the run {self.files.folder.name} has finished pretraining and is in its "
                                 "clustering phase", path=self.files.folder,
                                 hint=f"`reform train --resume --name {self.files.folder.name}` goes on with "
                                      "the clustering phase")
            self._refuse_finished(saved["state"])
        if phase == "cluster" and saved is None and self.init is None and not self.files.pretrain.exists():
            raise self._nothing_to_cluster()   # before the run's folder is made: no run is left behind
        normaliser = group.broadcast(self._normaliser(saved) if group.main else None)
        self.windows = Windows(self.store, self.songs, normaliser, self.model_cfg.window_frames)
        self.probe = self.windows.probe(min(64, len(self.songs)), 4, self.cfg.seed)
        self.normaliser = normaliser
        self.started_from = self._started_from(saved, phase)
        history: list[dict] = (saved["state"]["history"] if saved
                               else self._pretraining_history() if phase == "cluster" else [])
        reasons: dict[str, str] = dict(saved.get("stop_reasons", {})) if saved else {}
        if group.main:
            self.files.folder.mkdir(parents=True, exist_ok=True)
            self._write_config()
            self._write_architectures()

        done = saved is not None and saved["state"]["phase"] == "cluster"   # the pretraining has ended
        if phase in ("all", "pretrain"):
            if not done:
                model = self._pretrain_model(saved)
                state = self._state(saved, "pretrain")
                reasons["pretrain"] = self._phase(model, state, history, reasons, saved)
                if group.main:
                    checkpoint.save_bundle(self.files.pretrain, model, normaliser, self.feature_version,
                                           self._info(history, "pretrain"))
                group.barrier()   # the clustering phase of every process starts from this file
                saved = None
        if phase in ("all", "cluster"):
            model = self._cluster_model(saved)
            state = self._state(saved, "cluster")
            reasons["cluster"] = self._phase(model, state, history, reasons, saved)
            if group.main:
                checkpoint.save_bundle(self.files.model, model, normaliser, self.feature_version,
                                       self._info(history, "cluster"))
        return TrainResult(self.files, history, reasons, frozenset({"pretrain"} if done else ()))

    def _refuse_finished(self, state: dict) -> None:
        """TrainError for a resume that has nothing left to train: it would report a cap it had
        passed, or a schedule that had ended, and write the run's files again for nothing.  A run
        whose model file is lost or damaged has that left to do: it is written again."""
        if state["phase"] != "cluster" or not self.files.model.exists() or file_problem(self.files.model):
            return
        name, done = self.files.folder.name, state["epoch"]
        if state["finished"] and not state["capped"]:   # first: no cap, however high, goes on with it
            raise TrainError(f"the run {name} has finished ({state['stop_reason']}): nothing to do",
                             path=self.files.folder, hint="`reform train --name NEW` starts another run")
        if done >= self.cfg.max_epochs:
            more = "more than" if done > self.cfg.max_epochs else "as many as"
            raise TrainError(f"the run {name} has trained {plural(done, 'clustering epoch')} already, {more} "
                             f"--max-epochs {self.cfg.max_epochs}: nothing to do", path=self.files.folder,
                             hint="a higher --max-epochs goes on with it")

    # -- set-up ---------------------------------------------------------------------------------
    def _normaliser(self, saved: dict | None) -> Normaliser:
        if saved is not None:
            return Normaliser.from_dict(saved["normaliser"])
        if self.init is not None:
            return self.init.normaliser  # the weights were trained on inputs scaled this way
        return fit_normaliser(self.store, self.songs, seed=self.cfg.seed)

    def _started_from(self, saved: dict | None, phase: str) -> str | None:
        """The version of the model this run fine-tunes (None: random weights), kept across a
        resume and by a clustering phase started on its own from this folder's pretraining."""
        if saved is not None:
            return saved.get("started_from")
        if phase == "cluster" and self.files.pretrain.exists():
            try:
                return read_card(self.files.pretrain).get("info", {}).get("started_from")
            except ModelError:   # a card lost with the folder's other files: nothing to keep
                return None
        return self.init.version if self.init is not None else None

    def _state(self, saved: dict | None, phase: str) -> TrainState:
        if saved is not None and saved["state"]["phase"] == phase:
            state = TrainState(**saved["state"])
            if state.capped and state.epoch < self.cfg.max_epochs:   # resumed with a higher cap
                state.finished, state.capped, state.stop_reason = False, False, ""
            return state
        lr = self.cfg.learning_rate
        if phase == "cluster" and self.cfg.cluster_learning_rate is not None:
            lr = self.cfg.cluster_learning_rate
        return TrainState(phase=phase, lr=lr)

    def _pretrain_model(self, saved: dict | None) -> PretrainAutoencoder:
        torch.manual_seed(self.cfg.seed)
        model = PretrainAutoencoder(self.model_cfg)
        if saved is not None:
            model.load_state_dict(saved["model_state"])
        elif self.init is not None:
            model.start_from(self.init.model)
        return model.to(self.device, memory_format=torch.channels_last)

    def _cluster_model(self, saved: dict | None) -> ClusterAutoencoder:
        if saved is not None and saved["state"]["phase"] == "cluster":
            model = ClusterAutoencoder(self.model_cfg)
            model.load_state_dict(saved["model_state"])
        elif self.files.pretrain.exists():
            model = ClusterAutoencoder.from_pretrained(checkpoint.load_bundle(self.files.pretrain).model)
        elif self.init is not None:
            source = self.init.model
            model = (ClusterAutoencoder.from_pretrained(source) if isinstance(source, PretrainAutoencoder)
                     else ClusterAutoencoder(self.model_cfg))
            if isinstance(source, ClusterAutoencoder):
                model.load_state_dict(source.state_dict())
        else:
            raise self._nothing_to_cluster()
        return model.to(self.device, memory_format=torch.channels_last)

    def _nothing_to_cluster(self) -> TrainError:
        return TrainError("the clustering phase starts from a pretrained model, and this run has none",
                          path=self.files.folder,
                          hint=f"run `reform train --phase pretrain --name {self.files.folder.name}` first (the "
                          "clustering phase then goes on in the same run), or `--phase all`, or start from the "
                          "shipped model with `--init shipped`")

    # -- the loop -------------------------------------------------------------------------------
    def _objective(self, phase: str, model, saved: dict | None) -> tuple[Objective, Callable[[int], list], int]:
        """The phase's objective, this process's plan of batches for a given epoch, and the
        windows in one epoch (of all processes)."""
        cfg, device, group = self.cfg, self.device, self.group
        if phase == "pretrain":
            objective = PretrainObjective(cfg, self.model_cfg.n_layers - 1, self.normaliser, device, group,
                                          album_ids(self.songs))
            return (objective,
                    lambda epoch: [plan.shard(group.rank, group.world) for plan in self.windows.pretrain_plan(
                        cfg.seed, epoch, cfg.batch_size, objective.views, objective.backgrounds)],
                    len(self.windows.examples))
        bank = None
        if cfg.cluster_loss == "bank":
            if saved is not None and saved["state"]["phase"] == "cluster" and "bank" in saved:
                bank = MemoryBank.from_state_dict(saved["bank"])
                bank.vectors = bank.vectors.to(device)
            else:
                bank = fill_bank(model, self.windows.song_windows(4, cfg.seed), cfg.precision, device)
                bank.vectors = group.broadcast_tensor(bank.vectors)   # the very same bank everywhere
        return (ClusterObjective(cfg, self.normaliser, bank, device, group),
                lambda epoch: shard_steps(
                    self.windows.cluster_plan(cfg.seed, epoch, cfg.cluster_batch_size, cfg.cluster_songs),
                    cfg.cluster_songs, group.rank, group.world),
                -(-len(self.songs) // cfg.cluster_songs) * cfg.cluster_songs * cfg.cluster_batch_size)

    def _phase(self, model, state: TrainState, history: list[dict], reasons: dict,
               saved: dict | None) -> str:
        """Train one phase until its schedule stops it (or the epoch cap); returns why it ended."""
        cfg = self.cfg
        schedule = PlateauSchedule(**state.schedule) if state.schedule else (
            pretrain_schedule(cfg) if state.phase == "pretrain" else cluster_schedule(cfg))
        resumed = saved is not None and saved["state"]["phase"] == state.phase   # in this phase
        optimizer = make_optimizer(model, state.lr, cfg.weight_decay)
        if resumed:
            optimizer.load_state_dict(saved["optimizer_state"])
        objective, plan, n_windows = self._objective(state.phase, model, saved)
        average = None
        if cfg.ema > 0:
            average = WeightAverage(model, cfg.ema, saved.get("average") if resumed else None)
        per_step = 1 if state.phase == "pretrain" else cfg.cluster_songs // self.group.world
        trained = self.group.wrap(self.group.sync_batchnorm(model) if state.phase == "pretrain" else model)
        if state.epoch == 0 and not history_has(history, state.phase):
            history.append({"phase": state.phase, "epoch": 0, "lr": state.lr, "event": "start",
                            **embedding_spread(model, self.probe)})
        while not state.finished:
            if state.epoch >= cfg.max_epochs:
                state.finished, state.capped = True, True
                state.stop_reason = f"reached the cap of {plural(cfg.max_epochs, 'epoch')}"
                break
            epoch = state.epoch + 1
            self.callback({"type": "epoch_start", "phase": state.phase, "epoch": epoch,
                           "windows": n_windows, "lr": state.lr, "plateaus": schedule.plateaus,
                           "max_epochs": cfg.max_epochs})
            started = time.perf_counter()
            batches = steps(self.windows, plan(epoch), self.device)
            terms, seen = run_epoch(trained, optimizer, batches, objective,
                                    lambda n: self.callback({"type": "batch", "windows": n}),
                                    per_step, self.group, average)
            seconds = time.perf_counter() - started
            action = schedule.step(terms["total"])
            record = {"phase": state.phase, "epoch": epoch, "lr": state.lr, **terms,
                      "windows": seen, "seconds": round(seconds, 3),
                      "windows_per_s": round(seen / seconds, 2), "plateaus": schedule.plateaus,
                      "event": action if action != "continue" else ""}
            if action == "diverged":
                self._diverged(record, history, terms["total"], state)
            record.update(embedding_spread(model, self.probe))
            self._apply(action, state, schedule, optimizer)
            state.epoch = epoch
            history.append(record)
            if self.group.main:
                self._save(model, optimizer, state, history, reasons, objective, average)
                self._write_metrics(history)
            self.callback({"type": "epoch_end", **record})
        if average is not None:
            average.apply()   # what the phase hands on; its checkpoint keeps the live weights
        return state.stop_reason

    def _apply(self, action: str, state: TrainState, schedule: PlateauSchedule, optimizer) -> None:
        """Carry out the schedule's decision: divide the learning rate, or end the phase."""
        if action == "drop":
            state.lr *= self.cfg.lr_factor
            for group in optimizer.param_groups:
                group["lr"] = state.lr
        elif action == "stop":
            state.finished = True
            state.stop_reason = f"stopped at plateau {schedule.plateaus}"
        state.schedule = asdict(schedule)

    def _diverged(self, record: dict, history: list[dict], loss: float, state: TrainState) -> None:
        """Log the diverged epoch (its weights are not saved) and stop with a clear error."""
        history.append(record)
        if self.group.main:
            self._write_metrics(history)
        self.callback({"type": "epoch_end", **record})
        raise TrainError(f"training diverged in epoch {record['epoch']} of the {state.phase} phase "
                         f"(loss {loss}) at learning rate {state.lr:g}", path=self.files.folder,
                         hint="lower the rate with --lr (the default is 0.001)" + (
                             "; the last good epoch is kept in the checkpoint" if self.files.checkpoint.exists()
                             else ": no epoch had finished, so start the run again"))

    # -- persistence ----------------------------------------------------------------------------
    def _save(self, model, optimizer, state: TrainState, history: list[dict], reasons: dict,
              objective: Objective, average: WeightAverage | None) -> None:
        state.history = history
        bank = getattr(objective, "bank", None)
        checkpoint.save_atomic({
            **({"bank": {k: v.cpu() for k, v in bank.state_dict().items()}} if bank is not None else {}),
            **({"average": average.state_dict()} if average is not None else {}),
            "format": checkpoint.FORMAT_VERSION, "kind": "training",
            "model_config": to_dict(self.model_cfg), "train_config": to_dict(self.cfg),
            "normaliser": self.normaliser.to_dict(), "feature_version": self.feature_version,
            "model_state": {k: v.cpu() for k, v in model.state_dict().items()},
            "optimizer_state": optimizer.state_dict(),
            "state": asdict(state), "stop_reasons": reasons, "started_from": self.started_from,
            "songs": [song.hash for song in self.songs],   # a resumed run trains on these, scans or not
        }, self.files.checkpoint)

    def _pretraining_history(self) -> list[dict]:
        """The pretraining epochs logged in this run's folder: a clustering phase started on
        its own (``--phase cluster``) keeps them in its curves and its model's epoch counts."""
        return [row for row in read_history(self.files.folder) if row.get("phase") == "pretrain"]

    def _write_metrics(self, history: list[dict]) -> None:
        """metrics.jsonl (one line per epoch) and curves.png, always matching the checkpoint."""
        from .plots import write_curves

        write_text(self.files.metrics, "".join(json_text(h) + "\n" for h in history if h.get("epoch")))
        write_curves(history, self.files.curves)

    def _write_architectures(self) -> None:
        from .plots import draw_architecture

        pretrain = PretrainAutoencoder(self.model_cfg)
        draw_architecture(pretrain, self.files.architecture("pretrain"))
        draw_architecture(ClusterAutoencoder.from_pretrained(pretrain), self.files.architecture("cluster"))

    def _write_config(self) -> None:
        config = {"model": to_dict(self.model_cfg), "train": to_dict(self.cfg),
                  "feature_version": self.feature_version, "songs": len(self.songs),
                  "started_from": self.started_from}
        self.files.config.write_text(json.dumps(config, indent=2))

    def _info(self, history: list[dict], phase: str) -> dict:
        epochs = [h for h in history if h.get("epoch")]
        return {"phase": phase, "songs": len(self.songs), "train_config": to_dict(self.cfg),
                "epochs": {p: sum(h["phase"] == p for h in epochs) for p in ("pretrain", "cluster")},
                "train_seconds": round(sum(h.get("seconds", 0) for h in epochs), 1),
                "started_from": self.started_from,
                "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}


def shared_config(cfg: TrainConfig, world: int) -> TrainConfig:
    """The settings as ``world`` processes run them, the same steps one process would take.

    A pretraining batch is split by rows, so each process needs at least one window of the
    smallest batch (half of ``batch_size``); a clustering step's one-song batches are dealt
    out whole, so their number must be a multiple of the processes (the default of one
    becomes one per process; it is stored with the run, so a resume keeps it).
    """
    if world == 1:
        return cfg
    if cfg.batch_size < 2 * world:
        raise ConfigError(f"a pretraining batch of {cfg.batch_size} windows cannot be shared by "
                          f"{world} processes", hint=f"use --batch-size {2 * world} or more, or fewer processes")
    if cfg.cluster_songs == 1:
        return replace(cfg, cluster_songs=world)
    if cfg.cluster_songs % world:
        raise ConfigError(f"{cfg.cluster_songs} songs per clustering step cannot be shared by {world} processes",
                          hint=f"use --cluster-songs {world} (or a multiple of it)")
    return cfg


def history_has(history: list[dict], phase: str) -> bool:
    return any(h["phase"] == phase for h in history)


def checkpoint_phase(path: Path) -> str | None:
    """The phase a run's checkpoint was saved in (None: no checkpoint)."""
    return checkpoint.load(path)["state"]["phase"] if path.exists() else None


def read_checkpoint_plan(path: Path) -> tuple[ModelConfig, TrainConfig, list[str] | None]:
    """The model and training settings a run was started with, and the hashes of the songs it
    trains on, in their order (for ``--resume``; None from a checkpoint made before they were kept)."""
    data = checkpoint.load(path)
    return (from_dict(ModelConfig, data["model_config"]), from_dict(TrainConfig, data["train_config"]),
            data.get("songs"))
