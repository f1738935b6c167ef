"""A message that fails its mapping fails the request with a permanent error code, not a crash."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub.config import load_config
from hub.db.models import OutboxMessage
from hub.flows import load_flow
from hub.mapping import load_mapping, load_mappings
from hub.mapping.tables import load_tables
from hub.yamlfile import ConfigError, ConfigIssue
from tests.conftest import CONFIG, ROOT, sample
from tests.hub.test_birth_certificate_flow import acts_for, wait_for

ANSWER = "etat-civil/act-request-created"


def test_an_answer_the_mapping_cannot_read_fails_the_request_with_mapping_failed(live_hub, sandbox, tmp_path):
    # The engineer's answer mapping does not know the registry's PENDING status (its table stops
    # at ISSUED/REJECTED): the registry took the request, but the hub cannot say where it stands.
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "act-request-statuses.yaml").write_text(
        "table: act-request-statuses\nvalues: {ISSUED: completed, REJECTED: rejected}\n", encoding="utf-8"
    )
    flow = live_hub.hub.flows["birth-certificate"]
    shipped = ROOT / "mappings" / "etat-civil" / "act-request-created.yaml"
    flow.mappings[ANSWER] = load_mapping(shipped, tables=load_tables(tmp_path / "tables"), fragments={})
    with live_hub.client() as client:
        request_id = client.post("/v1/requests", json=sample("02-de-la-fontaine-extrait-filiation")).json()[
            "id"
        ]
        state = wait_for(client, request_id)
    assert state["status"] == "failed"
    [failure] = [event for event in state["timeline"] if event["outcome"] == "failed"]
    assert failure["step"] == "request-copy"
    assert failure["detail"] == (
        f"mapping {ANSWER}: field status from $.response.status: code not in table act-request-statuses "
        "(value 'P…' (7 chars))"
    )
    assert len(acts_for(sandbox, request_id)) == 1  # the call was made once, not retried
    with live_hub.hub.db.sessions() as session:
        message = session.scalars(select(OutboxMessage).where(OutboxMessage.request_id == request_id)).one()
    assert message.state == "dead" and message.last_error.startswith("mapping_failed")


def test_a_status_read_from_the_answer_must_be_a_hub_status(live_hub, tmp_path):
    # The answer mapping's table sends ISSUED to a word the hub does not have: the last step's
    # set_status {from: ...} refuses it rather than showing the portal an unknown status.
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "act-request-statuses.yaml").write_text(
        "table: act-request-statuses\nvalues: {PENDING: submitted, ISSUED: delivered, REJECTED: rejected}\n",
        encoding="utf-8",
    )
    flow = live_hub.hub.flows["birth-certificate"]
    shipped = ROOT / "mappings" / "etat-civil" / "act-status-answer.yaml"
    flow.mappings["etat-civil/act-status-answer"] = load_mapping(
        shipped, tables=load_tables(tmp_path / "tables"), fragments={}
    )
    with live_hub.client() as client:
        request_id = client.post("/v1/requests", json=sample("01-lefevre-copie-integrale")).json()["id"]
        state = wait_for(client, request_id)
    assert state["status"] == "failed"
    assert state["timeline"][-1]["step"] == "completed"
    assert state["timeline"][-1]["detail"] == (
        "flow birth-certificate: step completed: $.steps.act_status.status gave 'd…' (9 chars), "
        "not one of processing, submitted, completed, rejected"
    )
    with live_hub.hub.db.sessions() as session:
        message = session.scalars(select(OutboxMessage).where(OutboxMessage.request_id == request_id)).one()
    assert message.state == "dead" and message.last_error.startswith("invalid_status")


def flow_issue(tmp_path, old: str, new: str) -> tuple[ConfigIssue, list[str]]:
    """The one load error of the shipped birth-certificate flow with ``old`` replaced by ``new``."""
    shipped = (ROOT / "flows" / "birth-certificate.yaml").read_text(encoding="utf-8")
    assert old in shipped
    broken = shipped.replace(old, new)
    path = tmp_path / "flow.yaml"
    path.write_text(broken, encoding="utf-8")
    config, _ = load_config(CONFIG)
    with pytest.raises(ConfigError) as caught:
        load_flow(path, config, load_mappings(ROOT / "mappings"))
    [issue] = caught.value.issues
    return issue, broken.splitlines()


def test_set_status_from_an_invalid_path_is_a_load_error(tmp_path):
    issue, lines = flow_issue(tmp_path, "{from: $.steps.act_status.status}", "{from: 'steps.act_status'}")
    assert "steps.act_status'" in lines[issue.line - 1] and "starts with $" in issue.message


def test_a_mapping_built_for_another_soap_operation_is_a_load_error(tmp_path):
    issue, lines = flow_issue(
        tmp_path, "mapping: etat-civil/act-request-status", "mapping: etat-civil/request-act-copy"
    )
    assert "etat-civil/request-act-copy" in lines[issue.line - 1]
    assert issue.message == (
        "mapping etat-civil/request-act-copy is for RequestActCopy (input) "
        "but this step calls GetActRequestStatus"
    )


def test_a_longest_poll_interval_shorter_than_the_first_is_a_load_error(tmp_path):
    issue, lines = flow_issue(tmp_path, "max_every_s: 900", "max_every_s: 0.1")
    assert "max_every_s" in lines[issue.line - 1] or "wait_until" in lines[issue.line - 1]
    assert "max_every_s (0.1) must be at least every_s (0.5)" in issue.message


def test_a_back_end_answering_in_days_is_polled_less_and_less_often():
    """The shipped birth certificate: every 0.5 s at first, then half the time waited so far, at
    most every 15 minutes: about 2,900 calls over its 30 days, not 5 million."""
    config, _ = load_config(CONFIG)
    flow = load_flow(ROOT / "flows" / "birth-certificate.yaml", config, load_mappings(ROOT / "mappings"))
    [wait] = [step.wait_until for step in flow.steps if step.wait_until is not None]
    assert wait.next_interval_s(0.2) == 0.5
    assert wait.next_interval_s(60) == 30
    assert wait.next_interval_s(86400) == 900
    calls, waited = 0, 0.0
    while waited < wait.timeout_s:
        waited += wait.next_interval_s(waited)
        calls += 1
    assert 2_800 < calls < 3_000


DELIVERY_WHEN = "when: {path: $.data.delivery, equals: espace_citoyen}"


def test_a_bad_path_deep_in_a_step_condition_is_named_at_its_own_line(tmp_path):
    issue, lines = flow_issue(
        tmp_path,
        DELIVERY_WHEN,
        "when:\n      any:\n        - {path: $.data.delivery, equals: espace_citoyen}\n"
        "        - {not: {path: '$.data[?(@.copies >', exists: true}}",
    )
    assert "$.data[?(@.copies" in lines[issue.line - 1] and "invalid JSONPath" in issue.message


def test_a_step_condition_reads_the_flow_document_not_a_current_item(tmp_path):
    issue, lines = flow_issue(
        tmp_path,
        DELIVERY_WHEN,
        "when: {all: [{path: $.data.delivery, exists: true}, {path: '@.copies', gt: 1}]}",
    )
    assert "@.copies" in lines[issue.line - 1]
    assert "reads the flow document from $" in issue.message


def test_an_unknown_test_in_a_step_condition_lists_the_valid_ones(tmp_path):
    issue, lines = flow_issue(
        tmp_path, DELIVERY_WHEN, "when: {path: $.data.delivery, includes: espace_citoyen}"
    )
    assert "includes" in lines[issue.line - 1]
    assert issue.message.startswith("unknown key 'includes'; valid keys here: all, any, contains, equals")


def test_a_step_condition_may_be_any_condition_of_the_mapping_language(tmp_path):
    """The shipped event flow's own conditions: all of an equality and two list memberships."""
    config, _ = load_config(CONFIG)
    flow = load_flow(ROOT / "flows" / "citizen-merge-event.yaml", config, load_mappings(ROOT / "mappings"))
    merged = flow.guards["tell-ecole-merged"]
    event = {
        "event": "citizen.merged",
        "systems": ["ecole", "etat_civil"],
        "moved": [],
        "cross_references": [
            {"system": "etat_civil", "local_id": "N-1"},
            {"system": "ecole", "local_id": "F-1"},
        ],
    }
    assert merged({"data": event}, None)
    assert not merged({"data": {**event, "systems": ["etat_civil"]}}, None)
    assert not merged({"data": {**event, "cross_references": event["cross_references"][:1]}}, None)
    assert not merged({"data": {**event, "event": "citizen.unmerged"}}, None)
    unmerged = flow.guards["tell-ecole-unmerged"]
    split = {**event, "event": "citizen.unmerged"}
    assert not unmerged({"data": split}, None)  # none of the école's records moved back
    assert unmerged({"data": {**split, "moved": [{"system": "ecole", "local_id": "F-1"}]}}, None)
