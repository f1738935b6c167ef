"""The citizen's identity as the portal or a business app sends it.

Common to every démarche, so its schema lives here once; each flow's own input schema covers only
the request data. French specifics: birth surname vs used surname, several given names, INSEE
commune code of the birth place (or 99xxx country code for births abroad), Corsican codes 2A/2B.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from master_data.countries import FRANCE, country_code

INSEE_CODE = r"^(\d{5}|2[AB]\d{3})$"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SYSTEM = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: object) -> object:
        # A NUL or a control character cannot travel in the XML of most back-ends: refuse it here,
        # where the portal learns which field, rather than fail later inside a flow.
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and _CONTROL.search(text):
                raise ValueError("control characters are not allowed")
        return value


class BirthPlace(_Strict):
    """Where the person was born: the INSEE code, or for a birth abroad the country's name alone,
    which the hub turns into its INSEE code (``Espagne`` → 99134, :mod:`master_data.countries`)."""

    insee_code: str | None = Field(
        None,
        pattern=INSEE_CODE,
        description="INSEE code of the birth commune, or 99xxx (INSEE country code) for births abroad; "
        "may be left out for a birth abroad when `country` names the country",
        examples=["75056", "2A004", "99134"],
    )
    city: str | None = Field(None, max_length=100)
    country: str | None = Field(
        None, max_length=100, description='country of birth, by name ("Espagne"), for a birth abroad'
    )

    @model_validator(mode="after")
    def _code_from_country(self) -> BirthPlace:
        if self.insee_code is not None:
            if self.insee_code == FRANCE:
                raise ValueError(f"{FRANCE} is France: give the INSEE code of the birth commune")
            named = country_code(self.country) if self.country else None
            abroad = self.insee_code.startswith("99")
            if named is not None and named != FRANCE and named != self.insee_code:
                where = f"not {self.insee_code}" if abroad else f"but {self.insee_code} is a French commune"
                raise ValueError(
                    f"country {self.country!r} is INSEE code {named}, {where}: correct one of them"
                )
            return self
        if not self.country:
            raise ValueError("give insee_code (the birth commune, or 99xxx abroad) or, born abroad, country")
        code = country_code(self.country)
        if code is None:
            raise ValueError(
                f"unknown country {self.country!r}: give its INSEE code in insee_code (99xxx) "
                "or its French name (e.g. Espagne, Maroc, Royaume-Uni)"
            )
        if code == FRANCE:
            raise ValueError("born in France: give the INSEE code of the birth commune in insee_code")
        self.insee_code = code
        return self

    @property
    def abroad(self) -> bool:
        return (self.insee_code or "").startswith("99")


class Address(_Strict):
    line1: str = Field(min_length=1, max_length=100)
    line2: str | None = Field(None, max_length=100)
    postal_code: str = Field(pattern=r"^[0-9A-Z -]{2,10}$")
    city: str = Field(min_length=1, max_length=100)
    insee_code: str | None = Field(None, pattern=INSEE_CODE)
    country: str = Field("FR", min_length=2, max_length=2, description="ISO 3166-1 alpha-2")


class CitizenIdentity(_Strict):
    birth_name: str = Field(min_length=1, max_length=100, description="nom de naissance")
    used_name: str | None = Field(None, max_length=100, description="nom d'usage")
    given_names: list[str] = Field(min_length=1, max_length=6, description="prénoms, in civil order")
    birth_date: date
    sex: Literal["M", "F"]
    birth_place: BirthPlace
    # A pragmatic address check (one @, a dotted domain, no spaces): the portal has verified the
    # address with the citizen already; full RFC 5322 parsing cost more than the rest of the intake.
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(None, pattern=r"^\+?[0-9 .()-]{6,20}$")
    address: Address | None = None
    identifiers: dict[str, str] | None = Field(
        None,
        description="the citizen's identifiers in other systems, by system name (e.g. the école family "
        "id): {system: identifier}; each system must be one the hub knows",
        examples=[{"ecole": "FAM-77"}],
        max_length=20,
    )
    updated_at: datetime | None = Field(
        None, description="when the portal last changed this identity (ISO 8601); default: when sent"
    )

    @field_validator("identifiers")
    @classmethod
    def _identifiers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        checked = {}
        for system, local_id in value.items():
            if not _SYSTEM.match(system):
                raise ValueError(f"{system!r} is not a system name (lower case letters, digits, - and _)")
            local_id = local_id.strip()
            if not local_id or len(local_id) > 200 or _CONTROL.search(local_id):
                raise ValueError(
                    f"the identifier of {system} must be 1 to 200 characters, no control characters"
                )
            checked[system] = local_id
        return checked

    @model_serializer(mode="wrap")
    def _without_unstated(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when not given: a request stored (and its digest, which an Idempotency-Key
        # replay compares) reads as before these fields existed.
        data = handler(self)
        for name in ("identifiers", "updated_at"):
            if data.get(name) is None:
                data.pop(name, None)
        return data

    @field_validator("given_names")
    @classmethod
    def _given_names(cls, names: list[str]) -> list[str]:
        names = [name.strip() for name in names]
        if any(not name or len(name) > 60 for name in names):
            raise ValueError("each given name must be 1 to 60 characters")
        return names

    @field_validator("birth_date")
    @classmethod
    def _birth_date(cls, value: date) -> date:
        if value > date.today() or value.year < 1880:
            raise ValueError("birth date must be in the past and after 1880")
        return value
