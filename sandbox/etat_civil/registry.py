"""The back office of the simulated état civil: birth records, act-copy requests and their fate.

Pure Python, no protocol: ``service.py`` is the SOAP face of this state. Tests read this state to
prove how many back-end effects a scenario produced (``created_count``, ``act_requests()``), which
is what an idempotent consumer has to guarantee.

Matching rules (what a registry agent would accept):
- names compare case-, accent- and apostrophe-insensitively (``LEFEVRE`` finds ``Lefèvre``,
  ``n’diaye`` finds ``N'Diaye``), with runs of spaces collapsed;
- ``SearchBirthRecord`` needs birth name, birth date and given names, where the given names asked
  for must be the first given names of the record in order (``Élodie`` finds ``Élodie Marie``;
  a hyphenated name such as ``Jean-Baptiste`` is one given name); the birth place narrows it when
  given;
- ``RequestActCopy`` needs birth name, birth date and birth place, the three facts that locate an
  act in the registers.

A request turns ISSUED ``issue_delay_s`` after it was made, or REJECTED with a reason when the act
is listed in :data:`REJECTED_ACTS` (an act under judicial rectification cannot be delivered).
"""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from sandbox.knobs import Knobs

CopyType = Literal["COPIE_INTEGRALE", "EXTRAIT_AVEC_FILIATION", "EXTRAIT_SANS_FILIATION"]
RequestStatus = Literal["PENDING", "ISSUED", "REJECTED"]

# Keys: birth_name, given_names, birth_date (ISO), birth_place_insee, sex, act_number.
# Births abroad use the INSEE convention "99" + country code (99134: Spain).
SEED_BIRTH_RECORDS: list[dict[str, str]] = [
    {
        "birth_name": "Lefèvre",
        "given_names": "Élodie Marie",
        "birth_date": "1985-03-14",
        "birth_place_insee": "75056",
        "sex": "F",
        "act_number": "N-75056-1985-0412",
    },
    {
        "birth_name": "de La Fontaine",
        "given_names": "Jean-Baptiste Louis",
        "birth_date": "1979-07-08",
        "birth_place_insee": "02168",
        "sex": "M",
        "act_number": "N-02168-1979-0087",
    },
    {
        "birth_name": "N'Diaye",
        "given_names": "Aïssatou",
        "birth_date": "1992-11-30",
        "birth_place_insee": "69123",
        "sex": "F",
        "act_number": "N-69123-1992-2231",
    },
    {
        "birth_name": "Santoni",
        "given_names": "Pierre-Paul Ange",
        "birth_date": "1968-02-29",
        "birth_place_insee": "2A004",
        "sex": "M",
        "act_number": "N-2A004-1968-0154",
    },
    {
        "birth_name": "García López",
        "given_names": "María José",
        "birth_date": "1990-05-21",
        "birth_place_insee": "99134",
        "sex": "F",
        "act_number": "N-99134-1990-0032",
    },
    {
        "birth_name": "Le Goff",
        "given_names": "Yann-Éric Gwenaël",
        "birth_date": "2001-09-11",
        "birth_place_insee": "29019",
        "sex": "M",
        "act_number": "N-29019-2001-1290",
    },
    {
        "birth_name": "Dubois",
        "given_names": "Chloé",
        "birth_date": "2015-01-02",
        "birth_place_insee": "33063",
        "sex": "F",
        "act_number": "N-33063-2015-0003",
    },
    {
        "birth_name": "Martin",
        "given_names": "Lucas Noé",
        "birth_date": "2016-06-15",
        "birth_place_insee": "33063",
        "sex": "M",
        "act_number": "N-33063-2016-1877",
    },
    {
        "birth_name": "Moreau",
        "given_names": "Hélène Françoise",
        "birth_date": "1955-12-25",
        "birth_place_insee": "13055",
        "sex": "F",
        "act_number": "N-13055-1955-3016",
    },
]

# Acts whose copies the registry refuses, with the reason it answers in GetActRequestStatus.
REJECTED_ACTS: dict[str, str] = {
    "N-13055-1955-3016": "ACTE_EN_RECTIFICATION: acte en cours de rectification judiciaire",
}


class RegistryError(Exception):
    """A request the registry refuses for a reason of the caller's making (a SOAP Client fault)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class BirthRecord:
    birth_name: str
    given_names: str
    birth_date: date
    birth_place_insee: str
    sex: str
    act_number: str

    @classmethod
    def from_seed(cls, seed: dict[str, str]) -> BirthRecord:
        return cls(
            birth_name=seed["birth_name"],
            given_names=seed["given_names"],
            birth_date=date.fromisoformat(seed["birth_date"]),
            birth_place_insee=seed["birth_place_insee"],
            sex=seed["sex"],
            act_number=seed["act_number"],
        )


@dataclass(frozen=True, slots=True)
class ActRequest:
    """One request for a copy of an act: the back-end effect a caller must produce exactly once."""

    request_number: str
    act_number: str
    copy_type: str
    reference: str | None
    idempotency_key: str | None
    fingerprint: str
    created_at: float
    copies: int = 1  # how many copies the registry sends
    reason: str | None = None  # why the citizen asks (motif), as written


@dataclass(frozen=True, slots=True)
class RequestState:
    request_number: str
    status: RequestStatus
    issued_at: datetime | None = None
    rejection_reason: str | None = None
    copies: int = 1


def normalise_name(value: str) -> str:
    """Fold a name for comparison: no case, no accents, one kind of apostrophe, single spaces."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    stripped = stripped.replace("’", "'").replace("‘", "'").replace("ʼ", "'")
    return " ".join(stripped.casefold().split())


def _given_name_tokens(value: str) -> list[str]:
    return normalise_name(value.replace(",", " ")).split()


class EtatCivilState:
    """In-memory registry and act-request book; safe to read from another thread than the app's."""

    def __init__(
        self,
        records: list[dict[str, str]] | None = None,
        *,
        issue_delay_s: float = 0.5,
        clock: Callable[[], float] | None = None,
        knobs: Knobs | None = None,
    ) -> None:
        if issue_delay_s < 0:
            raise ValueError(f"issue_delay_s must be >= 0, got {issue_delay_s}")
        seeds = SEED_BIRTH_RECORDS if records is None else records
        self.records = [BirthRecord.from_seed(seed) for seed in seeds]
        self.issue_delay_s = issue_delay_s
        self._clock = clock or time.time
        self.knobs = knobs
        self._lock = threading.Lock()
        self._requests: dict[str, ActRequest] = {}
        self._by_key: dict[str, str] = {}
        self._sequence = 0

    @property
    def created_count(self) -> int:
        """How many act requests were created: the number of real back-end effects."""
        with self._lock:
            return len(self._requests)

    def act_requests(self) -> list[ActRequest]:
        with self._lock:
            return list(self._requests.values())

    def search(
        self,
        birth_name: str,
        given_names: str,
        birth_date: date,
        birth_place_insee: str | None = None,
    ) -> BirthRecord | None:
        wanted_name = normalise_name(birth_name)
        wanted_given = _given_name_tokens(given_names)
        for record in self.records:
            if record.birth_date != birth_date or normalise_name(record.birth_name) != wanted_name:
                continue
            if birth_place_insee and record.birth_place_insee != birth_place_insee.upper():
                continue
            record_given = _given_name_tokens(record.given_names)
            if wanted_given and record_given[: len(wanted_given)] == wanted_given:
                return record
        return None

    def find_act(self, birth_name: str, birth_date: date, birth_place_insee: str) -> BirthRecord:
        wanted_name = normalise_name(birth_name)
        for record in self.records:
            if (
                record.birth_date == birth_date
                and record.birth_place_insee == birth_place_insee.upper()
                and normalise_name(record.birth_name) == wanted_name
            ):
                return record
        raise RegistryError("RECORD_NOT_FOUND", "no birth act matches the name, date and place")

    def request_copy(
        self,
        record: BirthRecord,
        copy_type: str,
        *,
        reference: str | None,
        idempotency_key: str | None,
        fingerprint: str,
        copies: int = 1,
        reason: str | None = None,
    ) -> ActRequest:
        """Create an act request, or return the one already made under the same idempotency key.

        Reusing a key for a different request is refused, as payment APIs do: silently returning
        the first answer would hide a caller's bug.
        """
        with self._lock:
            if idempotency_key is not None and idempotency_key in self._by_key:
                existing = self._requests[self._by_key[idempotency_key]]
                if existing.fingerprint != fingerprint:
                    raise RegistryError(
                        "IDEMPOTENCY_KEY_REUSED",
                        "this Idempotency-Key was already used for a different request",
                    )
                return existing
            self._sequence += 1
            now = self._clock()
            year = datetime.fromtimestamp(now, UTC).year
            request = ActRequest(
                request_number=f"EC-{year}-{self._sequence:06d}",
                act_number=record.act_number,
                copy_type=copy_type,
                reference=reference,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                created_at=now,
                copies=copies,
                reason=reason,
            )
            self._requests[request.request_number] = request
            if idempotency_key is not None:
                self._by_key[idempotency_key] = request.request_number
            return request

    def status(self, request_number: str) -> RequestState:
        with self._lock:
            request = self._requests.get(request_number)
        if request is None:
            raise RegistryError("REQUEST_NOT_FOUND", "no act request has this number")
        decided_at = request.created_at + self.issue_delay_s
        if self._clock() < decided_at:
            return RequestState(request_number, "PENDING", copies=request.copies)
        reason = REJECTED_ACTS.get(request.act_number)
        if reason is not None:
            return RequestState(request_number, "REJECTED", rejection_reason=reason, copies=request.copies)
        issued_at = datetime.fromtimestamp(decided_at, UTC).replace(microsecond=0)
        return RequestState(request_number, "ISSUED", issued_at=issued_at, copies=request.copies)
