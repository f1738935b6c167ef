"""Every path a flow and its mappings read is checked at load against the flow document's shape:
a typo is an error at its file:line naming what would be valid, not a step skipped for ever, a
request failed after its effect, or a wait of 30 days."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.runtime import load_definitions
from tests.conftest import ROOT
from tests.hub.test_config import edit, errors_of, line_of

BIRTH_INPUT = "copies, copy_type, delivery, reason"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the shipped config, flows and mappings to break."""
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def flow_file(project: Path, name: str = "birth-certificate") -> Path:
    return project / "flows" / f"{name}.yaml"


def only_error(project: Path) -> str:
    [error] = errors_of(project)
    return error


# ---------------------------------------------------------------------------- the auditor's cases


def test_a_when_on_a_misspelt_input_field_is_an_error_not_a_step_skipped_for_ever(project):
    """`hub demo --once` succeeded with the GED filing never done."""
    flow = flow_file(project)
    edit(flow, "when: {path: $.data.delivery,", "when: {path: $.data.delivry,")
    error = only_error(project)
    assert error.startswith(f"{flow}:{line_of(flow, '$.data.delivry')}:12: $.data.delivry can never match: ")
    assert error.endswith(
        f"the input schema of flow birth-certificate has no $.data.delivry; valid here: {BIRTH_INPUT}"
    )


def test_config_check_exits_1_on_it(project):
    edit(flow_file(project), "when: {path: $.data.delivery,", "when: {path: $.data.delivry,")
    result = CliRunner().invoke(app, ["config", "check", "--config", str(project / "config" / "hub.yaml")])
    assert result.exit_code == 1
    assert "$.data.delivry can never match" in result.output and "1 configuration error(s)" in result.output


def test_set_status_from_a_name_no_step_saves_is_an_error(project):
    """Every request failed invalid_status after the act had been requested."""
    flow = flow_file(project)
    edit(
        flow, "set_status: {from: $.steps.act_status.status}", "set_status: {from: $.steps.act_statut.status}"
    )
    error = only_error(project)
    assert error.startswith(f"{flow}:{line_of(flow, 'act_statut')}:")
    saved = "act_request, act_status, issued_act"
    assert error.endswith(f"before 'completed' saves 'act_statut' (save_as); saved before it: {saved}")


def test_waiting_for_a_status_the_registry_never_answers_is_an_error(project):
    """`until equals: ISSUE` waited for the 30-day timeout; the WSDL lists the statuses."""
    flow = flow_file(project)
    edit(
        flow,
        "until: {path: $.response.status, equals: ISSUED}",
        "until: {path: $.response.status, equals: ISSUE}",
    )
    error = only_error(project)
    line = line_of(flow, "equals: ISSUE}")
    assert error.startswith(f"{flow}:{line}:40: $.response.status never holds 'ISSUE'"), error
    assert error.endswith("(the answer of etat_civil.GetActRequestStatus); valid: PENDING, ISSUED, REJECTED")


def test_a_mapping_reading_an_input_field_the_flow_does_not_have_is_an_error_at_the_mapping(project):
    mapping = project / "mappings" / "etat-civil" / "request-act-copy.yaml"
    edit(mapping, "copyType: {path: $.data.copy_type,", "copyType: {path: $.data.copytype,")
    error = only_error(project)
    assert error.startswith(f"{mapping}:{line_of(mapping, '$.data.copytype')}:")
    assert "$.data.copytype can never match in flow birth-certificate, step 'request-copy'" in error
    assert error.endswith(f"has no $.data.copytype; valid here: {BIRTH_INPUT}")


# ---------------------------------------------------------------------------- more of the same


@pytest.mark.parametrize(
    ("old", "new", "needle", "expected"),
    [
        (
            "set_status: {from: $.steps.act_status.status}",
            "set_status: {from: $.steps.act_status.statut}",
            "statut",
            "what step 'wait-issued' saves (the record of mapping etat-civil/act-status-answer) has no "
            "$.steps.act_status.statut; valid here: issued_at, registry_status, rejection_reason, status",
        ),
        (
            "set_status: {from: $.steps.act_status.status}",
            "set_status: {from: $.steps.act_status.registry_status}",
            "registry_status",
            "$.steps.act_status.registry_status can be 'PENDING', 'ISSUED', 'REJECTED' (what step "
            "'wait-issued' saves (the record of mapping etat-civil/act-status-answer)), not a status "
            "set_status sets (every such request would fail invalid_status); valid: processing, "
            "submitted, completed, rejected",
        ),
        (
            "when: {path: $.data.delivery, equals: espace_citoyen}",
            "when: {path: $.data.delivery, equals: espace_citoyn}",
            "espace_citoyn",
            "$.data.delivery never holds 'espace_citoyn' (the input schema of flow birth-certificate); "
            "valid: courrier, espace_citoyen",
        ),
        (
            "when: {path: $.data.delivery, equals: espace_citoyen}",
            "when: {all: [{path: $.citizen.sex, in: [M, H]}]}",
            "in: [M, H]",
            "$.citizen.sex never holds 'H' (the citizen schema); valid: M, F",
        ),
        (
            "when: {path: $.data.delivery, equals: espace_citoyen}",
            "when: {not: {path: $.citizen.birth_place.insee, exists: true}}",
            "birth_place.insee",
            "the citizen schema has no $.citizen.birth_place.insee; valid here: city, country, insee_code",
        ),
        (
            "when: {path: $.data.delivery, equals: espace_citoyen}",
            "when: {path: $.dta.delivery, exists: true}",
            "$.dta",
            "the flow document has no $.dta; valid: citizen, data, golden, request, steps",
        ),
        (
            "when: {path: $.data.delivery, equals: espace_citoyen}",
            "when: {path: $.response.status, equals: ISSUED}",
            "when: {path: $.response.status, equals: ISSUED}",
            "$.response is the answer of a call: only a step's response_mapping and a wait_until's "
            "until/fail_when read it",
        ),
        (
            "when: {path: $.data.delivery, equals: espace_citoyen}",
            "when: {path: $.steps.issued_act.document_id, exists: true}",
            "issued_act.document_id",
            "no step before 'file-issued-act' saves 'issued_act' (save_as); saved before it: act_request, "
            "act_status",
        ),
        (
            "fail_when: {path: $.response.status, equals: REJECTED}",
            "fail_when: {path: $.response.state, equals: REJECTED}",
            "$.response.state",
            "the answer of etat_civil.GetActRequestStatus has no $.response.state; valid here: copies, "
            "issuedAt, rejectionReason, requestNumber, status",
        ),
    ],
    ids=[
        "status-field-misspelt",
        "status-from-registry-words",
        "when-value-not-in-input-enum",
        "in-value-not-in-citizen-enum",
        "citizen-field-misspelt",
        "unknown-top-level",
        "response-outside-a-call",
        "reads-its-own-save",
        "fail-when-field-misspelt",
    ],
)
def test_flow_path_errors_name_file_line_and_what_is_valid(project, old, new, needle, expected):
    flow = flow_file(project)
    edit(flow, old, new)
    error = only_error(project)
    assert error.startswith(f"{flow}:{line_of(flow, needle)}:"), error
    assert error.endswith(expected), error


def test_a_wait_for_a_finances_status_its_connector_never_answers_is_an_error(project):
    flow = flow_file(project, "aid-payment")
    edit(
        flow,
        "fail_when: {path: $.response.status, equals: REJECTED}",
        "fail_when: {path: $.response.status, equals: REFUSED}",
    )
    error = only_error(project)
    assert error.startswith(f"{flow}:{line_of(flow, 'REFUSED')}:")
    assert error.endswith(
        "(the answer of finances.GetFileStatus); valid: PENDING, ACCEPTED, REJECTED, PARTIAL"
    )


def test_a_golden_identifier_of_a_system_the_hub_does_not_have_is_an_error(project):
    mapping = project / "mappings" / "finances" / "aid-payment-line.yaml"
    edit(
        mapping, "tiers: {path: $.golden.identifiers.finances}", "tiers: {path: $.golden.identifiers.finance}"
    )
    error = only_error(project)
    assert error.startswith(f"{mapping}:{line_of(mapping, 'identifiers.finance}')}:")
    assert error.endswith(
        "has no $.golden.identifiers.finance; valid here: ecole, etat_civil, finances, ged, portal"
    )


def test_a_filter_path_is_checked_up_to_its_filter_and_after(project):
    """`$.data.cross_references[?(...)].local_id` is checked as `$.data.cross_references[*].local_id`."""
    mapping = project / "mappings" / "ecole" / "citizen-merged.yaml"
    edit(mapping, "[?(@.system == 'ecole')].local_id", "[?(@.system == 'ecole')].localid")
    error = only_error(project)
    assert error.startswith(f"{mapping}:{line_of(mapping, 'localid')}:")
    assert "in flow citizen-merge-event, step 'tell-ecole-merged'" in error
    assert error.endswith("has no $.data.cross_references[].localid; valid here: local_id, system")


def test_a_request_mapping_reading_the_response_is_an_error(project):
    mapping = project / "mappings" / "etat-civil" / "act-request-status.yaml"
    edit(
        mapping,
        "requestNumber: {path: $.steps.act_request.request_number,",
        "requestNumber: {path: $.response.requestNumber,",
    )
    error = only_error(project)
    assert error.startswith(f"{mapping}:{line_of(mapping, '$.response.requestNumber')}:")
    assert "step 'wait-issued'" in error and "$.response is the answer of a call" in error


def test_a_mapping_condition_testing_a_value_the_input_never_holds_is_an_error(project):
    mapping = project / "mappings" / "etat-civil" / "issued-act-record.yaml"
    edit(
        mapping,
        "  exemplaires: {path: $.data.copies, transforms: [integer], default: 1}",
        "  exemplaires:\n    path: $.data.copies\n    when: {path: $.data.delivery, equals: courier}",
    )
    error = only_error(project)
    assert error.startswith(f"{mapping}:{line_of(mapping, 'equals: courier')}:")
    assert error.endswith(
        "$.data.delivery never holds 'courier' (the input schema of flow birth-certificate); valid: "
        "courrier, espace_citoyen in flow birth-certificate, step 'file-issued-act'"
    )


def test_a_fragment_path_is_reported_in_the_fragment(project):
    mapping = project / "mappings" / "etat-civil" / "issued-act-record.yaml"
    edit(mapping, "  delivreLe:", "  demandeur: {fragment: probe}\n  delivreLe:")
    (project / "mappings" / "fragments" / "probe.yaml").write_text(
        "fragment: probe\nfields:\n  nom: {path: $.citizen.birthname}\n", encoding="utf-8"
    )
    error = only_error(project)
    probe = project / "mappings" / "fragments" / "probe.yaml"
    assert error.startswith(f"{probe}:3:")
    assert (
        "in flow birth-certificate, step 'file-issued-act' (through mapping etat-civil/issued-act-record)"
        in error
    )


def test_all_path_errors_of_a_flow_come_at_once(project):
    flow = flow_file(project)
    edit(flow, "when: {path: $.data.delivery,", "when: {path: $.data.delivry,")
    edit(
        flow, "set_status: {from: $.steps.act_status.status}", "set_status: {from: $.steps.act_statut.status}"
    )
    edit(
        flow,
        "until: {path: $.response.status, equals: ISSUED}",
        "until: {path: $.response.status, equals: ISSUE}",
    )
    assert len(errors_of(project)) == 3


# ---------------------------------------------------------------------------- what stays accepted


def test_the_shipped_flows_pass():
    definitions = load_definitions(ROOT / "config" / "hub.yaml")
    assert {"birth-certificate", "aid-payment", "citizen-merge-event"} <= set(definitions.flows)


@pytest.mark.parametrize(
    "path",
    [
        "$..delivery",  # past a descendant: not checked
        "$.data.delivery",
        "$.golden.identifiers.ged",
        "$.steps.act_request.copies",
        "$.request.created_at",
    ],
)
def test_paths_the_schemas_allow_or_cannot_judge_are_accepted(project, path):
    edit(
        flow_file(project),
        "when: {path: $.data.delivery, equals: espace_citoyen}",
        f"when: {{path: '{path}', exists: true}}",
    )
    assert "birth-certificate" in load_definitions(project / "config" / "hub.yaml").flows


def test_an_open_input_schema_leaves_data_paths_unchecked(project):
    flow = flow_file(project)
    edit(flow, "  additionalProperties: false\n  required: [copy_type]", "  required: [copy_type]")
    edit(flow, "when: {path: $.data.delivery,", "when: {path: $.data.delivry,")
    assert "birth-certificate" in load_definitions(project / "config" / "hub.yaml").flows
