"""journal rows carry a MAC made with the hub's key when written (a forged row is told apart)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 17:00:00

Rows are sealed into the hash chain after they are written; a row inserted by hand before its
seal would otherwise be chained like any other. ``journal.mac`` is an HMAC of the row's content
under a key the database does not hold. Rows written before this migration have none:
``journal_head.mac_from_id`` is the first id that must carry one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("journal", sa.Column("mac", sa.String(length=64), nullable=True))
    op.add_column("journal_head", sa.Column("mac_from_id", sa.BigInteger(), nullable=True))
    first = op.get_bind().execute(sa.text("SELECT coalesce(max(id), 0) + 1 FROM journal")).scalar()
    op.execute(sa.text("UPDATE journal_head SET mac_from_id = :first").bindparams(first=first))


def downgrade() -> None:
    with op.batch_alter_table("journal_head") as batch:
        batch.drop_column("mac_from_id")
    with op.batch_alter_table("journal") as batch:
        batch.drop_column("mac")
