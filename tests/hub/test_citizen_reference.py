"""The portal's pseudonymous local id of a citizen must not make two people one (sex included)."""

from __future__ import annotations

import copy
import uuid

from sqlalchemy import select

from hub.citizens import Citizens
from hub.db.models import REQUESTS
from master_data.identity import CitizenIdentity
from master_data.reference import citizen_reference
from tests.conftest import sample

KEY = b"\x00" * 32


def namesake(sex: str) -> dict:
    """A birth abroad with a 01/01 placeholder date: namesakes share everything but their sex."""
    body = copy.deepcopy(sample("01-lefevre-copie-integrale"))
    citizen = body["citizen"]
    citizen.update(given_names=["Camille"], birth_date="1990-01-01", sex=sex, used_name=None)
    citizen["birth_place"] = {"insee_code": "99350"}
    for name in ("email", "phone", "address"):
        citizen.pop(name)
    return body


def test_the_reference_differs_by_sex_alone():
    woman = CitizenIdentity.model_validate(namesake("F")["citizen"])
    man = CitizenIdentity.model_validate(namesake("M")["citizen"])
    assert citizen_reference(woman, KEY) != citizen_reference(man, KEY)
    assert citizen_reference(woman, KEY) == citizen_reference(woman.model_copy(), KEY)


def test_two_namesakes_of_different_sexes_end_under_two_golden_records(live_api):
    """The second person's request must not update the first person's golden record."""
    with live_api.client() as portal:
        filed = [
            portal.post("/v1/requests", json=namesake(sex), headers={"Idempotency-Key": uuid.uuid4().hex})
            for sex in ("F", "M")
        ]
    assert [answer.status_code for answer in filed] == [202, 202], [a.text for a in filed]
    ids = [answer.json()["id"] for answer in filed]
    with live_api.hub.db.reading() as connection:
        rows = {
            row.id: row
            for row in connection.execute(
                select(REQUESTS.c.id, REQUESTS.c.body, REQUESTS.c.citizen_ref).where(REQUESTS.c.id.in_(ids))
            )
        }
    citizens = Citizens(live_api.hub)
    # What the worker does before a request's first call.
    golden = [citizens.resolve_request(i, rows[i].body["citizen"], rows[i].citizen_ref) for i in ids]
    assert rows[ids[0]].citizen_ref != rows[ids[1]].citizen_ref
    assert golden[0] != golden[1]
    assert citizens.view(golden[0])["values"]["sex"]["value"] == "F"
    assert citizens.view(golden[1])["values"]["sex"]["value"] == "M"
