"""Flow files: one per démarche, an ordered list of steps the worker runs for a request.

Steps (first form): ``map`` a document with a mapping file, ``call`` a system operation with a
mapped message, ``set_status``, and ``wait_until`` (call an operation again later until its
answer meets a condition, e.g. the registry reports the act issued). Routing, events and more
step kinds grow from this in later issues. Loading checks every reference (systems, purposes,
mappings), every path the flow and its mappings read (hub.flow_paths) and compiles the flow's
input JSON Schema once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import jsonschema
from jsonpath_ng import JSONPath
from jsonpath_ng.ext import parse as parse_jsonpath
from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.ged import FILING_FIELDS
from hub.config import HubConfig
from hub.flow_paths import check_flow_paths
from hub.mapping import Mapping
from hub.mapping.conditions import Predicate, compile_condition
from hub.mapping.paths import CompiledPath, PathError, compile_path
from hub.mapping.schemas import wsdl_operation_names
from hub.mapping.spec import Condition as StepCondition
from hub.validation import validate_document
from hub.yamlfile import ConfigError, ConfigIssue, YamlDocument, load_yaml, misnamed_yaml

StepId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
STATUSES = ("received", "processing", "submitted", "completed", "rejected", "failed")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallSpec(_Strict):
    system: str
    operation: str = Field(min_length=1)
    mapping: str | None = Field(None, description="mapping that builds the message")
    message: str | None = Field(None, description="a document saved by an earlier step, as the message")
    response_mapping: str | None = None

    @model_validator(mode="after")
    def _one_message(self) -> CallSpec:
        if (self.mapping is None) == (self.message is None):
            raise ValueError("a call needs exactly one of 'mapping' or 'message'")
        return self


class Condition(_Strict):
    """What a polled answer is waited for (``until``) or failed on (``fail_when``)."""

    path: str
    equals: Any


class WaitUntil(CallSpec):
    until: Condition
    fail_when: Condition | None = None
    every_s: float = Field(1.0, gt=0, description="the first interval between two calls")
    backoff: float = Field(
        1.0,
        ge=1.0,
        le=10.0,
        description="growth of the interval: the next call comes after (backoff - 1) x the time "
        "since filing, within [every_s, max_every_s]; 1 keeps every_s",
    )
    max_every_s: float | None = Field(None, gt=0, description="the longest interval (default every_s)")
    timeout_s: float = Field(86400.0, gt=0)

    @model_validator(mode="after")
    def _interval_bounds(self) -> WaitUntil:
        if self.max_every_s is not None and self.max_every_s < self.every_s:
            raise ValueError(f"max_every_s ({self.max_every_s}) must be at least every_s ({self.every_s})")
        return self

    def next_interval_s(self, waited_s: float) -> float:
        """Seconds until the next call, ``waited_s`` after filing: a back-end that answers in days
        is asked a few times an hour, not every half second (each call is a journal row)."""
        longest = self.max_every_s if self.max_every_s is not None else self.every_s
        return min(longest, max(self.every_s, (self.backoff - 1.0) * waited_s))


class MapSpec(_Strict):
    mapping: str


class DocumentContent(_Strict):
    """Where the bytes of a document to file come from: exactly one of the two."""

    mapping: str | None = Field(None, description="a mapping that renders the document (its target format)")
    base64: str | None = Field(
        None, description="JSONPath to base64 text in the request (a justificatif the portal attached)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> DocumentContent:
        if (self.mapping is None) == (self.base64 is None):
            raise ValueError("a document's content needs exactly one of 'mapping' or 'base64'")
        return self


class FileDocumentSpec(_Strict):
    """File a document the request produced or attached into a documents (GED) system; the step
    keeps its claim check (reference, digest, size), never its bytes."""

    system: str
    content: DocumentContent
    metadata: str = Field(description="mapping that builds the GED metadata: title, type, filename")
    content_type: str = Field("application/octet-stream", pattern=r"^[\w.+-]+/[\w.+-]+$")
    data_categories: list[str] = Field(
        description="personal-data categories the document holds (checked against the flow's purpose)"
    )


STEP_KINDS = ("map", "call", "wait_until", "set_status", "file_document")


class StatusFrom(_Strict):
    """The status an answer mapping produced: ``set_status: {from: $.steps.act_status.status}``."""

    from_: str = Field(alias="from", description="JSONPath to a hub status an earlier step saved")


class Step(_Strict):
    id: StepId
    map: MapSpec | None = None
    call: CallSpec | None = None
    wait_until: WaitUntil | None = None
    set_status: Literal["processing", "submitted", "completed", "rejected"] | StatusFrom | None = None
    file_document: FileDocumentSpec | None = None
    save_as: StepId | None = Field(None, description="keep the step's result under steps.<name>")
    when: StepCondition | None = Field(
        None,
        description="run the step only when this condition (the mapping files' language: equals, "
        "contains, exists, in, all, any, not...) holds; otherwise it is skipped (the timeline says "
        "so, and its save_as stays unset)",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"step {self.id!r} needs exactly one of {', '.join(STEP_KINDS)}"
                f" (got {', '.join(kinds) or 'none'})"
            )
        return self

    @model_validator(mode="after")
    def _filing_kept(self) -> Step:
        # The claim check is what lets an agent retrieve the document later: it must be saved.
        if self.file_document is not None and not self.save_as:
            raise ValueError(f"step {self.id!r} files a document: it needs save_as to keep its claim check")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)


class FlowFile(_Strict):
    flow: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]
    title: str
    purpose: str
    input: dict[str, Any] = Field(description="JSON Schema of the request's 'data'")
    steps: list[Step] = Field(min_length=1)


@dataclass(frozen=True)
class Flow:
    """A loaded flow: its file, compiled input schema, resolved mappings and conditions."""

    spec: FlowFile
    path: str
    validator: jsonschema.protocols.Validator
    mappings: dict[str, Mapping]
    conditions: dict[str, JSONPath]  # "<step id>.until" / ".fail_when" of wait_until steps
    document: YamlDocument  # to locate later cross-checks at file:line
    # step id -> its compiled path: set_status.from, or file_document.content.base64
    step_paths: dict[str, CompiledPath] = field(default_factory=dict)
    # A step or mapping reads $.golden.identifiers: the runner then reads the citizen's
    # cross-references for it (other flows skip the query).
    reads_identifiers: bool = False
    # step id -> its compiled ``when`` (a predicate over the flow document)
    guards: dict[str, Predicate] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.flow

    @property
    def steps(self) -> list[Step]:
        return self.spec.steps

    def input_errors(self, data: Any) -> list[dict[str, Any]]:
        """Schema violations of the request data, each with its field path."""
        errors = []
        for error in sorted(self.validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
            field = "data" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            errors.append({"field": field, "message": error.message})
        return errors


def load_flow(path: Path, config: HubConfig, mappings: dict[str, Mapping]) -> Flow:
    document = load_yaml(path)
    spec = validate_document(FlowFile, document)
    issues = _check_references(spec, document, config, mappings)
    input_ok = True
    try:
        jsonschema.Draft202012Validator.check_schema(spec.input)
    except jsonschema.SchemaError as exc:
        input_ok = False
        issues.append(document.issue(("input", *exc.absolute_path), f"invalid JSON Schema: {exc.message}"))
    for location, problem in _unresolvable_refs(spec.input, spec.input, ("input",)):
        input_ok = False
        issues.append(document.issue(location, problem))
    # $.data against the input schema only when it is one (its own errors are reported above)
    issues += check_flow_paths(spec, document, config, mappings, input_ok)
    conditions: dict[str, JSONPath] = {}
    guards: dict[str, Predicate] = {}
    for index, step in enumerate(spec.steps):
        if step.when is not None:
            where = ("steps", index, "when")
            problems = _condition_issues(step.when, where, document)
            issues += problems
            if not problems:
                guards[step.id] = compile_condition(step.when)
        if step.wait_until is not None:
            for key in ("until", "fail_when"):
                condition = getattr(step.wait_until, key)
                if condition is None:
                    continue
                try:
                    conditions[f"{step.id}.{key}"] = parse_jsonpath(condition.path)
                except Exception as exc:
                    issues.append(
                        document.issue(
                            ("steps", index, "wait_until", key, "path"),
                            f"invalid JSONPath {condition.path!r}: {exc}",
                        )
                    )
    step_paths: dict[str, CompiledPath] = {}
    for index, step in enumerate(spec.steps):
        if isinstance(step.set_status, StatusFrom):
            try:
                step_paths[step.id] = compile_path(step.set_status.from_)
            except PathError as exc:
                issues.append(document.issue(("steps", index, "set_status", "from"), str(exc)))
        elif step.file_document is not None and step.file_document.content.base64 is not None:
            try:
                step_paths[step.id] = compile_path(step.file_document.content.base64)
            except PathError as exc:
                issues.append(
                    document.issue(("steps", index, "file_document", "content", "base64"), str(exc))
                )
    if issues:
        raise ConfigError(issues)
    used = {name: mappings[name] for name in _mapping_names(spec)}
    validator = jsonschema.Draft202012Validator(
        spec.input, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    documents = (document.data, *(mapping.document.data for mapping in used.values()))
    reads_identifiers = any(_mentions(node, GOLDEN_IDENTIFIERS) for node in documents)
    return Flow(spec, str(path), validator, used, conditions, document, step_paths, reads_identifiers, guards)


def _condition_issues(condition: StepCondition, where: tuple, document: YamlDocument) -> list[ConfigIssue]:
    """Each problem of a ``when`` at the line of the part it is in (``when.all[1].path``): a path
    that does not parse or reads the current item (``@``: a step has none), a bad regex."""
    for key, parts in (("all", condition.all), ("any", condition.any)):
        if parts is not None:
            return [
                issue
                for number, part in enumerate(parts)
                for issue in _condition_issues(part, (*where, key, number), document)
            ]
    if condition.not_ is not None:
        return _condition_issues(condition.not_, (*where, "not"), document)
    assert condition.path is not None
    try:
        path = compile_path(condition.path)
    except PathError as exc:
        return [document.issue((*where, "path"), str(exc))]
    if path.relative:
        return [
            document.issue(
                (*where, "path"),
                f"{condition.path!r}: a step's condition reads the flow document from $ "
                "($.data, $.citizen, $.golden, $.steps), not @",
            )
        ]
    try:
        compile_condition(condition)
    except ValueError as exc:  # a regular expression that does not compile
        return [document.issue((*where, "matches"), str(exc))]
    return []


GOLDEN_IDENTIFIERS = "$.golden.identifiers"


def _mentions(node: Any, text: str) -> bool:
    """Whether any string in a YAML document's data contains ``text``."""
    if isinstance(node, str):
        return text in node
    if isinstance(node, dict):
        return any(_mentions(value, text) for value in node.values())
    if isinstance(node, list):
        return any(_mentions(value, text) for value in node)
    return False


def _unresolvable_refs(node: Any, root: dict[str, Any], location: tuple) -> list[tuple[tuple, str]]:
    """``$ref`` must point inside the schema itself: a request must never fail on a dangling one."""
    found: list[tuple[tuple, str]] = []
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            problem = None
            if not ref.startswith("#"):
                problem = f"$ref {ref!r}: only references inside this schema (#/...) are allowed"
            elif _pointer(root, ref[1:]) is _NOWHERE:
                problem = f"$ref {ref!r} points to nothing in this schema"
            if problem:
                found.append(((*location, "$ref"), problem))
        for key, value in node.items():
            found += _unresolvable_refs(value, root, (*location, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _unresolvable_refs(value, root, (*location, index))
    return found


_NOWHERE = object()


def _pointer(document: Any, pointer: str) -> Any:
    """Resolve a JSON pointer (RFC 6901, URL-decoded) or return ``_NOWHERE``."""
    if not pointer:
        return document
    if not pointer.startswith("/"):
        return _NOWHERE  # anchors ("#name") are not supported in flow input schemas
    current = document
    for part in unquote(pointer).split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _NOWHERE
    return current


def _mapping_names(spec: FlowFile) -> list[str]:
    names = []
    for step in spec.steps:
        for part in (step.map, step.call, step.wait_until):
            if part is None:
                continue
            names += [n for n in (part.mapping, getattr(part, "response_mapping", None)) if n]
        if step.file_document is not None:
            names += [n for n in (step.file_document.content.mapping, step.file_document.metadata) if n]
    return names


def _check_references(
    spec: FlowFile, document: YamlDocument, config: HubConfig, mappings: dict[str, Mapping]
) -> list[ConfigIssue]:
    issues = []
    if spec.purpose not in config.purposes:
        issues.append(
            document.issue(
                ("purpose",),
                (f"unknown purpose {spec.purpose!r}; valid (config purposes): {', '.join(config.purposes)}"),
            )
        )
    seen: dict[str, int] = {}
    saved: set[str] = set()
    for index, step in enumerate(spec.steps):
        where = ("steps", index)
        if step.id in seen:
            issues.append(document.issue((*where, "id"), f"duplicate step id {step.id!r}"))
        seen[step.id] = index
        part = step.map or step.call or step.wait_until
        if isinstance(part, CallSpec):
            key = "call" if step.call else "wait_until"
            if part.system not in config.systems:
                issues.append(
                    document.issue(
                        (*where, key, "system"),
                        (
                            f"unknown system {part.system!r}; valid (config systems): "
                            f"{', '.join(config.systems) or 'none'}"
                        ),
                    )
                )
            if part.message is not None and part.message not in saved:
                issues.append(
                    document.issue(
                        (*where, key, "message"),
                        (
                            f"no earlier step saves {part.message!r}; "
                            f"saved so far: {', '.join(sorted(saved)) or 'none'}"
                        ),
                    )
                )
        for attr in ("mapping", "response_mapping"):
            name = getattr(part, attr, None) if part is not None else None
            if name is not None and name not in mappings:
                key = step.kind
                issues.append(
                    document.issue(
                        (*where, key, attr),
                        (f"unknown mapping {name!r}; valid: {', '.join(sorted(mappings)) or 'none'}"),
                    )
                )
        if isinstance(part, CallSpec):
            issues += _check_wsdl_messages(part, step.kind, where, document, mappings)
        if step.file_document is not None:
            issues += _check_file_document(step.file_document, where, document, config, mappings)
        if step.save_as:
            saved.add(step.save_as)
    return issues


def _check_file_document(
    spec: FileDocumentSpec,
    where: tuple,
    document: YamlDocument,
    config: HubConfig,
    mappings: dict[str, Mapping],
) -> list[ConfigIssue]:
    """The system must be a documents (GED) one, the mappings known, and what the document holds
    within the categories of the flow's purpose (checked with the purpose, in hub.runtime)."""
    issues = []
    here = (*where, "file_document")
    system = config.systems.get(spec.system)
    documents = [name for name, s in config.systems.items() if s.kind == "documents"]
    if system is None or system.kind != "documents":
        problem = "unknown system" if system is None else f"system of kind {system.kind!r}"
        issues.append(
            document.issue(
                (*here, "system"),
                f"{problem} {spec.system!r}: documents are filed into a documents system; "
                f"valid: {', '.join(documents) or 'none (add a system of kind documents)'}",
            )
        )
    for location, name in (
        ((*here, "content", "mapping"), spec.content.mapping),
        ((*here, "metadata"), spec.metadata),
    ):
        if name is not None and name not in mappings:
            issues.append(
                document.issue(
                    location, f"unknown mapping {name!r}; valid: {', '.join(sorted(mappings)) or 'none'}"
                )
            )
    metadata = mappings.get(spec.metadata)
    if metadata is not None:
        # The GED's filing fields are known now: a typo here would dead-letter every request later.
        built = set(metadata.spec.fields)
        unknown, missing = (
            sorted(built - set(FILING_FIELDS)),
            [f for f in ("title", "type") if f not in built],
        )
        if unknown or missing:
            issues.append(
                document.issue(
                    (*here, "metadata"),
                    f"mapping {spec.metadata!r} builds unknown fields {unknown}, lacks {missing}; "
                    f"the GED's metadata is {', '.join(FILING_FIELDS)} (title and type required)",
                )
            )
    return issues


def _check_wsdl_messages(
    call: CallSpec, key: str, where: tuple, document: YamlDocument, mappings: dict[str, Mapping]
) -> list[ConfigIssue]:
    """A mapping that declares the WSDL message it builds (or reads) must be used for that
    operation: the request mapping of RequestActCopy sent to GetActRequestStatus is a mistake
    the back-end would only reveal at run time."""
    issues = []
    for attr, side in (("mapping", "target"), ("response_mapping", "source")):
        mapping = mappings.get(getattr(call, attr) or "")
        declared = getattr(mapping.spec, side) if mapping is not None else None
        wsdl = declared.wsdl if declared is not None else None
        if wsdl is None or wsdl.operation == call.operation:
            continue
        # An operation the WSDL does not have at all is reported by the system check instead.
        if call.operation in wsdl_operation_names((Path(mapping.path).parent / wsdl.file).resolve()):
            issues.append(
                document.issue(
                    (*where, key, attr),
                    f"mapping {mapping.name} is for {wsdl.operation} ({wsdl.message}) "
                    f"but this step calls {call.operation}",
                )
            )
    return issues


def load_flows(folder: Path, config: HubConfig, mappings: dict[str, Mapping]) -> dict[str, Flow]:
    flows: dict[str, Flow] = {}
    issues: list[ConfigIssue] = misnamed_yaml(folder.glob("*"))
    for path in sorted(folder.glob("*.yaml")):
        try:
            flow = load_flow(path, config, mappings)
        except ConfigError as exc:
            issues += exc.issues
            continue
        if flow.name in flows:
            other = flows[flow.name].path
            issues.append(ConfigIssue(str(path), 1, 1, f"flow {flow.name!r} also defined in {other}"))
            continue
        flows[flow.name] = flow
    if issues:
        raise ConfigError(issues)
    return flows
