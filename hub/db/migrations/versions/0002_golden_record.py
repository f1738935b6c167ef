"""golden record: source records, cross-references, blocking keys, golden records and their
versions and values (with lineage), review tasks, merge events, match models; requests.golden_id

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 07:24:15.333437
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "md_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("golden_id", sa.String(length=36), nullable=False),
        sa.Column("other_id", sa.String(length=36), nullable=False),
        sa.Column("moved", sa.JSON(), nullable=False),
        sa.Column("systems", sa.JSON(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("undone_by", sa.BigInteger(), nullable=True),
        sa.Column("notice_request_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("md_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_md_events_golden_id"), ["golden_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_md_events_other_id"), ["other_id"], unique=False)

    op.create_table(
        "md_golden_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("merged_into", sa.String(length=36), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("md_golden_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_md_golden_records_merged_into"), ["merged_into"], unique=False)

    op.create_table(
        "md_match_models",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("model", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "md_source_records",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("local_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("received_at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("exchange_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("md_source_records", schema=None) as batch_op:
        batch_op.create_index("ux_md_source_version", ["system", "local_id", "version"], unique=True)

    op.create_table(
        "md_blocking_keys",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("source_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["md_source_records.id"],
        ),
        sa.PrimaryKeyConstraint("key", "source_record_id"),
    )
    with op.batch_alter_table("md_blocking_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_md_blocking_keys_source_record_id"), ["source_record_id"], unique=False
        )

    op.create_table(
        "md_golden_values",
        sa.Column("golden_id", sa.String(length=36), nullable=False),
        sa.Column("attribute", sa.String(length=32), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("source_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("local_id", sa.String(length=200), nullable=False),
        sa.Column("exchange_id", sa.BigInteger(), nullable=True),
        sa.Column("observed_at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["golden_id"],
            ["md_golden_records.id"],
        ),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["md_source_records.id"],
        ),
        sa.PrimaryKeyConstraint("golden_id", "attribute"),
    )
    op.create_table(
        "md_golden_versions",
        sa.Column("golden_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("merged_into", sa.String(length=36), nullable=True),
        sa.Column("golden", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["golden_id"],
            ["md_golden_records.id"],
        ),
        sa.PrimaryKeyConstraint("golden_id", "version"),
    )
    op.create_table(
        "md_review_tasks",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("golden_id", sa.String(length=36), nullable=False),
        sa.Column(
            "candidate_source_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("candidate_golden_id", sa.String(length=36), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("explanation", sa.JSON(), nullable=False),
        sa.Column("decided_at", hub.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["candidate_source_record_id"],
            ["md_source_records.id"],
        ),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["md_source_records.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("md_review_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_md_review_tasks_status", ["status", "id"], unique=False)

    op.create_table(
        "md_xrefs",
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("local_id", sa.String(length=200), nullable=False),
        sa.Column("golden_id", sa.String(length=36), nullable=False),
        sa.Column("source_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("link", sa.String(length=64), nullable=False),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("linked_at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["md_source_records.id"],
        ),
        sa.PrimaryKeyConstraint("system", "local_id"),
    )
    with op.batch_alter_table("md_xrefs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_md_xrefs_golden_id"), ["golden_id"], unique=False)

    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("golden_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_requests_golden_id"), ["golden_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_requests_golden_id"))
        batch_op.drop_column("golden_id")

    with op.batch_alter_table("md_xrefs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_md_xrefs_golden_id"))

    op.drop_table("md_xrefs")
    with op.batch_alter_table("md_review_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_md_review_tasks_status")

    op.drop_table("md_review_tasks")
    op.drop_table("md_golden_versions")
    op.drop_table("md_golden_values")
    with op.batch_alter_table("md_blocking_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_md_blocking_keys_source_record_id"))

    op.drop_table("md_blocking_keys")
    with op.batch_alter_table("md_source_records", schema=None) as batch_op:
        batch_op.drop_index("ux_md_source_version")

    op.drop_table("md_source_records")
    op.drop_table("md_match_models")
    with op.batch_alter_table("md_golden_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_md_golden_records_merged_into"))

    op.drop_table("md_golden_records")
    with op.batch_alter_table("md_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_md_events_other_id"))
        batch_op.drop_index(batch_op.f("ix_md_events_golden_id"))

    op.drop_table("md_events")
