"""What a flow's JSONPaths may read, checked at load against the shape of the flow document.

A flow's conditions (``when``, ``until``, ``fail_when``), its ``set_status: {from: ...}``, a
``file_document``'s ``base64`` path and every absolute path of the mappings its steps use all
read one JSON document (docs/flows.md, "The flow document"), whose shape is known at each step:

- ``$.request``: the request's id, flow, client and created_at;
- ``$.citizen``: the identity schema common to every flow (``master_data.identity``);
- ``$.golden``: the golden id and each system's identifier of the person (``identifiers`` holds
  only systems of hub.yaml and the portal: ``hub citizens import`` and the portal refuse others);
- ``$.data``: the flow's own ``input`` JSON Schema;
- ``$.steps.<name>``: only names that an earlier step saves (``save_as``); under a name, what
  that step saves: the record its mapping or response mapping builds (``Mapping.produces``), the
  answer of its operation when the system describes it (a SOAP operation's WSDL output message,
  the finances connector's answers), a filed document's claim check;
- ``$.response``: only in a response mapping and a ``wait_until``'s ``until``/``fail_when``:
  the answer of the step's operation, as above.

A typo there used to pass ``hub config check`` and then skip a step for ever (``when`` on
``$.data.delivry``), fail every request (``set_status`` from ``$.steps.act_statut.status``) or
wait 30 days (``until`` a status the registry never answers). Now each is an error at its
file:line naming what would be valid: a path the shape proves can never match; a value a
condition tests that the schema says the path never holds; a ``set_status: {from}`` whose
values are known and not all statuses.

Not checked, because nothing declares it: ``@`` paths (the current item of a mapping's
``each``); what follows a descendant (``..``) or a function in a path; what lies under an open
part of a schema (no ``additionalProperties: false``); the answers of REST and GED operations;
the values of a field built by a transform other than a code table (the last transform).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from connectors.finances import FinancesConnector
from hub.config import HubConfig
from hub.mapping import Mapping
from hub.mapping.compiler import PathRead
from hub.mapping.conditions import condition_leaves
from hub.mapping.jsonschema import portal_request_schema
from hub.mapping.paths import CompiledPath, PathError, compile_path, reach, values_of
from hub.mapping.schemas import SchemaError, wsdl_message_schema
from hub.yamlfile import ConfigIssue, YamlDocument

# What set_status can set (hub.flows and the runner read it from here).
SETTABLE = ("processing", "submitted", "completed", "rejected")
# The claim check a file_document step saves (hub.runner.FlowRunner._file).
CLAIM_CHECK: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "system": {"type": "string"},
        "document_id": {"type": "string"},
        "sha256": {"type": "string"},
        "size": {"type": "integer"},
        "content_type": {"type": "string"},
    },
}
# A condition's tests that compare with values, and the YAML key each is written with.
_VALUE_TESTS = (("equals", "equals"), ("not_equals", "not_equals"), ("in_", "in"), ("not_in", "not_in"))


@dataclass(frozen=True)
class Part:
    """One known part of the flow document: its schema (None: not described), the root its
    ``$ref`` read, and what it is, in the words of an error message."""

    schema: dict[str, Any] | None
    root: dict[str, Any]
    name: str


@dataclass(frozen=True)
class View:
    """The flow document as one step of a flow reads it."""

    flow: str
    step: str
    parts: dict[str, Part]  # request, citizen, golden, data
    saved: dict[str, Part]  # what the steps before this one saved, by name
    response: Part | None = None  # None: this reader has no $.response

    def reading(self, response: Part) -> View:
        return View(self.flow, self.step, self.parts, self.saved, response)


def check_flow_paths(
    spec: Any, document: YamlDocument, config: HubConfig, mappings: dict[str, Mapping], input_ok: bool
) -> list[ConfigIssue]:
    """Every path problem of one flow (a :class:`hub.flows.FlowFile`) and of the mappings its
    steps use, located in the file that holds the path."""
    portal = _portal()
    properties = portal["properties"]
    parts = {
        "request": Part(properties["request"], portal, "the request"),
        "citizen": Part(properties["citizen"], portal, "the citizen schema"),
        "golden": Part(_golden(config, properties["golden"]), portal, "the golden record"),
        "data": Part(spec.input if input_ok else None, spec.input, f"the input schema of flow {spec.flow}"),
    }
    issues: list[ConfigIssue] = []
    saved: dict[str, Part] = {}
    for index, step in enumerate(spec.steps):
        view = View(spec.flow, step.id, parts, dict(saved))
        here = ("steps", index)
        if step.when is not None:
            issues += _condition_issues(step.when, (*here, "when"), document, view)
        call = step.call or step.wait_until
        if step.map is not None:
            issues += _mapping_issues(mappings.get(step.map.mapping), view)
        elif call is not None:
            answered = view.reading(answer_part(config, call.system, call.operation))
            issues += _mapping_issues(mappings.get(call.mapping or ""), view)
            if step.wait_until is not None:
                for key in ("until", "fail_when"):
                    condition = getattr(step.wait_until, key)
                    if condition is not None:
                        where, tests = (*here, "wait_until", key), {"equals": condition.equals}
                        issues += _test_issues(condition.path, where, tests, document, answered)
            issues += _mapping_issues(mappings.get(call.response_mapping or ""), answered)
        elif step.file_document is not None:
            content = step.file_document.content
            if content.base64 is not None:
                where = (*here, "file_document", "content", "base64")
                issues += _path_issues(content.base64, where, document, view)
            issues += _mapping_issues(mappings.get(content.mapping or ""), view)
            issues += _mapping_issues(mappings.get(step.file_document.metadata), view)
        elif step.set_status is not None and not isinstance(step.set_status, str):
            issues += _status_issues(step.set_status.from_, (*here, "set_status", "from"), document, view)
        if step.save_as:
            saved[step.save_as] = _saved_part(step, config, mappings)
    return issues


def _golden(config: HubConfig, golden: dict[str, Any]) -> dict[str, Any]:
    """The golden record's schema with ``identifiers`` closed to the systems that can have one."""
    systems = sorted({*config.systems, config.master_data.portal_system})
    identifiers = {
        **golden["properties"]["identifiers"],
        "properties": {system: {"type": "string"} for system in systems},
        "additionalProperties": False,
    }
    return {**golden, "properties": {**golden["properties"], "identifiers": identifiers}}


def answer_part(config: HubConfig, system: str, operation: str) -> Part:
    """What ``system.operation`` answers, when the system describes it."""
    name = f"the answer of {system}.{operation}"
    found = config.systems.get(system)
    schema = None
    if found is not None and found.kind == "soap" and found.wsdl is not None:
        try:
            schema = wsdl_message_schema(config.resolve(found.wsdl), operation, "output")
        except SchemaError:
            schema = None  # an unknown operation or a bad WSDL is reported by its own check
    elif found is not None and found.kind == "sftp":
        schema = FinancesConnector.ANSWERS.get(operation)
    return Part(schema, schema or {}, name)


def _saved_part(step: Any, config: HubConfig, mappings: dict[str, Mapping]) -> Part:
    """What a step keeps under its ``save_as`` name (hub.runner.FlowRunner._run)."""
    call = step.call or step.wait_until
    mapping = None
    if step.map is not None:
        mapping = mappings.get(step.map.mapping)
    elif call is not None and call.response_mapping is not None:
        mapping = mappings.get(call.response_mapping)
    elif call is not None:
        answer = answer_part(config, call.system, call.operation)
        return Part(answer.schema, answer.root, f"what step {step.id!r} saves ({answer.name})")
    elif step.file_document is not None:
        return Part(CLAIM_CHECK, CLAIM_CHECK, f"what step {step.id!r} saves (a document's claim check)")
    elif step.set_status is not None:
        return Part({"type": "null"}, {}, f"what step {step.id!r} saves (nothing: it sets a status)")
    if mapping is None:
        return Part(None, {}, f"what step {step.id!r} saves")
    name = f"what step {step.id!r} saves (the record of mapping {mapping.name})"
    return Part(mapping.produces, mapping.produces, name)


def _reach(path: CompiledPath, view: View) -> tuple[dict[str, Any] | None, str]:
    """The schema of what ``path`` reads in the document ``view`` describes (None: not known) and
    the name of the part it reads; raise PathError when the path can never match."""
    steps = path.checked
    if path.relative or not steps or steps[0].kind != "field":
        return None, "the flow document"
    section, rest = steps[0].arg, steps[1:]
    if section == "steps":
        if not rest or rest[0].kind != "field":
            return None, "the saved steps"
        name = rest[0].arg
        if name not in view.saved:
            before = ", ".join(sorted(view.saved)) or "none"
            raise PathError(
                f"no step before {view.step!r} saves {name!r} (save_as); saved before it: {before}"
            )
        part, walked, rest = view.saved[name], f"$.steps.{name}", rest[1:]
    elif section == "response":
        if view.response is None:
            raise PathError(
                "$.response is the answer of a call: only a step's response_mapping and a "
                "wait_until's until/fail_when read it"
            )
        part, walked = view.response, "$.response"
    elif section in view.parts:
        part, walked = view.parts[section], f"$.{section}"
    else:
        valid = [*view.parts, "steps", *(["response"] if view.response is not None else [])]
        raise PathError(f"the flow document has no $.{section}; valid: {', '.join(sorted(valid))}")
    reached = reach(rest, part.schema, part.root, walked, part.name)
    return (reached if path.steps is not None else None), part.name


def _compiled(text: str) -> CompiledPath | None:
    try:
        return compile_path(text)
    except PathError:
        return None  # reported where the path is compiled (flow or mapping loading)


def _path_issues(text: str, where: tuple, document: YamlDocument, view: View) -> list[ConfigIssue]:
    path = _compiled(text)
    if path is None:
        return []
    try:
        _reach(path, view)
    except PathError as exc:
        return [document.issue(where, f"{text} can never match: {exc}")]
    return []


def _condition_issues(condition: Any, where: tuple, document: YamlDocument, view: View) -> list[ConfigIssue]:
    issues = []
    for leaf, location in condition_leaves(condition, where):
        tests = {key: getattr(leaf, key) for key in ("equals", "not_equals", "in_", "not_in", "contains")}
        given = {key: value for key, value in tests.items() if key in leaf.model_fields_set}
        issues += _test_issues(leaf.path or "", location, given, document, view)
    return issues


def _test_issues(
    text: str, where: tuple, tests: dict[str, Any], document: YamlDocument, view: View
) -> list[ConfigIssue]:
    """A condition's path at ``(*where, "path")``, and the values it compares with (``tests``:
    equals, not_equals, in_, not_in, contains) against the values the path can hold."""
    path = _compiled(text)
    if path is None:
        return []
    try:
        reached, part = _reach(path, view)
    except PathError as exc:
        return [document.issue((*where, "path"), f"{text} can never match: {exc}")]
    problems = _value_problems(path, reached, part, tests)
    return [document.issue((*where, key), problem) for key, problem in problems]


def _value_problems(
    path: CompiledPath, reached: dict[str, Any] | None, part: str, tests: dict[str, Any]
) -> list[tuple[str, str]]:
    problems = []
    for attribute, key in (*_VALUE_TESTS, ("contains", "contains")):
        if attribute not in tests:
            continue
        schema = reached
        if attribute == "contains" and path.singular:  # a list holding the item
            items = reached.get("items") if isinstance(reached, dict) else None
            schema = items if isinstance(items, dict) else None
        allowed = values_of(schema)
        if allowed is None:
            continue
        given = tests[attribute]
        candidates = given if attribute in ("in_", "not_in") and isinstance(given, list) else [given]
        comparable = [v for v in candidates if v is not None and not isinstance(v, dict | list)]
        never = [v for v in comparable if v not in allowed]
        if never:
            shown = ", ".join(repr(v) for v in never)
            valid = ", ".join(str(v) for v in allowed)
            problems.append((key, f"{path.text} never holds {shown} ({part}); valid: {valid}"))
    return problems


def _status_issues(text: str, where: tuple, document: YamlDocument, view: View) -> list[ConfigIssue]:
    path = _compiled(text)
    if path is None:
        return []
    try:
        reached, part = _reach(path, view)
    except PathError as exc:
        return [document.issue(where, f"{text} can never match: {exc}")]
    values = values_of(reached)
    if values is None:
        return []
    wrong = [v for v in values if v not in SETTABLE]
    if not wrong:
        return []
    return [
        document.issue(
            where,
            f"{text} can be {', '.join(repr(v) for v in wrong)} ({part}), not a status set_status "
            f"sets (every such request would fail invalid_status); valid: {', '.join(SETTABLE)}",
        )
    ]


def _mapping_issues(mapping: Mapping | None, view: View) -> list[ConfigIssue]:
    """The mapping's absolute paths as this step's document has them, at the mapping's lines."""
    if mapping is None:
        return []  # an unknown mapping is reported by the reference check
    issues = []
    for read in mapping.reads:
        issues += _read_issues(read, mapping, view)
    return issues


def _read_issues(read: PathRead, mapping: Mapping, view: View) -> list[ConfigIssue]:
    where = f"in flow {view.flow}, step {view.step!r}"
    if mapping.document.path != read.document.path:
        where += f" (through mapping {mapping.name})"
    try:
        reached, part = _reach(read.path, view)
    except PathError as exc:
        return [read.document.issue(read.location, f"{read.path.text} can never match {where}: {exc}")]
    if read.condition is None:
        return []
    condition = read.condition
    tests = {
        attribute: getattr(condition, attribute)
        for attribute in ("equals", "not_equals", "in_", "not_in", "contains")
        if attribute in condition.model_fields_set
    }
    test_location = read.location[:-1]  # the condition, whose "path" key is read.location
    return [
        read.document.issue((*test_location, key), f"{problem} {where}")
        for key, problem in _value_problems(read.path, reached, part, tests)
    ]


@functools.cache
def _portal() -> dict[str, Any]:
    return portal_request_schema()
