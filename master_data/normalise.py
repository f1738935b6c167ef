"""Normalisation of names for comparison: the same person written by two systems compares equal."""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\s'’\-]+")


def fold(text: str) -> str:
    """Upper-case, accents stripped, apostrophes/hyphens/space runs as one space."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SEPARATORS.sub(" ", plain).strip().upper()
