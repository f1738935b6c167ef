"""Normalisation for comparison: the same person written by two systems compares equal.

Every function here returns a comparison form and never overwrites the source value (the golden
record keeps what each system sent). All of them are idempotent: normalising a normalised value
gives it back, so a stored key can be normalised again safely.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_SEPARATORS = re.compile(r"[\s'’‘`´\-‐‑–—_.,;/]+")
_NOT_LETTER_OR_SPACE = re.compile(r"[^A-Z ]+")
_NOT_DIGIT = re.compile(r"\D+")
_LIGATURES = str.maketrans({"Œ": "OE", "œ": "oe", "Æ": "AE", "æ": "ae", "ß": "ss"})

# Particles and articles that French and neighbouring civil registers write separately, glued, or
# drop ("de La Fontaine", "Lafontaine", "LA FONTAINE (DE)"); "D" and "L" are what "d'" and "l'"
# become once apostrophes are separators.
PARTICLES = frozenset({"DE", "DU", "DES", "D", "LE", "LA", "LES", "L", "DEL", "DELLA", "VAN", "VON", "DER"})


def fold(text: str) -> str:
    """Upper-case, accents stripped, apostrophes/hyphens/space runs as one space."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SEPARATORS.sub(" ", plain).strip().upper()


def name_tokens(text: str | None) -> tuple[str, ...]:
    """The words of a name, folded, letters only.

    ``"d'Artagnan-Lefèvre"`` -> ``('D', 'ARTAGNAN', 'LEFEVRE')``.
    """
    if not text:
        return ()
    return tuple(_NOT_LETTER_OR_SPACE.sub("", fold(text)).split())


def surname_key(text: str | None) -> str:
    """The surname as one glued word, particles kept: "Le Gall" and "LEGALL" give ``LEGALL``."""
    return "".join(name_tokens(text))


_GLUED_PARTICLES = ("DES", "DE", "DU", "LA", "LE", "LES")


def surname_core(text: str | None) -> str:
    """The surname without its particles: "de La Fontaine", "Delafontaine" and "FONTAINE (LA)" give
    ``FONTAINE``.

    Separate particle words are dropped; glued ones ("Lafontaine") only when at least five letters
    remain, so that "Leroy" stays apart from "Roy" and "Dupont" from "Pont". A name made only of
    particles ("Le", "Du") keeps them, so the core is never empty for a non-empty name.
    """
    tokens = name_tokens(text)
    core = "".join([t for t in tokens if t not in PARTICLES] or tokens)
    stripped = True
    while stripped:
        stripped = False
        for particle in _GLUED_PARTICLES:
            if core.startswith(particle) and len(core) - len(particle) >= 5:
                core = core[len(particle) :]
                stripped = True
                break
    return core


def given_name_list(names: tuple[str, ...] | list[str] | str | None) -> tuple[str, ...]:
    """Given names in civil order, each as one glued word ("Jean-Pierre" -> ``JEANPIERRE``).

    A single string is split on commas (some exports hold "Marie, Louise"), not on spaces or
    hyphens: "Jean Pierre" in one field is the compound name, as the civil register writes it.
    """
    if names is None:
        return ()
    if isinstance(names, str):
        names = names.split(",")
    out = []
    for name in names:
        glued = "".join(name_tokens(name))
        if glued:
            out.append(glued)
    return tuple(out)


def given_name_tokens(names: tuple[str, ...] | list[str] | str | None) -> tuple[str, ...]:
    """Every word of every given name, in order: compound names split ("Jean-Pierre" -> JEAN, PIERRE)."""
    if names is None:
        return ()
    if isinstance(names, str):
        names = names.split(",")
    return tuple(token for name in names for token in name_tokens(name))


# ------------------------------------------------------------------------------------ birth dates

_ISO = re.compile(r"^\s*(\d{4})[-/.]?(\d{1,2})?[-/.]?(\d{1,2})?\s*$")
_FRENCH = re.compile(r"^\s*(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})\s*$")


@dataclass(frozen=True)
class BirthDate:
    """A birth date as comparison sees it: year, month, day (0 when unknown) and whether the day or
    month looks like a placeholder (01/01, 00/00 or absent) a system used for an unknown part."""

    year: int
    month: int
    day: int

    @property
    def placeholder(self) -> bool:
        return self.month == 0 or self.day == 0 or (self.month == 1 and self.day == 1)

    def iso(self) -> str:
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    def digits(self) -> str:
        return f"{self.year:04d}{self.month:02d}{self.day:02d}"


def parse_birth_date(text: str | None) -> BirthDate | None:
    """``yyyy-mm-dd`` (ISO, what the hub stores), ``yyyymmdd`` or ``dd/mm/yyyy``; unknown parts
    written ``00`` or left out are kept as 0. Anything else is ``None`` (treated as missing)."""
    if not text:
        return None
    text = text.strip()
    match = _FRENCH.match(text)
    if match:
        day, month, year = (int(g) for g in match.groups())
    else:
        match = _ISO.match(text)
        if not match:
            return None
        year = int(match.group(1))
        month = int(match.group(2) or 0)
        day = int(match.group(3) or 0)
    if not 1800 <= year <= 2200 or month > 12 or day > 31:
        return None
    return BirthDate(year, month, day)


def normalise_birth_date(text: str | None) -> str | None:
    """The ISO form ``yyyy-mm-dd`` (``00`` for unknown parts), or ``None`` when unreadable."""
    parsed = parse_birth_date(text)
    return parsed.iso() if parsed else None


# ------------------------------------------------------------------------------------- contacts


def normalise_email(text: str | None) -> str:
    """Lower-case and trimmed; empty when absent or not an address."""
    if not text or "@" not in text:
        return ""
    return text.strip().lower()


def normalise_phone(text: str | None) -> str:
    """The last nine digits of a French number, so "06 12 34 56 78", "+33 6 12 34 56 78" and
    "0033612345678" compare equal; shorter numbers are kept as their digits."""
    if not text:
        return ""
    digits = _NOT_DIGIT.sub("", text)
    return digits[-9:] if len(digits) >= 9 else digits


def normalise_postal_code(text: str | None) -> str:
    if not text:
        return ""
    return _NOT_DIGIT.sub("", text) if any(c.isdigit() for c in text) else fold(text).replace(" ", "")


_HOUSE_NUMBER = re.compile(r"^\s*(\d+)\s*(BIS|TER|QUATER|[A-D])?\b\s*,?\s*(.*)$")
# Street-type words written in full or abbreviated by different systems.
_STREET_WORDS = {
    "AV": "AVENUE",
    "AVE": "AVENUE",
    "BD": "BOULEVARD",
    "BLD": "BOULEVARD",
    "BOUL": "BOULEVARD",
    "CH": "CHEMIN",
    "CHE": "CHEMIN",
    "IMP": "IMPASSE",
    "PL": "PLACE",
    "RTE": "ROUTE",
    "ST": "SAINT",
    "STE": "SAINTE",
    "ALL": "ALLEE",
    "FBG": "FAUBOURG",
    "SQ": "SQUARE",
    "QU": "QUAI",
    "CRS": "COURS",
    "LOT": "LOTISSEMENT",
    "RES": "RESIDENCE",
    "PAS": "PASSAGE",
}


def address_parts(text: str | None) -> tuple[str, str]:
    """(house number, street) of an address line.

    "12 bis, Av. de la Gare" -> ("12BIS", "AVENUE DE LA GARE").
    """
    if not text:
        return "", ""
    folded = re.sub(r"[^A-Z0-9 ]+", " ", fold(text))
    match = _HOUSE_NUMBER.match(folded)
    number, street = "", folded
    if match:
        number = str(int(match.group(1))) + (match.group(2) or "")
        street = match.group(3)
    words = [_STREET_WORDS.get(w, w) for w in street.split()]
    return number, " ".join(words)


def normalise_city(text: str | None) -> str:
    """City name folded, "Saint"/"St" unified, "CEDEX" and arrondissement numbers dropped."""
    if not text:
        return ""
    words = [_STREET_WORDS.get(w, w) for w in re.sub(r"[^A-Z ]+", " ", fold(text)).split()]
    return " ".join(w for w in words if w != "CEDEX")
