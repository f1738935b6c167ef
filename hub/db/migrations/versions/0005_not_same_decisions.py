"""not-same decisions: a steward's "not the same person" kept as a constraint (md_not_same)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 11:00:00

Branch match-quality (issue 5). Another branch (realtime) may add a migration after 0003 too: the
second to land rebases its down_revision onto the first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "md_not_same",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("a_system", sa.String(length=64), nullable=False),
        sa.Column("a_local_id", sa.String(length=200), nullable=False),
        sa.Column("b_system", sa.String(length=64), nullable=False),
        sa.Column("b_local_id", sa.String(length=200), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_md_not_same_a", "md_not_same", ["a_system", "a_local_id"])
    op.create_index("ix_md_not_same_b", "md_not_same", ["b_system", "b_local_id"])
    # Decisions taken before this table existed become constraints too.
    op.execute(
        """
        INSERT INTO md_not_same (a_system, a_local_id, b_system, b_local_id, task_id, decided_at,
                                 decided_by, reason)
        SELECT a.system, a.local_id, b.system, b.local_id, t.id, t.decided_at, t.decided_by, t.reason
        FROM md_review_tasks t
        JOIN md_source_records a ON a.id = t.source_record_id
        JOIN md_source_records b ON b.id = t.candidate_source_record_id
        WHERE t.status = 'not_same' AND t.decided_at IS NOT NULL
        """
    )


def downgrade() -> None:
    op.drop_index("ix_md_not_same_b", table_name="md_not_same")
    op.drop_index("ix_md_not_same_a", table_name="md_not_same")
    op.drop_table("md_not_same")
