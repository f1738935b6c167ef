"""Exports as systems give them: other systems' identifiers (``id_<system>`` columns in CSV, an
``identifiers`` object in JSON) and the source's own modification time (``updated_at``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from master_data.sources import SourceFileError, read_records

SYSTEMS = {"etat_civil", "ecole", "finances", "portal"}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_id_columns_are_identifiers_and_an_empty_cell_states_none(tmp_path):
    path = write(
        tmp_path,
        "ecole.csv",
        "local_id,birth_name,given_names,birth_date,id_finances,id_etat_civil,updated_at\n"
        "FAM-77,Lefevre,Elodie,1985-03-14,T-3,,2019-06-30\n"
        "FAM-78,Santoni,Paul,1990-07-02,,N-2,2024-01-15T08:30:00+01:00\n",
    )
    first, second = read_records(path, "ecole", SYSTEMS)
    assert first.identifiers == (("finances", "T-3"),) and first.updated_at == "2019-06-30"
    assert second.identifiers == (("etat_civil", "N-2"),)
    assert second.updated_at == "2024-01-15T08:30:00+01:00"


def test_json_identifiers_object(tmp_path):
    rows = [
        {"local_id": "FAM-77", "birth_name": "Lefevre", "identifiers": {"finances": "T-3", "portal": "cit_1"}}
    ]
    path = write(tmp_path, "ecole.json", json.dumps(rows))
    [record] = read_records(path, "ecole", SYSTEMS)
    assert record.identifiers == (("finances", "T-3"), ("portal", "cit_1"))


def test_an_unknown_or_own_system_column_is_refused_at_the_header(tmp_path):
    path = write(tmp_path, "ecole.csv", "local_id,id_mairie_annexe,id_ecole\nFAM-77,X-1,FAM-1\n")
    with pytest.raises(SourceFileError) as refused:
        read_records(path, "ecole", SYSTEMS)
    messages = [str(issue) for issue in refused.value.issues]
    assert messages == [
        f"{path}:1: column id_mairie_annexe: unknown system 'mairie_annexe'; "
        "valid: etat_civil, finances, portal",
        f"{path}:1: column id_ecole: 'ecole' is the record's own system (its identifier is local_id)",
    ]


def test_bad_json_identifiers_and_updated_at_name_their_line(tmp_path):
    rows = [
        {"local_id": "A", "identifiers": {"impots": "X"}},
        {"local_id": "B", "identifiers": ["finances", "T-3"]},
        {"local_id": "C", "identifiers": {"finances": ""}},
        {"local_id": "D", "updated_at": "30/06/2019"},
    ]
    text = json.dumps(rows, indent=1)
    path = write(tmp_path, "ecole.json", text)
    with pytest.raises(SourceFileError) as refused:
        read_records(path, "ecole", SYSTEMS)
    issues = [(issue.line, issue.message) for issue in refused.value.issues]
    starts = [number for number, line in enumerate(text.splitlines(), start=1) if line == " {"]
    assert [line for line, _ in issues] == starts
    assert "unknown system 'impots'" in issues[0][1]
    assert "identifiers must be an object" in issues[1][1]
    assert "identifiers.finances must be a non-empty string" in issues[2][1]
    assert "updated_at '30/06/2019' must be an ISO 8601 date or date-time" in issues[3][1]


def test_identifiers_are_refused_when_no_system_is_known(tmp_path):
    """Without the hub's systems nothing can be checked: every identifier is refused, not trusted."""
    path = write(tmp_path, "ecole.csv", "local_id,id_finances\nFAM-77,T-3\n")
    with pytest.raises(SourceFileError, match="unknown system 'finances'; valid: none"):
        read_records(path, "ecole")
