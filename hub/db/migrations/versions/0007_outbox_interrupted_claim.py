"""a claim keeps the token of the claim it replaced when that one never let go (a lost worker)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 19:30:00

A worker releases a message when it finishes, waits or fails; one killed mid-step never does, and
its lease simply runs out. The next claim copies the old ``claimed_by`` into
``interrupted_claim`` in the same statement, so the worker that takes over knows a call of that
step may have left without its journal row, and journals it (outcome ``interrupted``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("interrupted_claim", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("interrupted_claim")
