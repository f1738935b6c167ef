"""Alembic environment: migrate the database named by the hub (never by alembic.ini)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

import hub.db.master_models  # noqa: F401  (registers the master-data tables)
from hub.db.engine import make_engine
from hub.db.models import Base

# The PostgreSQL advisory lock the migrations run under ("hub_mig" in ASCII): every `hub serve`
# and `hub worker` upgrades at start, and processes started together would otherwise race on the
# DDL (two CREATE TABLE of one name: all but one fail). The lock is the transaction's: released at
# its commit or rollback, never left behind by a process that died.
MIGRATION_LOCK = 0x6875625F6D6967

url = context.config.get_main_option("sqlalchemy.url")
engine = make_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Taken before Alembic reads the schema's version: a process that waited finds the
            # migrations the first one committed (each statement sees what is committed before
            # it), and has nothing left to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()
engine.dispose()
