"""Sandbox école/enfance back-end: a REST JSON API for school, after-school and nursery enrolment."""

from sandbox.ecole.app import DEFAULT_TOKEN, create_app
from sandbox.ecole.state import EcoleState

__all__ = ["DEFAULT_TOKEN", "EcoleState", "create_app"]
