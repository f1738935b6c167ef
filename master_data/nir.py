"""The NIR (numéro de sécurité sociale): validated with its key before it may link two records.

python-stdnum checks the format and the key (97 - n mod 97), Corsica's 2A/2B included. A valid
NIR is still only trusted when it agrees with the record it sits in (sex, year and month of birth
are encoded in it): systems that hold a child under a parent's NIR as "ayant droit" would otherwise
merge a family.
"""

from __future__ import annotations

from stdnum.exceptions import ValidationError
from stdnum.fr import nir as stdnum_nir

from master_data.normalise import parse_birth_date


def valid_nir(text: str | None) -> str | None:
    """The compact NIR (15 characters) when its format and key are valid, else ``None``."""
    if not text:
        return None
    try:
        return stdnum_nir.validate(text)
    except ValidationError:
        return None


def nir_agrees(nir: str, sex: str | None, birth_date: str | None) -> bool:
    """Whether a valid NIR is consistent with the record's sex and birth year/month (unknown parts
    agree with anything; temporary NIRs starting 7 or 8 carry no sex)."""
    if sex in ("M", "F") and nir[0] in "12" and (nir[0] == "1") != (sex == "M"):
        return False
    parsed = parse_birth_date(birth_date)
    if parsed is None:
        return True
    if int(nir[1:3]) != parsed.year % 100:
        return False
    month = int(nir[3:5])
    return not (1 <= month <= 12 and parsed.month and not parsed.placeholder and month != parsed.month)


def trusted_nir(text: str | None, sex: str | None, birth_date: str | None) -> str | None:
    """The NIR the deterministic rule may use: valid and consistent with the record, else ``None``."""
    nir = valid_nir(text)
    return nir if nir and nir_agrees(nir, sex, birth_date) else None
