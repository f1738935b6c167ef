"""connectors: every process's circuit breaker state (connector_breaker_states)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:40:00

Written by the gateways on breaker state changes, read by ``hub systems status``
(hub/breakers.py). Others may add migrations; the chain is re-linked at merge.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_breaker_states",
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("process", sa.String(length=160), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("changed_at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("probe_at", hub.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("opened_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("system", "process", name="pk_connector_breaker_states"),
    )


def downgrade() -> None:
    op.drop_table("connector_breaker_states")
