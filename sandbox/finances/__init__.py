"""Sandbox finance back-end: an SFTP server whose intake acknowledges files line by line."""

from sandbox.finances.processor import FinancesState, acknowledge
from sandbox.finances.server import (
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    FinancesServer,
    generate_host_key,
    known_hosts_line,
)

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "FinancesServer",
    "FinancesState",
    "acknowledge",
    "generate_host_key",
    "known_hosts_line",
]
