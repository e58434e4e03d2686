"""Text matching shared by every interface: one normaliser, so a query that finds a song on
the web page finds it in the terminal too."""

from __future__ import annotations

import re
import unicodedata


def norm(text: str | None) -> str:
    """Lower case, accents and punctuation removed, words separated by one space:
    ``"Ñandú (Live)"`` -> ``"nandu live"``."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 song``, ``2 songs``; ``nouns`` for irregular plurals."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"
