"""Sandbox GED back-end: a REST document store with streamed uploads and downloads."""

from sandbox.ged.app import DEFAULT_API_KEY, create_app
from sandbox.ged.store import GedState

__all__ = ["DEFAULT_API_KEY", "GedState", "create_app"]
