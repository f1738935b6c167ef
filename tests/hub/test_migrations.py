"""Schema migrations: several processes started together (``hub serve`` and ``hub worker`` each
upgrade at start) must not race on the DDL of a fresh PostgreSQL database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT

# Every process imports, then waits for the same instant, then upgrades.
UPGRADE_AT = """
import sys, time
from hub.db.migrate import upgrade
start_at = float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
upgrade(sys.argv[1])
"""


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def test_processes_started_together_all_upgrade_a_fresh_postgresql_database(database_template) -> None:
    if not database_template.startswith("postgresql"):
        pytest.skip("the advisory lock is PostgreSQL's; on SQLite every transaction begins IMMEDIATE")
    # A fresh, empty schema of the test database stands for a fresh database.
    schema = f"migrate_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in database_template else "?"
    url = f"{database_template}{separator}options={quote(f'-csearch_path={schema}')}"
    admin = _engine(database_template)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        start_at = time.time() + 4.0  # after every interpreter has imported the hub
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", UPGRADE_AT, url, str(start_at)],
                cwd=ROOT,
                env=os.environ.copy(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
        for process in processes:
            process.stdout.close()
            process.stderr.close()
        assert [code for code, _ in outcomes] == [0] * len(processes), "\n".join(e for _, e in outcomes)
        with _engine(url).connect() as connection:
            heads = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
            tables = connection.execute(
                sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = :schema"), {"schema": schema}
            ).scalar()
        assert len(heads) == 1 and tables > 10
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
