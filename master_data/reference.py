"""Pseudonymous citizen references for the journal.

The journal must let an auditor follow one citizen's exchanges (RGPD art. 15) without holding the
citizen's identity. Until the golden record assigns golden ids, the reference is a keyed hash
(HMAC-SHA256) of the birth identity: stable across requests, meaningless without the key, and
never reversible from the journal alone.

The reference is also the portal's local id of the citizen in the golden record (one source record
per reference), so it must not name two people as one: the sex is part of it, since two namesakes
born the same day in the same place (a 01/01 placeholder date is common for births abroad) may
differ by sex alone. (Adding it changed every reference once: after that upgrade a returning
citizen's request is a new portal record, re-matched to their golden record by score.)
"""

from __future__ import annotations

import hashlib
import hmac

from master_data.identity import CitizenIdentity
from master_data.normalise import fold


def citizen_reference(identity: CitizenIdentity, key: bytes) -> str:
    basis = "|".join(
        (
            fold(identity.birth_name),
            fold(" ".join(identity.given_names)),
            identity.birth_date.isoformat(),
            identity.birth_place.insee_code,
            identity.sex,
        )
    )
    return "cit_" + hmac.new(key, basis.encode(), hashlib.sha256).hexdigest()[:24]
