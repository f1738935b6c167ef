"""Compile a validated mapping file into one Python function, once, at load.

Why generate code: a mapping runs for every message of every flow, and an interpreter walking the
field tree pays a function call, a loop and a few dictionary lookups per field per message. The
generated function is what an engineer would write by hand (``out["birthName"] = doc["citizen"]
["birth_name"]`` inside a ``try``), with transforms, tables and conditions bound as local
constants, so a mapping costs close to the hand-written function (see ``bench/mapping.py``).

Safety: nothing from a mapping file is ever pasted into the source text. Names, constants,
keys, paths and transforms go into the function's namespace as objects and the code refers to
them by generated identifiers (``k12``); only those identifiers and fixed snippets make up the
source. The same generator, with ``trace=True``, builds the ``explain`` variant that records, for
every target field, where its value came from.

Every problem found while compiling (bad JSONPath, unknown transform or table, a target the
target schema does not have, a source path the source schema proves can never match, a ``ref``
to a field not declared before) becomes a :class:`ConfigIssue` at the file:line:col of the key.

The compiler also notes what a flow needs to check the mapping in its place (``hub.flow_paths``):
every absolute path it reads, with its line (``reads``), and the shape of the record it builds
(``produces``: a closed object schema, with the values of a field when they are known: a
constant, a code table's values, an enumerated source copied as is).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from hub.mapping import transforms as tx
from hub.mapping.conditions import compile_condition, condition_leaves
from hub.mapping.errors import MappingFailed
from hub.mapping.paths import MISSING, CompiledPath, PathError, compile_path, sub_schema, values_of
from hub.mapping.spec import Condition, FieldSpec, FragmentFile
from hub.mapping.tables import Table, TableArgs, outputs_of, table_transform
from hub.validation import issues_from
from hub.yamlfile import ConfigIssue, Location, YamlDocument

CAUGHT = (ValueError, TypeError, LookupError, ArithmeticError)
_XML_NAME = re.compile(r"^@?[A-Za-z_][\w.-]*$")


@dataclass(frozen=True)
class FieldMeta:
    """What an error or an explanation says about one leaf field."""

    target: str  # with {} where item indexes go: children[{}].birthDate
    source: str | None
    transforms: tuple[str, ...]


@dataclass(frozen=True)
class PathRead:
    """An absolute path a mapping reads (a field's source, a condition's path), where it is written
    (in the mapping or a fragment it includes); ``condition`` is the test when it is a condition's."""

    path: CompiledPath
    document: YamlDocument
    location: Location
    condition: Condition | None = None


@dataclass(frozen=True)
class Fragment:
    spec: FragmentFile
    document: YamlDocument


@dataclass
class _Scope:
    item: str  # the variable @ paths read: "doc" at the top, an item or fragment node below
    item_schema: dict[str, Any] | None
    indexes: tuple[str, ...]  # loop index variables, outermost first
    in_array: bool


@dataclass(frozen=True)
class _Site:
    """One target field being compiled: its spec and place in the file, the dict variable it is
    written into, its target path (``{}`` where item indexes go), the scope its ``@`` paths read,
    the indentation of its code and the schema of its target (None when undeclared)."""

    name: str
    spec: FieldSpec
    document: YamlDocument
    location: Location
    out: str
    target: str
    scope: _Scope
    indent: int
    schema: dict[str, Any] | None
    shape: dict[str, Any]  # the properties of the produced object this field is written into


@dataclass
class Compiler:
    mapping: str
    tables: dict[str, Table]
    fragments: dict[str, Fragment]
    source_schema: dict[str, Any] | None = None
    target_schema: dict[str, Any] | None = None
    xml_names: bool = False
    trace: bool = False
    issues: list[ConfigIssue] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    namespace: dict[str, Any] = field(default_factory=dict)
    metas: list[FieldMeta] = field(default_factory=list)
    declared: dict[str, str] = field(default_factory=dict)  # dotted target -> its dict variable
    reads: list[PathRead] = field(default_factory=list)
    produced: dict[str, Any] = field(default_factory=dict)  # the top-level fields' schemas
    _counter: int = 0
    _fragment_stack: tuple[str, ...] = ()

    # ------------------------------------------------------------------ entry point

    def compile(self, fields: dict[str, FieldSpec], document: YamlDocument) -> Callable[..., Any]:
        self.namespace.update(M=MISSING, E=CAUGHT, fail=self._fail, deepcopy=copy.deepcopy, agg=_AGGREGATES)
        self._emit(0, "def apply(doc, trace):")
        self._emit(1, "out = {}")
        scope = _Scope("doc", self.source_schema, (), False)
        self._fields(fields, document, ("fields",), "out", "", scope, 1, self.target_schema, self.produced)
        self._emit(1, "return out")
        source = "\n".join(self.lines)
        exec(compile(source, f"<mapping {self.mapping}>", "exec"), self.namespace)
        return self.namespace["apply"]

    # ------------------------------------------------------------------ helpers

    def _emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def _const(self, value: Any) -> str:
        self._counter += 1
        name = f"k{self._counter}"
        self.namespace[name] = value
        return name

    def _var(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    @property
    def produces(self) -> dict[str, Any]:
        """The schema of the record :meth:`compile`'s function returns."""
        return _closed(self.produced)

    def _issue(self, document: YamlDocument, location: Location, message: str) -> None:
        self.issues.append(document.issue(location, message))

    def _fail(self, meta: int, indexes: tuple[int, ...], value: Any, reason: str) -> None:
        info = self.metas[meta]
        raise MappingFailed(self.mapping, info.target.format(*indexes), info.source, reason, value)

    def _path(
        self, text: str, document: YamlDocument, location: Location, scope: _Scope
    ) -> CompiledPath | None:
        try:
            path = compile_path(text)
        except PathError as exc:
            self._issue(document, location, str(exc))
            return None
        base = scope.item_schema if path.relative else self.source_schema
        root = self.source_schema or {}
        try:
            sub_schema(path, base, root)
        except PathError as exc:
            self._issue(document, location, f"{text} can never match: {exc}")
        if not path.relative:
            self.reads.append(PathRead(path, document, location))
        return path

    def _read(self, path: CompiledPath, scope: _Scope) -> str:
        """An expression reading ``path``: inlined subscripts for plain names, else the getter."""
        origin = scope.item if path.relative else "doc"
        names = path.field_names
        if names is not None and path.singular:
            return origin + "".join(f"[{self._const(name)}]" for name in names)
        return f"{self._const(path.get)}({origin})"

    # ------------------------------------------------------------------ blocks

    def _fields(
        self,
        specs: dict[str, FieldSpec],
        document: YamlDocument,
        location: Location,
        out: str,
        prefix: str,
        scope: _Scope,
        indent: int,
        target_schema: dict[str, Any] | None,
        shape: dict[str, Any],
    ) -> None:
        for name, spec in specs.items():
            here = (*location, name)
            child_schema = self._target_child(target_schema, name, document, here)
            if self.xml_names and not _XML_NAME.match(name):
                self._issue(document, here, f"{name!r} is not an XML element name (or @attribute)")
            body_indent = indent
            if spec.when is not None:
                predicate = self._condition(spec.when, document, (*here, "when"))
                if predicate is None:
                    continue
                self._emit(indent, f"if {predicate}(doc, {scope.item}):")
                body_indent += 1
            site = _Site(
                name, spec, document, here, out, f"{prefix}{name}", scope, body_indent, child_schema, shape
            )
            if spec.each is not None:
                self._each(site)
            else:
                self._single(site)
            if spec.when is not None:
                self._emit(body_indent, "pass")

    def _target_child(
        self, schema: dict[str, Any] | None, name: str, document: YamlDocument, location: Location
    ) -> dict[str, Any] | None:
        if schema is None:
            return None
        properties = schema.get("properties")
        if properties is None:
            return None
        if name in properties:
            return properties[name]
        if schema.get("additionalProperties") in (None, False):
            valid = ", ".join(properties) or "none"
            self._issue(
                document, location, f"target {name!r} is not in the target schema; valid here: {valid}"
            )
        return None

    def _single(self, site: _Site) -> None:
        key, indent, out = self._const(site.name), site.indent, site.out
        if site.spec.fields is not None or site.spec.fragment is not None:
            inner = self._var("o")
            self._emit(indent, f"{inner} = {{}}")
            if not site.scope.in_array:
                self.declared[site.target] = inner
            inner_shape: dict[str, Any] = {}
            site.shape[site.name] = _closed(inner_shape)
            self._block(site, inner, inner_shape)
            self._emit(indent, f"if {inner}:")
            self._emit(indent + 1, f"{out}[{key}] = {inner}")
            self._empty_branch(site, key, "is empty")
            return
        meta = self._leaf_value(site)
        if meta is None:
            return
        self._emit(indent, "if v is M or v is None or v == '' or v == [] or v == {}:")
        self._missing(site.spec, indent + 1, f"{out}[{key}] = ", meta, site.scope)
        self._emit(indent, "else:")
        self._emit(indent + 1, f"{out}[{key}] = v")
        if not site.scope.in_array:
            self.declared[site.target] = f"{out}[{key}]"

    def _block(self, site: _Site, inner: str, shape: dict[str, Any]) -> None:
        """A nested ``fields`` block or a ``fragment``, writing into the dict ``inner``."""
        spec, document, location, target = site.spec, site.document, site.location, site.target
        scope, indent, schema = site.scope, site.indent, site.schema
        if spec.fields is not None:
            self._fields(
                spec.fields,
                document,
                (*location, "fields"),
                inner,
                target + ".",
                scope,
                indent,
                _object(schema),
                shape,
            )
            return
        fragment = self.fragments.get(spec.fragment or "")
        if fragment is None:
            valid = ", ".join(sorted(self.fragments)) or "none (mappings/fragments is empty)"
            self._issue(
                document, (*location, "fragment"), f"unknown fragment {spec.fragment!r}; valid: {valid}"
            )
            return
        if spec.fragment in self._fragment_stack:
            self._issue(document, (*location, "fragment"), f"fragment {spec.fragment!r} includes itself")
            return
        node_scope = scope
        if spec.from_ is not None:
            path = self._path(spec.from_, document, (*location, "from"), scope)
            if path is None:
                return
            node = self._var("n")
            self._emit(indent, "try:")
            self._emit(indent + 1, f"{node} = {self._read(path, scope)}")
            self._emit(indent, "except E:")
            self._emit(indent + 1, f"{node} = M")
            self._emit(indent, f"if {node} is not M and {node} is not None:")
            indent += 1
            base = scope.item_schema if path.relative else self.source_schema
            try:
                item_schema = sub_schema(path, base, self.source_schema or {})
            except PathError:
                item_schema = None
            node_scope = _Scope(node, item_schema, scope.indexes, scope.in_array)
        self._fragment_stack += (spec.fragment or "",)
        try:
            self._fields(
                fragment.spec.fields,
                fragment.document,
                ("fields",),
                inner,
                target + ".",
                node_scope,
                indent,
                _object(schema),
                shape,
            )
        finally:
            self._fragment_stack = self._fragment_stack[:-1]
        self._emit(indent, "pass")

    def _each(self, site: _Site) -> None:
        spec, document, location, out = site.spec, site.document, site.location, site.out
        target, scope, indent, schema = site.target, site.scope, site.indent, site.schema
        path = self._path(spec.each or "", document, (*location, "each"), scope)
        if path is None:
            return
        key, array, item, index = self._const(site.name), self._var("a"), self._var("i"), self._var("x")
        base = scope.item_schema if path.relative else self.source_schema
        try:
            reached = sub_schema(path, base, self.source_schema or {})
        except PathError:
            reached = None
        item_schema = reached if not path.singular else _items(reached)
        items = self._read(path, scope)
        self._emit(indent, f"{array} = []")
        self._emit(indent, "try:")
        self._emit(indent + 1, f"{item}s = {items}")
        self._emit(indent, "except E:")
        self._emit(indent + 1, f"{item}s = M")
        if path.singular:
            self._emit(
                indent,
                f"{item}s = {item}s if type({item}s) is list "
                f"else [] if {item}s is M or {item}s is None else [{item}s]",
            )
        self._emit(indent, f"for {index}, {item} in enumerate({item}s):")
        inner_scope = _Scope(item, item_schema, (*scope.indexes, index), True)
        body = indent + 1
        if spec.where is not None:
            predicate = self._condition(spec.where, document, (*location, "where"))
            if predicate is not None:
                self._emit(body, f"if not {predicate}(doc, {item}):")
                self._emit(body + 1, "continue")
        item_shape: dict[str, Any] = {}  # the item's schema, under the field's name
        item_site = replace(
            site,
            target=f"{target}[{{}}]",
            scope=inner_scope,
            indent=body,
            schema=_items(schema),
            shape=item_shape,
        )
        site.shape[site.name] = {"type": "array", "items": item_shape}
        if spec.fields is not None or spec.fragment is not None:
            inner = self._var("o")
            self._emit(body, f"{inner} = {{}}")
            inner_shape: dict[str, Any] = {}
            site.shape[site.name]["items"] = _closed(inner_shape)
            self._block(item_site, inner, inner_shape)
            self._emit(body, f"if {inner}:")
            self._emit(body + 1, f"{array}.append({inner})")
        else:
            meta = self._leaf_value(item_site)
            if meta is None:
                return
            site.shape[site.name]["items"] = item_shape.get(site.name, {})
            self._emit(body, "if not (v is M or v is None or v == '' or v == [] or v == {}):")
            self._emit(body + 1, f"{array}.append(v)")
            if spec.required:
                self._emit(body, "else:")
                self._emit(
                    body + 1,
                    f"fail({meta}, ({', '.join(inner_scope.indexes)},), None, 'required value is missing')",
                )
        self._emit(indent, f"if {array}:")
        self._emit(indent + 1, f"{out}[{key}] = {array}")
        self._empty_branch(site, key, "has no items")
        if not scope.in_array:
            self.declared[target] = f"{out}[{key}]"

    def _empty_branch(self, site: _Site, key: str, what: str) -> None:
        """The ``else:`` of a block or an array left empty: its default, or the required error."""
        spec, indent, out = site.spec, site.indent, site.out
        if spec.explicit_default:
            self._emit(indent, "else:")
            self._emit(indent + 1, f"{out}[{key}] = deepcopy({self._const(spec.default)})")
        elif spec.required:
            meta = self._meta(FieldMeta(site.target, None, ()))
            indexes = "".join(i + ", " for i in site.scope.indexes)
            self._emit(indent, "else:")
            self._emit(indent + 1, f"fail({meta}, ({indexes}), None, 'required block {what}')")

    def _missing(self, spec: FieldSpec, indent: int, assign: str, meta: int, scope: _Scope) -> None:
        if spec.explicit_default:
            self._emit(indent, f"{assign}deepcopy({self._const(spec.default)})")
        elif spec.required:
            indexes = "".join(i + ", " for i in scope.indexes)
            self._emit(indent, f"fail({meta}, ({indexes}), None, 'required value is missing')")
        else:
            self._emit(indent, "pass")

    def _meta(self, meta: FieldMeta) -> int:
        self.metas.append(meta)
        return len(self.metas) - 1

    def _condition(self, condition: Any, document: YamlDocument, location: Location) -> str | None:
        try:
            predicate = compile_condition(condition)
        except (PathError, ValueError) as exc:
            self._issue(document, location, str(exc))
            return None
        for leaf, where in condition_leaves(condition, location):
            path = compile_path(leaf.path or "")  # compiled above already: it parses
            if not path.relative:
                self.reads.append(PathRead(path, document, (*where, "path"), leaf))
        return self._const(predicate)

    # ------------------------------------------------------------------ leaf values

    def _leaf_value(self, site: _Site) -> int | None:
        """Emit code leaving the field's transformed value in ``v``; return its meta index."""
        spec, document, location = site.spec, site.document, site.location
        target, scope, indent = site.target, site.scope, site.indent
        meta = self._meta(FieldMeta(target, None, ()))
        source = self._source(spec, document, location, scope, indent, meta)
        functions, names = self._transforms(spec, document, location)
        if source is False or functions is None:
            return None
        self.metas[meta] = FieldMeta(target, source, names)
        site.shape[site.name] = self._leaf_schema(spec, scope, functions)
        if self.trace:
            self._emit(indent, "raw = v")
        if functions:
            self._emit(indent, "if not (v is M or v is None or v == '' or v == [] or v == {}):")
            self._emit(indent + 1, "try:")
            for function in functions:
                self._emit(indent + 2, f"v = {self._const(function)}(v)")
            self._emit(indent + 1, "except E as exc:")
            indexes = "".join(i + ", " for i in scope.indexes)
            self._emit(indent + 2, f"fail({meta}, ({indexes}), v, str(exc))")
        if self.trace:
            indexes = "".join(i + ", " for i in scope.indexes)
            self._emit(indent, f"trace.append(({meta}, ({indexes}), raw, v))")
        return meta

    def _leaf_schema(self, spec: FieldSpec, scope: _Scope, functions: list[tx.Transform]) -> dict[str, Any]:
        """What a leaf field holds, as far as the file says: a code table's values (the last
        transform), a constant, or a scalar source copied as is (its type and enum); else {}."""
        if functions:
            outputs = outputs_of(functions[-1])
            schema = _enum(list(outputs)) if outputs is not None else {}
        elif "value" in spec.model_fields_set:
            schema = _enum([spec.value])
        elif spec.count is not None:
            schema = {"type": "integer"}
        elif spec.path is not None or spec.first_of is not None:
            schemas = [
                self._copied(text, scope) for text in ([spec.path] if spec.path else spec.first_of or [])
            ]
            schema = schemas[0] if all(s == schemas[0] for s in schemas) else {}
        else:
            schema = {}
        if spec.explicit_default:  # written when the value is missing: one value more
            values = values_of(schema)
            schema = _enum([*values, spec.default]) if values is not None else {}
        return schema

    def _copied(self, text: str, scope: _Scope) -> dict[str, Any]:
        """The type and enum of a scalar the source schema gives at ``text`` ({} when unknown)."""
        try:
            path = compile_path(text)
            base = scope.item_schema if path.relative else self.source_schema
            reached = sub_schema(path, base, self.source_schema or {})
        except PathError:
            return {}
        if (
            not path.singular
            or not isinstance(reached, dict)
            or reached.get("type") in (None, "object", "array")
        ):
            return {}
        return {key: reached[key] for key in ("type", "enum", "const") if key in reached}

    def _source(
        self,
        spec: FieldSpec,
        document: YamlDocument,
        location: Location,
        scope: _Scope,
        indent: int,
        meta: int,
    ) -> str | bool | None:
        """Emit code leaving the raw value in ``v``; return a description of the source (None for a
        constant), or False when an issue was recorded."""
        if spec.path is not None:
            path = self._path(spec.path, document, (*location, "path"), scope)
            if path is None:
                return False
            self._emit(indent, "try:")
            self._emit(indent + 1, f"v = {self._read(path, scope)}")
            self._emit(indent, "except E:")
            self._emit(indent + 1, "v = M")
            return path.text
        if spec.first_of is not None:
            paths = [
                self._path(text, document, (*location, "first_of", i), scope)
                for i, text in enumerate(spec.first_of)
            ]
            if any(path is None for path in paths):
                return False
            for depth, path in enumerate(paths):
                assert path is not None
                self._emit(indent + depth, "try:")
                self._emit(indent + depth + 1, f"v = {self._read(path, scope)}")
                self._emit(indent + depth, "except E:")
                self._emit(indent + depth + 1, "v = M")
                if depth < len(paths) - 1:
                    self._emit(indent + depth, "if v is M or v is None or v == '' or v == [] or v == {}:")
            return "first_of(" + ", ".join(spec.first_of) + ")"
        if "value" in spec.model_fields_set:
            constant = self._const(spec.value)
            mutable = isinstance(spec.value, dict | list)
            self._emit(indent, f"v = deepcopy({constant})" if mutable else f"v = {constant}")
            return None
        if spec.ref is not None:
            variable = self.declared.get(spec.ref)
            if variable is None:
                before = ", ".join(self.declared) or "none"
                self._issue(
                    document,
                    (*location, "ref"),
                    f"ref {spec.ref!r} is not a target field declared before this one; "
                    f"declared before: {before}",
                )
                return False
            self._emit(indent, "try:")
            self._emit(indent + 1, f"v = {variable}")
            self._emit(indent, "except (NameError, *E):  # declared under a 'when' that did not hold")
            self._emit(indent + 1, "v = M")
            return f"ref {spec.ref}"
        for aggregate in ("count", "sum", "min", "max"):
            text = getattr(spec, aggregate)
            if text is None:
                continue
            path = self._path(text, document, (*location, aggregate), scope)
            if path is None:
                return False
            origin = scope.item if path.relative else "doc"
            indexes = "".join(i + ", " for i in scope.indexes)
            self._emit(indent, "try:")
            self._emit(
                indent + 1, f"v = agg[{aggregate!r}]({self._const(path.get)}({origin}), {path.singular})"
            )
            self._emit(indent, "except E as exc:")
            self._emit(indent + 1, f"fail({meta}, ({indexes}), None, str(exc))")
            return f"{aggregate}({text})"
        raise AssertionError("the spec model guarantees one source")

    def _transforms(
        self, spec: FieldSpec, document: YamlDocument, location: Location
    ) -> tuple[list[tx.Transform] | None, tuple[str, ...]]:
        functions: list[tx.Transform] = []
        ok = True
        for i, declaration in enumerate(spec.transforms):
            here = (*location, "transforms", i)
            try:
                functions.append(self._transform(declaration, document, here))
            except _Reported:
                ok = False
        names = tuple(tx.describe(d) for d in spec.transforms)
        return (functions if ok else None), names

    def _transform(
        self, declaration: str | dict[str, Any], document: YamlDocument, location: Location
    ) -> tx.Transform:
        valid = ", ".join(tx.NAMES)
        if isinstance(declaration, str):
            if declaration in tx.SIMPLE:
                return tx.SIMPLE[declaration][0]
            hint = " (it takes arguments: {" + declaration + ": ...})" if declaration in tx.WITH_ARGS else ""
            self._issue(document, location, f"unknown transform {declaration!r}{hint}; valid: {valid}")
            raise _Reported
        if len(declaration) != 1:
            self._issue(document, location, "a transform with arguments is one key: {name: arguments}")
            raise _Reported
        ((name, arguments),) = declaration.items()
        if name == "table":
            try:
                args = TableArgs.model_validate(
                    {"name": arguments} if isinstance(arguments, str) else arguments
                )
                return table_transform(args, self.tables)
            except ValidationError as exc:
                self.issues.extend(issues_from(exc, TableArgs, document, (*location, "table")))
            except ValueError as exc:
                self._issue(document, (*location, "table"), str(exc))
            raise _Reported
        kind = tx.WITH_ARGS.get(name)
        if kind is None:
            self._issue(document, location, f"unknown transform {name!r}; valid: {valid}")
            raise _Reported
        try:
            args = kind.args.model_validate(arguments)
        except ValidationError as exc:
            self.issues.extend(issues_from(exc, kind.args, document, (*location, name)))
            raise _Reported from None
        return kind.build(args)


class _Reported(Exception):
    """An issue was recorded; stop compiling this transform."""


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False}


_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"))


def _enum(values: list[Any]) -> dict[str, Any]:
    """The schema of a value that is one of ``values`` (scalars), with their JSON type if they
    share one; {} when one of them is an object or a list."""
    kinds = set()
    for value in values:
        kind = next((name for cls, name in _JSON_TYPES if isinstance(value, cls)), None)
        if kind is None and value is not None:
            return {}
        kinds.add(kind)
    schema: dict[str, Any] = {"enum": values}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    return schema


def _object(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    return schema if isinstance(schema, dict) and "properties" in schema else None


def _items(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    if isinstance(schema, dict) and isinstance(schema.get("items"), dict):
        return schema["items"]
    return None


def _numbers(values: list[Any]) -> list[Decimal]:
    numbers = []
    for value in values:
        if value is None or value == "":
            continue
        numbers.append(tx._decimal(value))
    return numbers


def _plain(number: Decimal) -> int | float:
    return int(number) if number == number.to_integral_value() else float(number)


def _values(matched: Any, singular: bool) -> list[Any]:
    if singular:
        if matched is MISSING or matched is None:
            return []
        return matched if isinstance(matched, list) else [matched]
    return matched


def _count(matched: Any, singular: bool) -> int:
    return len(_values(matched, singular))


def _sum(matched: Any, singular: bool) -> int | float:
    return _plain(sum(_numbers(_values(matched, singular)), Decimal(0)))


def _min(matched: Any, singular: bool) -> Any:
    values = [v for v in _values(matched, singular) if v is not None and v != ""]
    return min(values) if values else MISSING


def _max(matched: Any, singular: bool) -> Any:
    values = [v for v in _values(matched, singular) if v is not None and v != ""]
    return max(values) if values else MISSING


_AGGREGATES = {"count": _count, "sum": _sum, "min": _min, "max": _max}
