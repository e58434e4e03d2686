"""Checkpoints and model bundles: state dicts plus every setting needed to rebuild and use them.

A *bundle* is what embedding needs: the clustering model's weights (or the
pretraining model's, for the pretraining-only baseline), the model
configuration, the input normalisation and the feature settings it was
trained on.  A *training checkpoint* adds the optimiser, the plateau schedule
and the history, so an interrupted run resumes exactly.  Both are written to a
temporary file and renamed, so a crash leaves the previous good file.
No class is pickled: only tensors, numbers, strings, lists and dicts.
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .card import file_problem, read_card, write_card
from .config import ModelConfig, from_dict, to_dict
from .dataset import Normaliser
from .errors import ModelError, WriteError
from .files import replacing, write_error
from .model import ClusterAutoencoder, PretrainAutoencoder

FORMAT_VERSION = 1


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """torch.save to ``path`` through a temporary file, fsync and rename; a failed write (disk
    full) leaves the previous file and no temporary one, and raises WriteError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(exc, path.parent) from exc
    buffer = io.BytesIO()   # torch.save into a file turns a full disk into an opaque RuntimeError
    torch.save(obj, buffer)
    with replacing(path) as f:
        f.write(buffer.getbuffer())


LOAD_HINT = ("give a model.pt that `reform train` wrote, or 'shipped' (if this is the active model: "
             "`reform use shipped`, or train the run again)")


def load_hint(path: Path) -> str:
    """What to do about a model file that cannot be loaded: a run's model beside its checkpoint
    is written again from it; a run whose checkpoint is damaged cannot go on, and a new one can
    start from its model."""
    path = Path(path)
    if path.name == "model.pt" and (path.parent / "checkpoint.pt").exists():
        return (f"`reform train --resume --name {path.parent.name}` writes it again from the run's checkpoint "
                "(or `reform use shipped`, if it is the active model)")
    if path.name == "checkpoint.pt":
        made = next((m for m in ("model.pt", "pretrain.pt")
                     if (path.parent / m).exists() and not file_problem(path.parent / m)), None)
        return ("the run cannot go on" + (f"; a new one can start from its {made}: `reform train --name "
                                          f"{path.parent.name}-2 --init {shlex.quote(str(path.parent / made))}`"
                                          if made else ": train it again"))
    return LOAD_HINT


def load(path: Path) -> dict[str, Any]:
    """A saved model or checkpoint; ModelError for a file that is missing, damaged or not one."""
    if not os.path.exists(path):
        raise ModelError("no such model file", path=path)
    # torch reads an overwritten part without a word (the archive's checksums go unread): a
    # damaged encoder weight embedded songs in silence, and only `reform status` said so
    problem = file_problem(path)
    if problem and zipfile.is_zipfile(path):
        raise ModelError(problem, path=path, hint=load_hint(path))
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError("no such model file", path=path) from None
    except Exception as exc:  # torch raises many types for a damaged file, some with a page of advice
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"not a model file, or a damaged one ({type(exc).__name__}: {first})", path=path,
                         hint=load_hint(path)) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
        raise ModelError("not a ReFORM model file of this version", path=path)
    return data


@dataclass
class Bundle:
    """A trained model ready to embed: weights, model config, normaliser, feature version."""

    model: ClusterAutoencoder | PretrainAutoencoder
    cfg: ModelConfig
    normaliser: Normaliser
    feature_version: str
    kind: str                 # "cluster" (both phases) or "pretrain" (pretraining only)
    version: str              # content hash of the weights: embeddings are stored under it
    info: dict[str, Any]      # training settings, time, data: shown by `reform status`


def _digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def bundle_dict(model: ClusterAutoencoder | PretrainAutoencoder, normaliser: Normaliser,
                feature_version: str, info: dict[str, Any], half: bool = False) -> dict[str, Any]:
    """The serialisable form of a bundle; ``half`` stores float16 weights (the shipped model)."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in model.state_dict().items()}   # CPU tensors: loadable on any device
    kind = "cluster" if isinstance(model, ClusterAutoencoder) else "pretrain"
    return {"format": FORMAT_VERSION, "kind": kind, "model_config": to_dict(model.cfg),
            "normaliser": normaliser.to_dict(), "feature_version": feature_version,
            "state_dict": state, "version": _digest(state), "info": info}


def save_bundle(path: Path, model, normaliser: Normaliser, feature_version: str,
                info: dict[str, Any], half: bool = False) -> None:
    """Write the bundle and, beside it, a small JSON card (version, features, info) that lets
    the catalogue check which model made its embeddings without loading torch."""
    data = bundle_dict(model, normaliser, feature_version, info, half)
    save_atomic(data, path)
    write_card(path, _card_of(data))


def _card_of(data: dict[str, Any]) -> dict[str, Any]:
    return {"version": data["version"], "kind": data["kind"], "feature_version": data["feature_version"],
            "model_config": data["model_config"], "info": data.get("info", {})}


def _mend_card(path: Path, data: dict[str, Any]) -> None:
    """Write the card again when it is missing or names other weights (a run killed between
    writing the model and its card, or a model copied without it): the card is what tells
    which model made the stored embeddings."""
    try:
        if read_card(path).get("version") == data["version"]:
            return
    except ModelError:
        pass
    try:
        write_card(path, _card_of(data))
    except WriteError:
        pass   # a model that cannot be written beside (the installation's): it is still usable


def load_bundle(path: Path) -> Bundle:
    data = load(path)
    if data.get("kind") == "training":
        raise ModelError("this is a run's training checkpoint, not a model", path=path,
                         hint="give the run's model.pt (or pretrain.pt); `reform train --resume --name RUN` "
                              "goes on with the run")
    try:
        cfg = from_dict(ModelConfig, data["model_config"])
        kind = data["kind"]
        model = ClusterAutoencoder(cfg) if kind == "cluster" else PretrainAutoencoder(cfg)
        state = {k: v.float() if v.is_floating_point() else v for k, v in data["state_dict"].items()}
        model.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise ModelError(f"the model file does not match this version of ReFORM ({exc})", path=path) from exc
    model.eval()
    _mend_card(path, data)
    return Bundle(model=model, cfg=cfg, normaliser=Normaliser.from_dict(data["normaliser"]),
                  feature_version=data["feature_version"], kind=kind,
                  version=data["version"], info=data.get("info", {}))
