"""Cross-system identifiers, the source's own modification time and unmerges, as users meet them:
an export's ``id_<system>`` columns, a portal request's ``citizen.identifiers``, the 360° view's
lineage of what was stated, and the requests of a person split back out of a merge."""

from __future__ import annotations

import json

from sqlalchemy import select

from hub.db.master_models import XREFS
from tests.conftest import sample
from tests.hub import test_citizens_api as citizens_api
from tests.hub.test_citizens_api import ECOLE_JSON, invoke, key_with, wait_for

# The initial load of test_citizens_api: état civil and école exports, Élodie Lefèvre's golden id.
exports = citizens_api.exports
loaded = citizens_api.loaded

PAYER_CSV = "local_id,birth_name,given_names,birth_date,id_ecole\nT-3,Martin,Elodi,1985-03-14,FAM-77\n"


def golden_of(hub, system: str, local_id: str) -> str:
    with hub.db.sessions() as session:
        return session.scalar(
            select(XREFS.c.golden_id).where(XREFS.c.system == system, XREFS.c.local_id == local_id)
        )


def test_an_export_stating_another_systems_id_links_by_it_and_explain_says_so(live_api, loaded, exports):
    """The finance system's payer record holds the school's family id: too thin to be linked by
    its score (another surname, a mistyped first name), it joins the family's golden record."""
    bad = exports / "bad.csv"
    bad.write_text(PAYER_CSV.replace("id_ecole", "id_impots"), encoding="utf-8")
    refused = invoke("import", "--system", "finances", str(bad))
    assert refused.exit_code == 1
    assert f"{bad}:1: column id_impots: unknown system 'impots'; valid: ecole, etat_civil" in refused.output
    assert golden_of(live_api.hub, "finances", "T-3") is None  # nothing imported

    path = exports / "finances.csv"
    path.write_text(PAYER_CSV, encoding="utf-8")
    result = invoke("import", "--system", "finances", str(path))
    assert result.exit_code == 0, result.output
    assert golden_of(live_api.hub, "finances", "T-3") == loaded
    steward = key_with(live_api, "stewardship:read", "citizens:read")
    with live_api.client(steward) as client:
        explained = client.get(
            "/v1/stewardship/explain", params={"a": "finances:T-3", "b": "ecole:FAM-77"}
        ).json()
        unstated = client.get(
            "/v1/stewardship/explain", params={"a": "finances:T-3", "b": "etat_civil:N-75056-1985-0412"}
        ).json()
        view = client.get(f"/v1/citizens/{loaded}").json()
    assert explained["rule"] == "same_identifier" and explained["outcome"] == "link"
    assert unstated["rule"] != "same_identifier"
    [xref] = [x for x in view["cross_references"] if x["system"] == "finances"]
    assert xref["link"] == "rule:same_identifier"
    [stated] = view["stated_identifiers"]
    assert (stated["system"], stated["local_id"], stated["held_by"]) == ("ecole", "FAM-77", loaded)
    assert (stated["stated_by"]["system"], stated["stated_by"]["local_id"]) == ("finances", "T-3")
    assert stated["stated_by"]["exchange_id"] is not None  # the import's journal row


def test_a_portal_request_carries_identifiers_and_an_old_export_does_not_override_it(
    live_hub, loaded, exports
):
    body = sample("01-lefevre-copie-integrale")
    body["citizen"]["address"] = {"line1": "5 cours Victor Hugo", "postal_code": "33000", "city": "Bordeaux"}
    unknown = json.loads(json.dumps(body))
    unknown["citizen"]["identifiers"] = {"impots": "X-1", "ecole": "FAM-77"}
    body["citizen"]["identifiers"] = {"ecole": "FAM-77"}
    with live_hub.client() as client:
        refused = client.post("/v1/requests", json=unknown)
        request_id = client.post("/v1/requests", json=body).json()["id"]
        wait_for(client, request_id)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"] == [
        {
            "field": "citizen.identifiers.impots",
            "message": "unknown system 'impots'; valid: ecole, etat_civil, finances, ged",
        }
    ]
    assert golden_of(live_hub.hub, "portal", _portal_ref(live_hub, request_id)) == loaded

    # The school's export is loaded after the request, but the school last changed it in 2019.
    base = 2850375056123  # a NIR only the school gives: its value's lineage shows the school's time
    nir = f"{base}{97 - base % 97:02d}"
    old = [{**ECOLE_JSON[0], "address": "3 place Pey-Berland", "nir": nir, "updated_at": "2019-06-30"}]
    path = exports / "ecole-2019.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    result = invoke("import", "--system", "ecole", str(path))
    assert result.exit_code == 0 and "known record, changed" in result.output
    agent = key_with(live_hub, "citizens:read")
    with live_hub.client(agent) as client:
        view = client.get(f"/v1/citizens/{loaded}").json()
    address = view["values"]["address"]
    assert address["value"]["line"] == "5 cours Victor Hugo"
    assert (address["lineage"]["system"], address["lineage"]["rule"]) == ("portal", "most_recent")
    [stated] = view["stated_identifiers"]
    assert (stated["system"], stated["local_id"], stated["held_by"]) == ("ecole", "FAM-77", loaded)
    assert stated["stated_by"]["system"] == "portal"
    # What only the school gives still comes from it, and its lineage says when the school changed it.
    lineage = view["values"]["nir"]["lineage"]
    assert (view["values"]["nir"]["value"], lineage["system"]) == (nir, "ecole")
    assert lineage["updated_at"] == "2019-06-30T00:00:00+00:00" and lineage["observed_at"] > "2020"


def _portal_ref(live, request_id: str) -> str:
    from hub.db.models import Request

    with live.hub.db.sessions() as session:
        return session.get(Request, request_id).citizen_ref


def test_unmerge_gives_back_the_requests_filed_while_merged(live_hub, loaded):
    """Santoni filed a request (a golden record of his own), was wrongly merged into Élodie
    Lefèvre, filed again while merged, and was split back: each request is under its person."""
    steward = key_with(live_hub, "stewardship:write", "citizens:read")
    with live_hub.client() as client:
        before = client.post("/v1/requests", json=sample("04-santoni-corse")).json()["id"]
        wait_for(client, before)
    santoni = golden_of(live_hub.hub, "portal", _portal_ref(live_hub, before))
    assert santoni not in (None, loaded)
    with live_hub.client(steward) as client:
        assert client.post(f"/v1/citizens/{loaded}/merge", json={"other": santoni}).status_code == 200
    with live_hub.client() as client:
        during = client.post("/v1/requests", json=sample("04-santoni-corse")).json()["id"]
        hers = client.post("/v1/requests", json=sample("01-lefevre-copie-integrale")).json()["id"]
        wait_for(client, during)
        wait_for(client, hers)
    with live_hub.client(steward) as client:
        merged = demarches(client.get(f"/v1/citizens/{loaded}/requests").json()["requests"])
        assert {r["id"]: r["golden_id"] for r in merged} == {before: santoni, during: loaded, hers: loaded}
        assert client.post(f"/v1/citizens/{loaded}/unmerge", json={"restore": santoni}).status_code == 200
        his_requests = client.get(f"/v1/citizens/{santoni}/requests").json()["requests"]
        her_requests = client.get(f"/v1/citizens/{loaded}/requests").json()["requests"]
    assert [(r["id"], r["golden_id"]) for r in demarches(his_requests)] == [
        (before, santoni),
        (during, santoni),
    ]
    assert [(r["id"], r["golden_id"]) for r in demarches(her_requests)] == [(hers, loaded)]
    # the hub's own merge and unmerge notices (the shipped event flow) stay with the survivor
    notices = [r for r in her_requests if r["flow"] == "citizen-merge-event"]
    assert len(notices) == 2 and all(r["golden_id"] == loaded for r in notices)


def demarches(requests: list[dict]) -> list[dict]:
    """The citizen's own requests, without the hub's merge notices."""
    return [r for r in requests if r["flow"] != "citizen-merge-event"]
