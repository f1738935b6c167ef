"""Configuration errors stop the hub at start-up and name file:line with what would be valid."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.runtime import load_definitions
from hub.yamlfile import ConfigError
from tests.conftest import ROOT


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the shipped config, flows and mappings to break."""
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def errors_of(project: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_definitions(project / "config" / "hub.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_shipped_configuration_is_valid():
    definitions = load_definitions(ROOT / "config" / "hub.yaml")
    assert "birth-certificate" in definitions.flows
    assert definitions.config.systems["etat_civil"].kind == "soap"


def test_unknown_key_names_file_line_and_valid_keys(project):
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, "    timeout_s: 10\n", "    timeout_s: 10\n    timeuot_s: 5\n")
    [error] = errors_of(project)
    assert error.startswith(f"{hub_yaml}:{line_of(hub_yaml, 'timeuot_s')}:")
    assert "unknown key 'timeuot_s'" in error and "timeout_s" in error.split("valid keys here:")[1]


def test_duplicate_key_is_an_error_not_a_silent_override(project):
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, "    timeout_s: 10\n", "    timeout_s: 10\n    timeout_s: 99\n")
    [error] = errors_of(project)
    assert re.match(
        rf"{re.escape(str(hub_yaml))}:{line_of(hub_yaml, 'timeout_s: 99')}:\d+: duplicate key", error
    )
    assert "first defined at line" in error


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("    timeout_s: 10", '    timeout_s: "10"', "systems.etat_civil.timeout_s"),
        ("    max_concurrency: 16", "    max_concurrency: 16.0", "systems.etat_civil.max_concurrency"),
    ],
    ids=["quoted-number", "float-count"],
)
def test_a_value_of_the_wrong_type_is_not_coerced(project, old, new, field):
    """A quoted number or a fractional count is a slip in the file: refused at its line."""
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, old, new)
    [error] = errors_of(project)
    assert f":{line_of(hub_yaml, new.strip())}:" in error and field in error


def test_wrong_type_names_the_field(project):
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, "    max_concurrency: 16", "    max_concurrency: lots")
    [error] = errors_of(project)
    assert f":{line_of(hub_yaml, 'max_concurrency: lots')}:" in error
    assert "systems.etat_civil.max_concurrency" in error and "'lots'" in error


def test_flow_naming_an_unknown_system_lists_the_valid_ones(project):
    flow = project / "flows" / "birth-certificate.yaml"
    edit(
        flow,
        "      system: etat_civil\n      operation: RequestActCopy",
        "      system: etat_civl\n      operation: RequestActCopy",
    )
    [error] = errors_of(project)
    assert error.startswith(f"{flow}:{line_of(flow, 'etat_civl')}:")
    assert "unknown system 'etat_civl'" in error and "etat_civil" in error


def test_flow_naming_an_unknown_purpose(project):
    flow = project / "flows" / "birth-certificate.yaml"
    edit(flow, "purpose: etat_civil_delivrance_actes", "purpose: marketing")
    [error] = errors_of(project)
    assert error.startswith(f"{flow}:{line_of(flow, 'purpose: marketing')}:")
    assert "unknown purpose 'marketing'" in error and "etat_civil_delivrance_actes" in error


def test_flow_naming_an_unknown_mapping(project):
    flow = project / "flows" / "birth-certificate.yaml"
    edit(flow, "mapping: etat-civil/request-act-copy", "mapping: etat-civil/request-act-cpy")
    [error] = errors_of(project)
    assert error.startswith(f"{flow}:{line_of(flow, 'request-act-cpy')}:")
    assert "unknown mapping" in error


def test_invalid_jsonpath_in_a_step_condition(project):
    flow = project / "flows" / "birth-certificate.yaml"
    edit(flow, "when: {path: $.data.delivery,", "when: {path: '$.data[?(@.delivery ==',")
    [error] = errors_of(project)
    assert error.startswith(f"{flow}:{line_of(flow, '$.data[?(@.delivery')}:")
    assert "invalid JSONPath" in error


def test_invalid_jsonpath_in_a_mapping(project):
    mapping = project / "mappings" / "etat-civil" / "request-act-copy.yaml"
    edit(mapping, "path: $.citizen.sex", "path: '$.citizen[?(@.sex =='")
    errors = errors_of(project)
    assert any(
        e.startswith(f"{mapping}:{line_of(mapping, '$.citizen[?(@.sex')}:") and "invalid JSONPath" in e
        for e in errors
    ), errors


def test_literal_secret_is_refused(project):
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, "token: ${env:HUB_ECOLE_TOKEN}", "token: s3cr3t")
    [error] = errors_of(project)
    assert f":{line_of(hub_yaml, 's3cr3t')}:" in error and "secrets are not stored in the file" in error


def test_a_secret_with_a_default_is_refused(project):
    """``${env:X:-value}`` would store the secret in the file whenever X is unset."""
    hub_yaml = project / "config" / "hub.yaml"
    secret = "password: ${env:HUB_FINANCES_PASSWORD}"
    edit(hub_yaml, secret, "password: ${env:HUB_FINANCES_PASSWORD:-hunter2}")
    [error] = errors_of(project)
    assert f":{line_of(hub_yaml, 'hunter2')}:" in error
    assert "systems.finances.credentials.password" in error and "not even as a default" in error


def test_shipped_config_needs_the_secrets_from_the_environment(project, monkeypatch):
    monkeypatch.delenv("HUB_GED_KEY")
    [error] = errors_of(project)
    assert "systems.ged.credentials.api_key: environment variable HUB_GED_KEY is not set" in error


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_credential_variable_is_an_error_at_its_line(project, monkeypatch, value):
    """``HUB_ECOLE_TOKEN=`` in an env file is a secret not given, not an empty token: calls would go
    out unauthenticated."""
    monkeypatch.setenv("HUB_ECOLE_TOKEN", value)
    hub_yaml = project / "config" / "hub.yaml"
    [error] = errors_of(project)
    assert f":{line_of(hub_yaml, '${env:HUB_ECOLE_TOKEN}')}:" in error
    assert "systems.ecole.credentials.token: environment variable HUB_ECOLE_TOKEN is set but empty" in error


def test_missing_environment_variable_is_named(project, monkeypatch):
    monkeypatch.delenv("HUB_SCHOOL_TOKEN", raising=False)
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, "${env:HUB_ECOLE_TOKEN}", "${env:HUB_SCHOOL_TOKEN}")
    [error] = errors_of(project)
    assert "environment variable HUB_SCHOOL_TOKEN is not set" in error


def test_secret_from_environment_is_used(project, monkeypatch):
    monkeypatch.setenv("HUB_SCHOOL_TOKEN", "from-env")
    edit(
        project / "config" / "hub.yaml",
        "${env:HUB_ECOLE_TOKEN}",
        "${env:HUB_SCHOOL_TOKEN}",
    )
    definitions = load_definitions(project / "config" / "hub.yaml")
    assert definitions.config.systems["ecole"].credentials.token == "from-env"


def test_invalid_yaml_points_at_the_line(project):
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, "municipality:\n", "municipality:\n  name: [unclosed\n")
    [error] = errors_of(project)
    assert error.startswith(f"{hub_yaml}:") and "invalid YAML" in error


def test_several_errors_are_reported_together(project):
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, 'insee_code: "33063"', 'insee_code: "3306"')
    edit(hub_yaml, "legal_basis: legal_obligation", "legal_basis: because")
    errors = errors_of(project)
    assert len(errors) == 2
    assert any("insee_code" in e for e in errors) and any("legal_basis" in e for e in errors)


def test_config_check_cli(project):
    runner = CliRunner()
    good = runner.invoke(app, ["config", "check", "--config", str(project / "config" / "hub.yaml")])
    assert good.exit_code == 0, good.output
    assert "OK: 4 systems" in good.output and "birth-certificate" in good.output
    edit(project / "config" / "hub.yaml", "kind: rest", "kind: graphql")
    bad = runner.invoke(app, ["config", "check", "--config", str(project / "config" / "hub.yaml")])
    assert bad.exit_code == 1
    assert "hub.yaml:" in bad.output and "configuration error" in bad.output


def test_hub_config_environment_variable_selects_the_file(project, monkeypatch):
    monkeypatch.setenv("HUB_CONFIG", str(project / "config" / "hub.yaml"))
    edit(project / "config" / "hub.yaml", "Ville de Saint-Exemple", "Commune de Test")
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 0 and "Commune de Test" in result.output


def test_missing_wsdl_file_is_located_in_hub_yaml(project):
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, "wsdl: wsdl/etat-civil.wsdl", "wsdl: wsdl/missing.wsdl")
    [error] = errors_of(project)
    assert error.startswith(f"{hub_yaml}:{line_of(hub_yaml, 'missing.wsdl')}:") and "not found" in error


def test_flow_calling_an_operation_the_rest_system_lacks_lists_its_openapi_operations(project):
    flow = project / "flows" / "birth-certificate.yaml"
    edit(
        flow,
        "      system: etat_civil\n      operation: RequestActCopy",
        "      system: ecole\n      operation: RequestActCopy",
    )
    [error] = errors_of(project)
    assert error.startswith(f"{flow}:{line_of(flow, 'operation: RequestActCopy')}:")
    assert "no operation 'RequestActCopy'" in error and "its OpenAPI file" in error
    assert "CreateEnrolment" in error


def test_lease_shorter_than_a_call_timeout_is_refused(project):
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, "  lease_s: 30", "  lease_s: 8")
    errors = errors_of(project)
    assert errors[0].startswith(f"{hub_yaml}:{line_of(hub_yaml, 'lease_s: 8')}:")
    assert "worker.lease_s (8 s) must exceed systems.etat_civil.timeout_s (10 s)" in errors[0]


def test_backoff_bounds_are_checked(project):
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, "backoff_initial_s: 0.2, backoff_max_s: 30", "backoff_initial_s: 5, backoff_max_s: 1")
    [error] = errors_of(project)
    assert f":{line_of(hub_yaml, 'backoff_max_s: 1')}:" in error
    assert "backoff_max_s must be at least backoff_initial_s" in error


def test_two_clients_with_one_key_are_refused(project):
    digest = "a" * 64
    edit(
        project / "config" / "hub.yaml",
        "clients: {}",
        f"clients:\n  a: {{key_sha256: {digest}, scopes: [portal]}}\n"
        f"  b: {{key_sha256: {digest}, scopes: [audit]}}",
    )
    [error] = errors_of(project)
    assert "clients a and b have the same key_sha256" in error


def test_dangling_schema_reference_is_refused_at_load(project):
    flow = project / "flows" / "birth-certificate.yaml"
    edit(flow, "    reason: {type: string, maxLength: 200}", "    reason: {$ref: '#/$defs/motif'}")
    [error] = errors_of(project)
    assert error.startswith(f"{flow}:{line_of(flow, '$defs/motif')}:") and "points to nothing" in error
    edit(flow, "{$ref: '#/$defs/motif'}", "{$ref: 'https://example.org/motif.json'}")
    [error] = errors_of(project)
    assert "only references inside this schema" in error


def test_unknown_soap_operation_is_named_with_the_wsdl_operations(project):
    flow = project / "flows" / "birth-certificate.yaml"
    edit(flow, "operation: RequestActCopy", "operation: RequestActCpy")
    [error] = errors_of(project)
    assert error.startswith(f"{flow}:{line_of(flow, 'RequestActCpy')}:")
    assert "no operation 'RequestActCpy'" in error and "GetActRequestStatus, RequestActCopy" in error


def test_sftp_host_key_line_for_another_host_is_refused_at_load(project, monkeypatch):
    monkeypatch.delenv("HUB_FINANCES_KNOWN_HOSTS", raising=False)
    monkeypatch.delenv("HUB_FINANCES_URL", raising=False)
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, "[127.0.0.1]:8104 ssh-ed25519", "[127.0.0.1]:2222 ssh-ed25519")
    [error] = errors_of(project)
    assert error.startswith(f"{hub_yaml}:{line_of(hub_yaml, 'known_hosts: ${env')}:")
    assert "does not name [127.0.0.1]:8104" in error
    edit(hub_yaml, "[127.0.0.1]:2222 ssh-ed25519 AAAA", "[127.0.0.1]:8104 ssh-ed25519 !!!!")
    [error] = errors_of(project)
    assert "known_hosts" in error


@pytest.mark.parametrize(
    ("old", "new", "needle", "expected"),
    [
        ("      system: ged\n", "      system: etat_civil  # not a GED\n", "not a GED", "valid: ged"),
        ("      system: ged\n", "      system: gde\n", "system: gde", "unknown system 'gde'"),
        (
            "content: {mapping: etat-civil/issued-act-record}",
            "content: {mapping: etat-civil/issued-act-recrd}",
            "issued-act-recrd",
            "unknown mapping 'etat-civil/issued-act-recrd'",
        ),
        ("metadata: ged/issued-act-fields", "metadata: ged/nope", "ged/nope", "unknown mapping 'ged/nope'"),
        (
            "content: {mapping: etat-civil/issued-act-record}",
            "content: {base64: '$.data[?(@'}",
            "base64:",
            "JSONPath",
        ),
        (
            "content: {mapping: etat-civil/issued-act-record}",
            "content: {}",
            "content: {}",
            "exactly one of 'mapping' or 'base64'",
        ),
        (
            "data_categories: [etat_civil]",
            "data_categories: [etat_civil, sante]",
            "sante",
            "the document holds sante, outside the data categories of purpose",
        ),
        ("      data_categories: [etat_civil]\n", "", "file_document:", "data_categories"),
        ("content_type: application/xml", "content_type: xml", "content_type: xml", "content_type"),
        ("    save_as: issued_act\n", "", "id: file-issued-act", "needs save_as to keep its claim check"),
    ],
    ids=[
        "not-a-documents-system",
        "unknown-system",
        "unknown-content-mapping",
        "unknown-metadata-mapping",
        "bad-base64-path",
        "no-content-source",
        "categories-outside-purpose",
        "categories-missing",
        "bad-content-type",
        "claim-check-not-saved",
    ],
)
def test_file_document_step_errors_name_file_and_line(project, old, new, needle, expected):
    flow = project / "flows" / "birth-certificate.yaml"
    edit(flow, old, new)
    [error] = errors_of(project)
    assert error.startswith(f"{flow}:{line_of(flow, needle)}:"), error
    assert expected in error, error


def test_a_metadata_mapping_building_other_fields_than_the_geds_names_file_and_line(project):
    mapping = project / "mappings" / "ged" / "issued-act-fields.yaml"
    edit(mapping, "  type: {value: acte}", "  kind: {value: acte}")
    flow = project / "flows" / "birth-certificate.yaml"
    [error] = errors_of(project)
    assert error.startswith(f"{flow}:{line_of(flow, 'metadata: ged/issued-act-fields')}:"), error
    assert "unknown fields ['kind'], lacks ['type']" in error, error


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("flows", "birth-certificate.yaml"),
        ("mappings", "etat-civil/request-act-copy.yaml"),
        ("mappings", "fragments/address.yaml"),
    ],
)
def test_a_yml_file_is_refused_naming_it_not_silently_skipped(project, folder, name):
    """A loader reading *.yaml only would drop a renamed démarche or mapping without a word."""
    path = project / folder / name
    renamed = path.rename(path.with_suffix(".yml"))
    errors = errors_of(project)
    [refusal] = [e for e in errors if e.startswith(f"{renamed}:1:1:")]
    assert f"rename it {path.name}" in refusal


def test_yml_tables_are_still_read(project):
    """Lookup tables have always accepted .yml: renaming one changes nothing."""
    table = project / "mappings" / "tables" / "sex.yaml"
    table.rename(table.with_suffix(".yml"))
    assert "birth-certificate" in load_definitions(project / "config" / "hub.yaml").flows


def test_a_missing_flows_folder_is_an_error_at_its_line(project):
    """Otherwise the hub would start with no flow and answer every démarche 404 unknown_flow."""
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, "flows: ../flows", "flows: ../flow")
    [error] = errors_of(project)
    assert error.startswith(f"{hub_yaml}:{line_of(hub_yaml, 'flows: ../flow')}:")
    assert "paths.flows: no folder" in error


def test_config_check_prints_each_error_on_one_line(project):
    """Not wrapped at the terminal's width: CI logs and editors read file:line:col: message."""
    hub_yaml = project / "config" / "hub.yaml"
    edit(hub_yaml, "flows: ../flows", "flows: ../" + "a-rather-long-folder-name-" * 4)
    result = CliRunner().invoke(app, ["config", "check", "--config", str(hub_yaml)], terminal_width=60)
    assert result.exit_code == 1
    [line] = [text for text in result.output.splitlines() if "paths.flows" in text]
    assert line.startswith(str(hub_yaml) + ":") and line.endswith("(relative to hub.yaml)")


def test_a_malformed_wsdl_is_a_config_error_not_a_failure_at_the_first_call(project):
    """A system no mapping reads yet (mappings check the WSDLs they use themselves)."""
    hub_yaml = project / "config" / "hub.yaml"
    wsdl = project / "config" / "wsdl" / "cimetieres.wsdl"
    wsdl.write_text('<?xml version="1.0"?>\n<definitions>\n  <portType name="x">\n</definitions>\n')
    edit(
        hub_yaml,
        "systems:\n",
        "systems:\n  cimetieres:\n    kind: soap\n    endpoint: http://127.0.0.1:9/cimetieres\n"
        "    wsdl: wsdl/cimetieres.wsdl\n",
    )
    [error] = errors_of(project)
    assert error.startswith(f"{hub_yaml}:{line_of(hub_yaml, 'wsdl: wsdl/cimetieres.wsdl')}:")
    assert f"{wsdl}:4: not a well-formed WSDL" in error


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not a key at all\n", "not a private key paramiko can read"),
        (None, "the key is encrypted"),
    ],
)
def test_an_unreadable_sftp_key_is_a_config_error(project, content, reason):
    import paramiko

    hub_yaml = project / "config" / "hub.yaml"
    key_file = project / "config" / "finances.key"
    if content is None:  # a real key, protected by a passphrase the hub does not have
        paramiko.RSAKey.generate(1024).write_private_key_file(str(key_file), password="secret")
    else:
        key_file.write_text(content)
    edit(
        hub_yaml,
        "    credentials:\n      password: ${env:HUB_FINANCES_PASSWORD}\n",
        "    private_key_file: finances.key\n",
    )
    [error] = errors_of(project)
    assert error.startswith(f"{hub_yaml}:{line_of(hub_yaml, 'private_key_file: finances.key')}:")
    assert reason in error


@pytest.mark.parametrize(
    "name",
    ["config/hub.yaml", "flows/birth-certificate.yaml", "mappings/etat-civil/request-act-copy.yaml"],
)
def test_a_file_saved_as_latin1_is_an_error_at_its_line_not_a_traceback(project, name):
    """An editor saving in Latin-1 (Windows) is a config error like any other: file:line, exit 1."""
    path = project / name
    text = path.read_text(encoding="utf-8")
    number, line = next((n, t) for n, t in enumerate(text.splitlines(), start=1) if not t.isascii())
    column = next(i for i, char in enumerate(line, start=1) if not char.isascii())
    path.write_bytes(text.encode("latin-1"))
    result = CliRunner().invoke(app, ["config", "check", "--config", str(project / "config" / "hub.yaml")])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    [error] = [text for text in result.output.splitlines() if "not UTF-8" in text]
    assert error.startswith(f"{path}:{number}:{column}: not UTF-8"), error


def test_an_alias_in_hub_yaml_is_refused_at_its_line(project):
    hub_yaml = project / "config" / "hub.yaml"
    edit(
        hub_yaml,
        "    breaker: {failures: 5, reset_s: 10}\n",
        "    breaker: &breaker {failures: 5, reset_s: 10}\n",
    )
    edit(
        hub_yaml,
        "    breaker: {failures: 5, reset_s: 10, failure_rate: 0.5, window: 20}",
        "    breaker: *breaker",
    )
    errors = errors_of(project)
    assert errors == [
        f"{hub_yaml}:{line_of(hub_yaml, 'breaker: *breaker')}:14: YAML alias *breaker is not allowed "
        "(nor anchors): write the value out where it is used (mappings share fields with fragments)"
    ]
