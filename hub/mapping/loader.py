"""Load mapping files, their code tables and fragments, into compiled :class:`Mapping` objects.

The folder layout an integration engineer works in::

    mappings/
      etat-civil/request-act-copy.yaml     a mapping (any sub-folder, any name)
      tables/sex.yaml, tables/*.csv        shared code tables
      fragments/address.yaml               reusable field blocks
      schemas/*.json                       source/target JSON Schemas mappings refer to
      tests/<mapping name>/*.yaml          test cases, run by ``hub mappings test`` and pytest

Every issue of every file is collected and raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.mapping.compiler import Compiler, FieldMeta, Fragment, PathRead
from hub.mapping.errors import MappingFailed
from hub.mapping.formats import Renderer
from hub.mapping.schemas import SchemaError, json_schema, wsdl_message_schema
from hub.mapping.spec import FragmentFile, MappingFile
from hub.mapping.tables import Table, load_tables
from hub.validation import validate_document
from hub.yamlfile import ConfigError, ConfigIssue, YamlDocument, load_yaml, misnamed_yaml

RESERVED = ("tables", "fragments", "schemas", "tests")


@dataclass(frozen=True)
class FieldTrace:
    """One line of ``hub mappings explain``: a target field and how its value was made."""

    target: str
    source: str | None
    transforms: tuple[str, ...]
    raw: Any
    value: Any


class Mapping:
    """A compiled mapping file. :meth:`apply` maps one document into the target record;
    :meth:`render` gives it in the target format; :meth:`explain` says how each field was made."""

    def __init__(
        self,
        spec: MappingFile,
        path: str,
        function: Any,
        tracer: Any,
        metas: list[FieldMeta],
        document: YamlDocument,
        reads: tuple[PathRead, ...] = (),
        produces: dict[str, Any] | None = None,
    ) -> None:
        self.spec, self.path, self.document = spec, path, document
        self.name = spec.mapping
        # For the flows using it: the absolute paths it reads (checked against each flow's
        # document at the step using it) and the schema of the record it builds.
        self.reads = reads
        self.produces = produces if produces is not None else {}
        self._apply, self._tracer, self._metas = function, tracer, metas
        self.renderer = Renderer(spec.mapping, spec.target, spec.fields)

    @property
    def format(self) -> str:
        return self.renderer.format

    def apply(self, document: Any) -> dict[str, Any]:
        """The mapped record; raise :class:`MappingFailed` naming field, source and masked value."""
        return self._apply(document, None)

    def render(self, document: Any) -> Any:
        """The record in the target format: a dict (json, soap), a line (csv, fixed_width) or XML text."""
        try:
            return self.renderer.render(self._apply(document, None))
        except MappingFailed as exc:
            if exc.mapping:
                raise
            raise MappingFailed(self.name, exc.field or "(line)", None, exc.reason, exc.value) from None

    def explain(self, document: Any) -> tuple[list[FieldTrace], MappingFailed | None]:
        """Every leaf field written, with its source path, transforms, raw and final value; and the
        error that stopped the mapping, if any (the fields before it are still explained)."""
        calls: list[tuple[int, tuple[int, ...], Any, Any]] = []
        error = None
        try:
            self._tracer(document, calls)
        except MappingFailed as exc:
            error = exc
        traces = []
        for meta_index, indexes, raw, value in calls:
            meta = self._metas[meta_index]
            traces.append(FieldTrace(meta.target.format(*indexes), meta.source, meta.transforms, raw, value))
        return traces, error


def load_mapping(
    path: str | Path, *, tables: dict[str, Table] | None = None, fragments: dict[str, Fragment] | None = None
) -> Mapping:
    """Load one mapping file. Tables and fragments default to those of the folder's ``mappings/``
    root (the nearest parent holding ``tables/`` or ``fragments/``)."""
    path = Path(path)
    if tables is None or fragments is None:
        root = _mappings_root(path)
        issues: list[ConfigIssue] = []
        if tables is None:
            tables = _collect(lambda: load_tables(root / "tables"), issues) if root else {}
        if fragments is None:
            fragments = _collect(lambda: load_fragments(root / "fragments"), issues) if root else {}
        if issues:
            raise ConfigError(issues)
    return _compile(path, tables or {}, fragments or {})


def load_mappings(folder: Path) -> dict[str, Mapping]:
    """Every mapping under ``folder`` by name, compiled; one ConfigError with every issue."""
    # tables/ reads *.yml as well (hub.mapping.tables); everywhere else only *.yaml is read
    issues: list[ConfigIssue] = misnamed_yaml(
        p for p in folder.rglob("*") if p.relative_to(folder).parts[0] != "tables"
    )
    tables = _collect(lambda: load_tables(folder / "tables"), issues) or {}
    fragments = _collect(lambda: load_fragments(folder / "fragments"), issues) or {}
    mappings: dict[str, Mapping] = {}
    for path in sorted(folder.rglob("*.yaml")):
        if path.relative_to(folder).parts[0] in RESERVED:
            continue
        mapping = _collect(lambda path=path: _compile(path, tables, fragments), issues)
        if mapping is None:
            continue
        if mapping.name in mappings:
            issues.append(
                mapping.document.issue(
                    ("mapping",),
                    f"mapping name {mapping.name!r} already used by {mappings[mapping.name].path}",
                )
            )
            continue
        mappings[mapping.name] = mapping
    if issues:
        raise ConfigError(sorted(set(issues), key=lambda i: (i.file, i.line, i.column, i.message)))
    return mappings


def load_fragments(folder: Path) -> dict[str, Fragment]:
    fragments: dict[str, Fragment] = {}
    issues: list[ConfigIssue] = []
    if not folder.is_dir():
        return fragments
    for path in sorted(folder.rglob("*.yaml")):
        try:
            document = load_yaml(path)
            spec = validate_document(FragmentFile, document)
        except ConfigError as exc:
            issues += exc.issues
            continue
        if spec.fragment in fragments:
            issues.append(
                document.issue(
                    ("fragment",),
                    f"fragment {spec.fragment!r} also defined in {fragments[spec.fragment].document.path}",
                )
            )
            continue
        fragments[spec.fragment] = Fragment(spec, document)
    if issues:
        raise ConfigError(issues)
    return fragments


def _collect(load: Any, issues: list[ConfigIssue]) -> Any:
    try:
        return load()
    except ConfigError as exc:
        issues += exc.issues
        return None


def _mappings_root(path: Path) -> Path | None:
    for parent in path.resolve().parents:
        if (parent / "tables").is_dir() or (parent / "fragments").is_dir():
            return parent
    return None


def _compile(path: Path, tables: dict[str, Table], fragments: dict[str, Fragment]) -> Mapping:
    document = load_yaml(path)
    spec = validate_document(MappingFile, document)
    issues: list[ConfigIssue] = []
    source_schema = target_schema = None
    if spec.source is not None and spec.source.schema_ is not None:
        source_schema = _schema(
            lambda: json_schema((path.parent / spec.source.schema_).resolve()),
            document,
            ("source", "schema"),
            issues,
        )
    if spec.source is not None and spec.source.wsdl is not None:
        answer = spec.source.wsdl
        response = _schema(
            lambda: wsdl_message_schema(
                (path.parent / answer.file).resolve(), answer.operation, answer.message
            ),
            document,
            ("source", "wsdl"),
            issues,
        )
        if response is not None:
            source_schema = _with_response(source_schema, response)
    target = spec.target
    if target is not None and target.schema_ is not None:
        target_schema = _schema(
            lambda: json_schema((path.parent / target.schema_).resolve()),
            document,
            ("target", "schema"),
            issues,
        )
    if target is not None and target.wsdl is not None:
        wsdl = target.wsdl
        target_schema = _schema(
            lambda: wsdl_message_schema((path.parent / wsdl.file).resolve(), wsdl.operation, wsdl.message),
            document,
            ("target", "wsdl"),
            issues,
        )
    if target is not None and target.format in ("csv", "fixed_width"):
        _check_flat(spec, document, issues)
    builds = []
    for trace in (False, True):
        compiler = Compiler(
            spec.mapping,
            tables,
            fragments,
            source_schema=source_schema,
            target_schema=target_schema,
            xml_names=target is not None and target.format == "xml",
            trace=trace,
        )
        function = compiler.compile(spec.fields, document)
        builds.append((function, compiler))
        if compiler.issues:
            issues += compiler.issues
            break
    if issues:
        raise ConfigError(issues)
    (function, compiler), (tracer, tracing) = builds
    return Mapping(
        spec, str(path), function, tracer, tracing.metas, document, tuple(compiler.reads), compiler.produces
    )


def _schema(
    read: Any, document: YamlDocument, location: tuple, issues: list[ConfigIssue]
) -> dict[str, Any] | None:
    try:
        return read()
    except SchemaError as exc:
        issues.append(document.issue(location, str(exc)))
        return None


def _with_response(schema: dict[str, Any] | None, response: dict[str, Any]) -> dict[str, Any]:
    """The source schema of an answer mapping: the document's schema with ``response`` replaced by
    the WSDL message (the rest of the document left open when no schema is declared)."""
    if schema is None:
        return {"type": "object", "properties": {"response": response}}
    return {**schema, "properties": {**schema.get("properties", {}), "response": response}}


def _check_flat(spec: MappingFile, document: YamlDocument, issues: list[ConfigIssue]) -> None:
    """A file line is flat: every top-level field a value, each a column (fixed width: declared)."""
    for name, field in spec.fields.items():
        if field.fields is not None or field.fragment is not None or field.each is not None:
            issues.append(
                document.issue(
                    ("fields", name),
                    f"{name}: a {spec.target.format} line holds values, not blocks or arrays",
                )
            )
    layout = spec.target.fixed_width if spec.target else None
    if layout is not None:
        missing = [name for name in spec.fields if name not in layout.columns]
        extra = [name for name in layout.columns if name not in spec.fields]
        if missing:
            issues.append(
                document.issue(
                    ("target", "fixed_width", "columns"),
                    f"no column width for field(s): {', '.join(missing)}",
                )
            )
        if extra:
            issues.append(
                document.issue(
                    ("target", "fixed_width", "columns"), f"column(s) without a field: {', '.join(extra)}"
                )
            )
