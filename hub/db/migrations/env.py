"""Alembic environment: migrate the database named by the hub (never by alembic.ini)."""

from __future__ import annotations

from alembic import context

import hub.db.master_models  # noqa: F401  (registers the master-data tables)
from hub.db.engine import make_engine
from hub.db.models import Base

url = context.config.get_main_option("sqlalchemy.url")
engine = make_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
