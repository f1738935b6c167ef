"""The OpenAPI document (``/openapi.json``, read by ``/docs``): every answer a route can give.

FastAPI describes parameters and success answers from the routes; it knows nothing of the hub's
error shape, and guesses a ``422 HTTPValidationError`` (``{"detail": [...]}``) that the hub never
sends. Here are the catalogue of error codes (status and meaning, as docs/api.md lists them), the
``responses`` a route declares from the codes it can answer (:func:`error_responses`), and
:func:`complete`, which finishes the document once, when first asked for: the ``Error`` component,
the answers of no route in particular (404 for an unknown path, 405), and one request body per
loaded flow, whose ``data`` is that flow's own ``input`` schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.runtime import Hub

SCHEMAS = "#/components/schemas/"


@dataclass(frozen=True)
class Code:
    """A documented error code: its HTTP status, when it is answered, the headers that come with it."""

    status: int
    when: str
    headers: tuple[str, ...] = ()


CODES: dict[str, Code] = {
    "malformed_json": Code(400, "the body is not JSON (RFC 8259: NaN and Infinity are not JSON)"),
    "invalid_characters": Code(400, "a path or query parameter holds a NUL character"),
    "unauthorized": Code(
        401, "no 'Authorization: Bearer' key, or an unknown or revoked key", ("WWW-Authenticate",)
    ),
    "forbidden": Code(403, "the key lacks the scope (details: required_any_of, granted)"),
    "flow_not_requestable": Code(403, "the flow is the hub's own master-data event flow"),
    "unknown_flow": Code(404, "flow names no loaded flow (details: known_flows)"),
    "not_found": Code(404, "no such resource"),
    "method_not_allowed": Code(405, "the path exists, not with this HTTP method"),
    "system_unknown": Code(409, "the system it was filed in is no longer configured"),
    "golden_record_not_active": Code(409, "a record merged already, or a record with itself"),
    "nothing_to_unmerge": Code(409, "restore was not merged into this record, or was split back"),
    "task_already_decided": Code(409, "the task was decided (details: status, decided_by)"),
    "decided_not_same": Code(409, "link on records a steward decided are not the same person"),
    "same_golden_record": Code(409, "not_same on two records of one golden record: unmerge first"),
    "journal_head_not_authentic": Code(409, "the journal head fails its MAC; nothing is signed"),
    "payload_too_large": Code(413, "the body is over api.max_body_bytes (1 MiB by default)"),
    "unsupported_media_type": Code(415, "the body is not application/json"),
    "validation_failed": Code(422, "a field is invalid (details: [{field, message}], every failing one)"),
    "idempotency_key_reused": Code(422, "the key was used before with another body (details: request_id)"),
    "invalid_checkpoint": Code(422, "a checkpoint that is not this journal's (details: index, problem)"),
    "internal_error": Code(500, "a defect in the hub (logged); never bad input"),
    "document_changed": Code(502, "the GED now holds other bytes than the ones filed"),
    "unavailable": Code(
        503, "the hub's database failed; nothing was changed; retry after Retry-After", ("Retry-After",)
    ),
    "system_unavailable": Code(
        503, "the back-end's circuit is open; retry after Retry-After", ("Retry-After",)
    ),
}

# What any route that authenticates its caller can answer besides its own codes (the key is read
# from the database when not cached, so a database failure is a 503 there too).
AUTHENTICATED = ("unauthorized", "forbidden", "unavailable")
# What a JSON body read by hub.api.body can answer (after authentication).
BODY = ("payload_too_large", "unsupported_media_type", "malformed_json", "validation_failed")

_HEADERS = {
    "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}},
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}},
}

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "description": "Every error answer. Branch on error.code (stable, listed in docs/api.md); "
    "message is for people; details says which fields failed, or facts about the refusal.",
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {
                    "description": "[{field, message}] for invalid fields, an object of facts, or null"
                },
            },
        }
    },
}


def error_responses(
    *codes: str, open_codes: dict[int, str] | None = None, **whens: str
) -> dict[int | str, Any]:
    """A route's error ``responses``: ``codes`` with the catalogue's meaning, ``whens`` with the
    route's own words (``not_found="no such golden record"``), ``open_codes`` for a status whose
    codes another system chooses (the GED's, lower case); ``internal_error`` is always possible."""
    meanings = {code: CODES[code].when for code in (*codes, "internal_error")}
    for code, when in whens.items():
        if code not in CODES:  # a code the catalogue does not know is a mistake in the route
            raise KeyError(f"undocumented error code {code!r}")
        meanings[code] = when
    by_status: dict[int, list[str]] = {}
    for code in meanings:
        by_status.setdefault(CODES[code].status, []).append(code)
    for status in open_codes or {}:
        by_status.setdefault(status, [])
    return {
        status: _response(status, {c: meanings[c] for c in names}, (open_codes or {}).get(status))
        for status, names in sorted(by_status.items())
    }


def _response(status: int, meanings: dict[str, str], open_code: str | None) -> dict[str, Any]:
    described = [f"`{code}`: {when}" for code, when in meanings.items()]
    code_schema: dict[str, Any] = {"enum": list(meanings)}
    if open_code is not None:
        described.append(open_code)
        open_schema = {"type": "string", "description": open_code}
        code_schema = {"anyOf": [code_schema, open_schema]} if meanings else open_schema
    headers = {name for code in meanings for name in CODES[code].headers}
    examples = {
        code: {"summary": when, "value": {"error": {"code": code, "message": when, "details": None}}}
        for code, when in meanings.items()
    }
    response: dict[str, Any] = {
        "description": "; ".join(described),
        "content": {
            "application/json": {
                "schema": {
                    "allOf": [{"$ref": f"{SCHEMAS}Error"}],
                    "properties": {"error": {"properties": {"code": code_schema}}},
                },
                "examples": examples,
            }
        },
    }
    if headers:
        response["headers"] = {name: _HEADERS[name] for name in sorted(headers)}
    return response


# The answers of no route in particular: a path the hub does not serve, a method a path does not
# take. OpenAPI has no place for them under an operation (a generated client never sends them), so
# they are reusable responses, named in the document's description.
ROUTELESS = {
    "NotFound": ("not_found", "no route at this path (a trailing slash is not stripped)"),
    "MethodNotAllowed": ("method_not_allowed", CODES["method_not_allowed"].when),
}


def complete(document: dict[str, Any], hub: Hub) -> dict[str, Any]:
    """The document FastAPI generated, finished: see the module docstring."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                _drop_guessed_validation_errors(operation)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    components["responses"] = {
        name: _response(CODES[code].status, {code: when}, None) for name, (code, when) in ROUTELESS.items()
    }
    schemas.update(flow_request_schemas(hub, schemas.get("RequestBody")))
    _keep_null_details(document)
    return document


def _keep_null_details(document: dict[str, Any]) -> None:
    """FastAPI drops the null values of the responses a route declares: an example's
    ``"details": null`` comes back, as the hub sends it (the Error schema requires it)."""
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            for response in operation.get("responses", {}).values() if isinstance(operation, dict) else ():
                examples = response.get("content", {}).get("application/json", {}).get("examples", {})
                for example in examples.values():
                    error = example.get("value", {}).get("error")
                    if isinstance(error, dict):
                        error.setdefault("details", None)


def _drop_guessed_validation_errors(operation: dict[str, Any]) -> None:
    """FastAPI adds a 422 ``HTTPValidationError`` to every route with parameters that declared no
    422 itself: such a route cannot fail validation (its parameters are free strings)."""
    responses = operation.get("responses", {})
    schema = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if schema.get("$ref") == f"{SCHEMAS}HTTPValidationError":
        del responses["422"]


def flow_request_schemas(hub: Hub, generic: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``RequestBody`` as one variant per flow a client may file (``oneOf``, told apart by their
    ``flow``, a single value), each with the flow's ``input`` schema as ``data``
    (``RequestData.<flow>``): what the hub validates, from the flows it loaded. Without such a
    flow, ``generic`` stays."""
    internal = hub.config.master_data.merge_event_flow
    schemas: dict[str, dict[str, Any]] = {}
    variants: list[str] = []
    for name, flow in sorted(hub.flows.items()):
        if name == internal:
            continue
        data_name, body_name = f"RequestData.{name}", f"RequestBody.{name}"
        schemas[data_name] = _rebased(flow.spec.input, f"{SCHEMAS}{data_name}")
        body = {
            "title": f"{name}: {flow.spec.title}",
            "type": "object",
            "additionalProperties": False,
            "required": ["flow", "citizen"],
            "properties": {
                # one value: an enum, which Swagger UI's examples show (they skip a const)
                "flow": {"type": "string", "enum": [name], "description": flow.spec.title},
                "citizen": {"$ref": f"{SCHEMAS}CitizenIdentity"},
                "data": {"$ref": f"{SCHEMAS}{data_name}"},
            },
        }
        if flow.input_errors({}):  # an omitted data is {}: required when {} is refused
            body["required"] = ["flow", "citizen", "data"]
        schemas[body_name] = body
        variants.append(f"{SCHEMAS}{body_name}")
    if not variants:
        return {"RequestBody": generic} if generic is not None else {}
    # No "discriminator": each variant's flow has one value, which tells them apart already, and
    # Swagger UI leaves the discriminating property out of its example body (then refused).
    schemas["RequestBody"] = {
        "title": "RequestBody",
        "description": "What the portal posts: the flow (démarche), the citizen's identity, and the "
        "request data its flow's input schema validates. One variant per flow loaded at start-up.",
        "oneOf": [{"$ref": ref} for ref in variants],
    }
    return schemas


def _rebased(schema: dict[str, Any], base: str) -> dict[str, Any]:
    """A flow's input schema placed at ``base``: its own references (``#/$defs/...``, checked at
    load to point inside it) are rewritten to point there, not at the document's root."""

    def rebase(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: base + value[1:] if key == "$ref" and isinstance(value, str) else rebase(value)
                for key, value in node.items()
                if not (node is schema and key == "$id")  # its own base would redirect the refs
            }
        if isinstance(node, list):
            return [rebase(item) for item in node]
        return node

    return rebase(schema)  # a new document: the flow's own schema is left as loaded
