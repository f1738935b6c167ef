"""stated system identifiers (md_stated_ids) and the source's own modification time in lineage

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 20:00:00

A source record may state other systems' identifiers of the person (the school's family record
holding the finance system's payer id): ``md_stated_ids`` indexes them for the "same system
identifier" rule. A golden value's lineage keeps the source's own ``updated_at`` (what the
``most_recent`` rule compared) beside ``observed_at`` (when the hub received it). Records stored
before state no identifier and no time: nothing to fill in.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "md_stated_ids",
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("local_id", sa.String(length=200), nullable=False),
        sa.Column("source_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(["source_record_id"], ["md_source_records.id"]),
        sa.PrimaryKeyConstraint("system", "local_id", "source_record_id"),
    )
    op.create_index("ix_md_stated_ids_source_record_id", "md_stated_ids", ["source_record_id"])
    op.add_column(
        "md_golden_values",
        sa.Column("source_updated_at", hub.db.models.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("md_golden_values") as batch:
        batch.drop_column("source_updated_at")
    op.drop_index("ix_md_stated_ids_source_record_id", table_name="md_stated_ids")
    op.drop_table("md_stated_ids")
