"""Several workers resolving the same new citizen at once: one golden record, not several."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from hub.citizens import Citizens
from hub.db.master_models import GOLDEN, XREFS
from tests.master_data.conftest import person


def test_one_new_record_resolved_concurrently_makes_one_golden_record(hub):
    citizens = Citizens(hub)
    record = person("ecole", "F-1")
    with ThreadPoolExecutor(4) as pool:
        resolutions = list(pool.map(lambda _: citizens.resolve(record, actor="worker"), range(8)))
    assert len({r.golden_id for r in resolutions}) == 1
    assert sorted(r.outcome for r in resolutions) == ["new"] + ["unchanged"] * 7
    with hub.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(GOLDEN)) == 1
        assert session.scalar(select(func.count()).select_from(XREFS)) == 1
