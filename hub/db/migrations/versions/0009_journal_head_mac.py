"""the journal head carries a MAC (a rewound head or a moved mac_from_id is told apart)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 09:00:00

Anyone able to write to the database could delete the chain's tail and rewind ``journal_head`` to
the last remaining row, or raise ``mac_from_id`` above rows forged without a MAC: verification
trusted the head. ``journal_head.mac`` is an HMAC of the head under the journal key, made by each
seal. This migration MACs the existing head, with the key the hub's upgrade passes
(:func:`hub.db.migrate.upgrade`). Run without it (a bare ``alembic upgrade``), it refuses a journal
that has sealed rows: a head left without a MAC could not be told from one whose MAC was removed,
and letting the next seal MAC it would vouch for whatever head it found. The empty journal's head
needs no MAC (:func:`hub.journal.head_problem`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from hub.journal import GENESIS, head_mac

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    head = bind.execute(sa.text("SELECT seq, hash, mac_from_id FROM journal_head WHERE id = 1")).one_or_none()
    key = context.config.attributes.get("journal_key")
    empty = head is None or (head.seq == 0 and head.hash == GENESIS and head.mac_from_id in (None, 1))
    if key is None and not empty:  # refused before any change, whatever the DDL's transactions
        raise RuntimeError(
            f"migration 0009 authenticates the journal head (seq {head.seq}) with the journal key, "
            "which this upgrade was not given: run `hub db upgrade`, which reads HUB_PSEUDONYM_KEY "
            "or var/pseudonym.key"
        )
    op.add_column("journal_head", sa.Column("mac", sa.String(length=64), nullable=True))
    if head is not None and key is not None:
        mac = head_mac(key, head.seq, head.hash, head.mac_from_id)
        op.execute(sa.text("UPDATE journal_head SET mac = :mac WHERE id = 1").bindparams(mac=mac))
    # Else the empty journal's head: public, it needs no MAC; the first seal authenticates the next.


def downgrade() -> None:
    with op.batch_alter_table("journal_head") as batch:
        batch.drop_column("mac")
