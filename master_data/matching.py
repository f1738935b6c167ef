"""Matching identity records: the public surface the golden store, the API and the CLI use.

- :class:`IdentityRecord` (one source record), :class:`FieldComparison`, :class:`Explanation`,
  :class:`Decision` (master_data.records);
- :class:`MatchModel`: m/u weights per field level estimated by EM, ``to_json``/``from_json`` so the
  hub stores them (master_data.model);
- :class:`Matcher`: ``blocking_keys`` (what the store indexes), ``explain`` (one pair, field by
  field, symmetric), ``decide`` (one incoming record against its candidates: link, review or new)
  (master_data.matcher);
- :func:`estimate_model`, :func:`deduplicate`, :func:`link`, :func:`deduplicate_against` (a file
  against a stored population): whole imports, vectorised, with a progress bar and a summary
  (master_data.batch).
"""

from __future__ import annotations

from master_data.batch import BatchResult, deduplicate, deduplicate_against, estimate_model, link
from master_data.matcher import Matcher
from master_data.model import MatchModel, ModelError
from master_data.records import Decision, Explanation, FieldComparison, IdentityRecord

__all__ = [
    "BatchResult",
    "Decision",
    "Explanation",
    "FieldComparison",
    "IdentityRecord",
    "MatchModel",
    "Matcher",
    "ModelError",
    "deduplicate",
    "deduplicate_against",
    "estimate_model",
    "link",
]
