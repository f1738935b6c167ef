"""Simulated état-civil back-end (SOAP 1.1): see ``service.create_app`` and ``registry``."""

from sandbox.etat_civil.registry import REJECTED_ACTS, SEED_BIRTH_RECORDS, EtatCivilState
from sandbox.etat_civil.service import WSDL_PATH, create_app

__all__ = ["REJECTED_ACTS", "SEED_BIRTH_RECORDS", "WSDL_PATH", "EtatCivilState", "create_app"]
