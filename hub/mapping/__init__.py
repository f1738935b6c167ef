"""The mapping language: YAML files, JSONPath in, back-end message out (see docs/mappings.md)."""

from hub.mapping.errors import MappingFailed, mask
from hub.mapping.loader import FieldTrace, Mapping, load_fragments, load_mapping, load_mappings

__all__ = [
    "FieldTrace",
    "Mapping",
    "MappingFailed",
    "load_fragments",
    "load_mapping",
    "load_mappings",
    "mask",
]
