"""Alembic migrations, run programmatically (``hub db upgrade``; serve and demo upgrade too)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str, journal_key: bytes | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["journal_key"] = journal_key
    return config


def upgrade(url: str, revision: str = "head", *, journal_key: bytes | None = None) -> None:
    """Migrate to ``revision``. ``journal_key`` (the hub's, :func:`hub.journal.journal_key`) lets a
    migration authenticate what it rewrites (0009 MACs the existing journal head); the hub's own
    upgrades always pass it. Without it, a database whose journal has sealed rows is refused by
    0009 rather than left with a head nobody can tell from a forged one."""
    command.upgrade(alembic_config(url, journal_key), revision)
