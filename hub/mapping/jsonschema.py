"""The JSON Schema of mapping files, generated from the models the loader itself validates with.

Published as ``docs/schemas/mapping.schema.json`` (a test keeps the file equal to this output) so
editors (VS Code's YAML extension, IntelliJ) complete keys and transform names and flag mistakes
while the engineer types. The free-form ``transforms`` list of the models is replaced by the exact
list of transforms and their arguments.
"""

from __future__ import annotations

from typing import Any

from hub.mapping import transforms as tx
from hub.mapping.spec import MappingFile
from hub.mapping.tables import TableArgs

SCHEMA_ID = "https://municipal-hub.example/schemas/mapping.schema.json"


def mapping_file_schema() -> dict[str, Any]:
    schema = MappingFile.model_json_schema(by_alias=True)
    definitions = schema.setdefault("$defs", {})
    choices: list[dict[str, Any]] = [
        {"enum": list(tx.SIMPLE), "description": "; ".join(f"{n}: {d}" for n, (_, d) in tx.SIMPLE.items())}
    ]
    for name, kind in tx.WITH_ARGS.items():
        arguments = kind.args.model_json_schema(by_alias=True)
        definitions.update(arguments.pop("$defs", {}))
        choices.append(_one_key(name, arguments, kind.summary))
    table = TableArgs.model_json_schema(by_alias=True)
    choices.append(
        _one_key(
            "table",
            {"anyOf": [{"type": "string", "description": "a table of mappings/tables"}, table]},
            "code table",
        )
    )
    definitions["Transform"] = {"oneOf": choices}
    definitions["FieldSpec"]["properties"]["transforms"] = {
        "type": "array",
        "items": {"$ref": "#/$defs/Transform"},
        "description": "applied in order",
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def _one_key(name: str, arguments: dict[str, Any], summary: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: arguments},
        "required": [name],
        "additionalProperties": False,
        "description": summary,
    }


def portal_request_schema() -> dict[str, Any]:
    """The document a flow's mappings read for a portal request (``mappings/schemas/portal-request.json``):
    ``request`` (id, flow, client, created_at), ``citizen`` (the common identity schema), ``data``
    (the flow's own input, open here), ``steps`` (what earlier steps saved) and ``golden`` (the
    citizen's golden id and each system's identifier of them)."""
    from master_data.identity import CitizenIdentity

    citizen = CitizenIdentity.model_json_schema()
    definitions = citizen.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "portal-request",
        "description": "What mappings read for a request filed by the portal: generated, do not edit",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "request": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "flow": {"type": "string"},
                    "client": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "citizen": citizen,
            "data": {"type": "object", "description": "the flow's input, checked by the flow's own schema"},
            "steps": {"type": "object", "description": "what earlier steps saved, by their save_as name"},
            "golden": {
                "type": "object",
                "additionalProperties": False,
                "description": "the citizen's golden record, once resolved (absent before)",
                "properties": {
                    "id": {"type": "string"},
                    "identifiers": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "each system's own identifier of the person, by system name",
                    },
                },
            },
            "response": {"description": "in an answer mapping: the back-end's answer"},
        },
        "$defs": definitions,
    }
