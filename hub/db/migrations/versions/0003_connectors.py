"""connectors: acknowledgement files processed once (connector_ack_files)

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-29 08:00:00

The lead engineer rebases the chain when 0002 (golden record) lands.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_ack_files",
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("ack_name", sa.String(length=255), nullable=False),
        sa.Column("file", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("rejections", sa.JSON(), nullable=False),
        sa.Column("processed_at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("system", "ack_name", name="pk_connector_ack_files"),
    )
    op.create_index("ix_connector_ack_files_file", "connector_ack_files", ["system", "file"])


def downgrade() -> None:
    op.drop_index("ix_connector_ack_files_file", table_name="connector_ack_files")
    op.drop_table("connector_ack_files")
