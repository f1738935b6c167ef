"""review tasks say why they were made (md_review_tasks.rule)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 09:00:00

A review task made by a rule rather than by the score's review band (a conflict, known homonyms,
a record above the upper threshold against two golden records, a known record newly stating
another golden record's identifier) now carries that rule, which the review queue shows and the
thresholds report counts apart. Existing tasks get what can be inferred from what they stored:

- the rule their explanation names (``conflict:...``, ``known_homonyms``, ``same_identifier``...);
- ``identifier_conflict`` for a task whose record is a later version of a known record: an update
  opens a task only when it newly states an identifier another golden record holds (migration
  0008's code; the one before opened none).

A task of the score's code path above the upper threshold without a rule (two golden records
passed it, or its golden record held a conflicting record) cannot be told apart afterwards: the
thresholds in force then are not stored. It keeps no rule and the report still counts it as
``above_upper``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("md_review_tasks", sa.Column("rule", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        named = "substr(explanation ->> 'rule', 1, 64)"
    else:
        named = "substr(json_extract(explanation, '$.rule'), 1, 64)"
    op.execute(f"UPDATE md_review_tasks SET rule = {named}")
    op.execute(
        """
        UPDATE md_review_tasks SET rule = 'identifier_conflict'
        WHERE source_record_id IN (SELECT id FROM md_source_records WHERE version > 1)
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("md_review_tasks") as batch:
        batch.drop_column("rule")
