"""Model cards: the small JSON written beside every model file.

A card names the model's version (a hash of its weights), its kind, the
feature version and settings it was trained with, and what it was trained on.
Reading a card needs no torch, so the catalogue, the CLI and the web page can
tell which model made the stored embeddings without loading any weights.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from .errors import ModelError
from .files import write_json


def card_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def write_card(model_path: str | os.PathLike, card: dict[str, Any]) -> None:
    write_json(card_path(model_path), card)


def file_problem(model_path: str | os.PathLike) -> str | None:
    """Why the model file cannot be loaded, told without torch (None when it looks whole).

    torch saves a model as a zip archive whose members carry CRCs: reading them through finds
    a cut or overwritten file in milliseconds, where loading it would import torch.
    """
    try:
        with zipfile.ZipFile(model_path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        return f"the model file is damaged ({exc})"
    return f"the model file is damaged (its part {bad} does not match its checksum)" if bad else None


def read_card(model_path: str | os.PathLike) -> dict[str, Any]:
    try:
        return json.loads(card_path(model_path).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"the model's card is missing or unreadable ({exc})", path=model_path) from exc
