"""``master_data.commune_movements``: INSEE's COG "mouvements des communes" file, checked at start-up
and used wherever records are normalised (real-time resolution, batch import, explanations)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from hub.cli import app
from hub.config import load_config
from hub.db.master_models import XREFS
from hub.db.migrate import upgrade
from hub.yamlfile import ConfigError
from tests.conftest import CONFIG, ROOT

COG_FILE = ROOT / "tests" / "master_data" / "data" / "v_mvt_commune_2024.csv"
# Louise Girod, born in Châtillon-en-Michaille (01091) before it joined Valserhône (01033) in 2019:
# the registry keeps the code of the time, the school the code of today.
REGISTRY = "local_id,birth_name,given_names,birth_date,sex,birth_place\nN-1,GIROD,Louise,1950-06-02,F,01091\n"
SCHOOL = [
    {
        "local_id": "F-1",
        "birth_name": "Girod",
        "given_names": ["Louise"],
        "birth_date": "1950-06-02",
        "sex": "F",
        "birth_place": "01033",
    }
]


@pytest.fixture
def commune_project(tmp_path: Path) -> Path:
    """The shipped configuration with INSEE's movements file beside it (a path relative to hub.yaml)."""
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "config" / "cog").mkdir()
    shutil.copy(COG_FILE, tmp_path / "config" / "cog" / COG_FILE.name)
    config = tmp_path / "config" / "hub.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(
            "  portal_system: portal",
            f"  portal_system: portal\n  commune_movements: cog/{COG_FILE.name}",
        ),
        encoding="utf-8",
    )
    return config


def load_both(config: Path, url: str, tmp_path: Path, monkeypatch) -> dict[str, str]:
    """Registry then school record by record, then both in one file by batch, each into a fresh
    database; the cross-references' link per (database, record)."""
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    (tmp_path / "etat_civil.csv").write_text(REGISTRY, encoding="utf-8")
    (tmp_path / "ecole.json").write_text(json.dumps(SCHOOL), encoding="utf-8")
    batch = [{**row, "local_id": f"R-{k}"} for k, row in enumerate([*_registry_rows(), *SCHOOL])]
    (tmp_path / "finances.json").write_text(json.dumps(batch), encoding="utf-8")
    runner = CliRunner()
    for system, name in (("etat_civil", "etat_civil.csv"), ("ecole", "ecole.json")):
        result = runner.invoke(
            app, ["citizens", "import", "--system", system, str(tmp_path / name), "-c", str(config)]
        )
        assert result.exit_code == 0, result.output
    explained = runner.invoke(app, ["citizens", "explain", "etat_civil:N-1", "ecole:F-1", "-c", str(config)])
    assert explained.exit_code == 0, explained.output
    place = next(line for line in explained.output.splitlines() if "birth_place" in line)
    batch_url = url.replace(".db", "-batch.db")
    upgrade(batch_url)
    monkeypatch.setenv("HUB_DATABASE_URL", batch_url)
    result = runner.invoke(
        app,
        [
            "citizens",
            "import",
            "--system",
            "finances",
            "--batch",
            str(tmp_path / "finances.json"),
            "-c",
            str(config),
        ],
    )
    assert result.exit_code == 0, result.output
    links = {"explained birth_place": place.replace("│", " ").split()[1]}
    for where in (url, batch_url):
        engine = create_engine(where)
        with engine.connect() as connection:
            rows = connection.execute(select(XREFS.c.local_id, XREFS.c.golden_id, XREFS.c.link)).all()
        engine.dispose()
        assert len({row.golden_id for row in rows}) == 1  # one person either way (same department)
        links.update({row.local_id: row.link for row in rows})
    return links


def _registry_rows() -> list[dict]:
    header, row = REGISTRY.splitlines()
    values = dict(zip(header.split(","), row.split(","), strict=True))
    return [{**values, "given_names": [values["given_names"]]}]


def test_an_old_and_a_new_commune_code_are_one_birth_place_only_with_the_file(
    commune_project, tmp_path, monkeypatch
):
    configured = tmp_path / "configured"
    shipped = tmp_path / "shipped"
    configured.mkdir(), shipped.mkdir()
    for folder in (configured, shipped):
        upgrade(f"sqlite:///{folder / 'hub.db'}")
    with_file = load_both(commune_project, f"sqlite:///{configured / 'hub.db'}", configured, monkeypatch)
    without = load_both(CONFIG, f"sqlite:///{shipped / 'hub.db'}", shipped, monkeypatch)
    # With the file: the same birth place, so the same full identity links by rule, in real time
    # (the school's record) and in a batch (the second record of the file); explain agrees.
    assert with_file == {
        "explained birth_place": "exact",
        "N-1": "new",
        "F-1": "rule:same_pivot_identity",
        "R-0": "new",
        "R-1": "rule:same_pivot_identity",
    }
    # Without it: two codes of one department, linked by the score only.
    assert without == {
        "explained birth_place": "same_department",
        "N-1": "new",
        "F-1": "score",
        "R-0": "new",
        "R-1": "score",
    }


def test_a_missing_or_malformed_movements_file_stops_the_hub_at_the_settings_line(commune_project):
    line = next(
        i
        for i, text in enumerate(commune_project.read_text(encoding="utf-8").splitlines(), 1)
        if "commune_movements" in text
    )
    moved = commune_project.parent / "cog" / COG_FILE.name
    loaded, _ = load_config(commune_project)
    assert loaded.master_data.communes().current("01205") == "01033"  # Lancrans, read at load

    moved.write_text("MOD;DATE_EFF;COM_AV;COM_AP\n32;2019-01-01;01205;01033\n", encoding="utf-8")
    with pytest.raises(ConfigError) as malformed:
        load_config(commune_project)
    [issue] = [str(i) for i in malformed.value.issues]
    assert f"hub.yaml:{line}:" in issue and "master_data.commune_movements" in issue
    assert f"{moved}:1: not an INSEE 'mouvements des communes' file" in issue

    moved.unlink()
    with pytest.raises(ConfigError) as missing:
        load_config(commune_project)
    [issue] = [str(i) for i in missing.value.issues]
    assert f"hub.yaml:{line}:" in issue and f"{moved}: cannot read the file" in issue
