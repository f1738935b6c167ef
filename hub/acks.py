"""The processed-acknowledgement ledger of file-based systems, on the hub's database.

A finance system answers each file with an acknowledgement file; the hub must act on each one
once, even after a restart and with several workers polling the same folder. The ledger is the
table ``connector_ack_files`` (migration ``0003_connectors``), keyed by system and acknowledgement
name: recording is an INSERT, and the worker whose INSERT wins is the one that processed it.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError

from connectors.finances import Acknowledgement
from hub.db.engine import Database
from hub.db.models import UTCDateTime, utcnow

ACK_FILES = Table(
    "connector_ack_files",
    MetaData(),
    Column("system", String(64), primary_key=True),
    Column("ack_name", String(255), primary_key=True),
    Column("file", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("rejections", JSON, nullable=False),
    Column("processed_at", UTCDateTime(timezone=True), nullable=False),
)


class SqlAckLedger:
    """:class:`connectors.finances.AckLedger` on the hub's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def unprocessed(self, system: str, ack_names: list[str]) -> list[str]:
        if not ack_names:
            return []
        with self.db.connection() as connection:
            known = set(
                connection.scalars(
                    select(ACK_FILES.c.ack_name).where(
                        ACK_FILES.c.system == system, ACK_FILES.c.ack_name.in_(ack_names)
                    )
                )
            )
        return [name for name in ack_names if name not in known]

    def record(self, system: str, ack: Acknowledgement) -> bool:
        row = {
            "system": system,
            "ack_name": ack.ack_name,
            "file": ack.file,
            "sha256": ack.sha256,
            "accepted": ack.accepted,
            "rejected": ack.rejected,
            "rejections": ack.rejections,
            "processed_at": utcnow(),
        }
        try:
            with self.db.connection(single_statement=True) as connection:
                connection.execute(insert(ACK_FILES), row)
        except IntegrityError:
            return False  # another worker (or an earlier run) processed it
        return True

    def get(self, system: str, file: str) -> Acknowledgement | None:
        with self.db.connection() as connection:
            row = connection.execute(
                select(ACK_FILES)
                .where(ACK_FILES.c.system == system, ACK_FILES.c.file == file)
                .order_by(ACK_FILES.c.processed_at.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return Acknowledgement(
            row.file, row.ack_name, row.sha256, row.accepted, row.rejected, list(row.rejections)
        )
