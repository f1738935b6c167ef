"""The mapping file format, as pydantic models: what an integration engineer may write.

These models are the single description of the language: the loader validates files with them
(unknown keys, wrong types and missing keys come back as ``file:line:col``), the reference in
``docs/mappings.md`` follows them, and ``docs/schemas/mapping.schema.json`` is generated from
them so editors can complete and validate mapping files.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME = r"^[a-z0-9][a-z0-9_./-]*$"

# The keys that give a field its value; a field has exactly one of them (or a nested block).
VALUE_KEYS = ("path", "first_of", "value", "ref", "count", "sum", "min", "max")
AGGREGATES = ("count", "sum", "min", "max")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---------------------------------------------------------------------------- conditions


# The comparisons a path test may make (``in`` is the attribute ``in_``), one per condition.
CONDITION_TESTS = (
    "equals",
    "not_equals",
    "in_",
    "not_in",
    "exists",
    "contains",
    "matches",
    "gt",
    "gte",
    "lt",
    "lte",
)


class Condition(_Strict):
    """A test on the document, for ``when`` (should this field be written) and ``where`` (which
    array items to keep). Either one comparison on ``path``, or ``all`` / ``any`` / ``not``."""

    path: str | None = Field(None, description="JSONPath of the value tested ($ = document, @ = item)")
    equals: Any = None
    not_equals: Any = None
    in_: list[Any] | None = Field(None, alias="in")
    not_in: list[Any] | None = None
    exists: bool | None = None
    contains: Any = Field(
        None,
        description="the value is a list holding this item (for a path with [*] or a filter: one of "
        "its matches is the item)",
    )
    matches: str | None = Field(None, description="regular expression the value must match (search)")
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(None, alias="not")

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [name for name in CONDITION_TESTS if name in self.model_fields_set]
        combinators = [name for name in ("all", "any", "not_") if getattr(self, name) is not None]
        if combinators:
            if self.path is not None or tests or len(combinators) > 1:
                raise ValueError("a condition is one of: a path test, all, any, not")
        elif self.path is None or len(tests) != 1:
            raise ValueError(
                "a path test needs 'path' and exactly one of: "
                "equals, not_equals, in, not_in, exists, contains, matches, gt, gte, lt, lte"
            )
        return self


# ---------------------------------------------------------------------------- fields


class FieldSpec(_Strict):
    """One target field. Its value comes from exactly one of ``path``, ``first_of``, ``value``,
    ``ref``, an aggregate (``count``/``sum``/``min``/``max``), a nested ``fields`` block or a
    ``fragment``; ``each`` repeats the field for every item of a source array."""

    description: str = ""
    path: str | None = Field(None, description="JSONPath into the source ($ = document, @ = current item)")
    first_of: list[str] | None = Field(None, min_length=2, description="JSONPaths; the first non-empty wins")
    value: Any = Field(None, description="a constant")
    ref: str | None = Field(None, description="another target field of this mapping, dotted, declared before")
    count: str | None = Field(None, description="number of values a JSONPath matches")
    sum: str | None = Field(None, description="sum of the numbers a JSONPath matches")
    min: str | None = Field(None, description="smallest of the values a JSONPath matches")
    max: str | None = Field(None, description="largest of the values a JSONPath matches")
    fields: dict[str, FieldSpec] | None = Field(None, description="a nested object")
    fragment: str | None = Field(
        None, description="name of a fragment (mappings/fragments) giving the fields"
    )
    from_: str | None = Field(
        None, alias="from", description="with fragment: the JSONPath of the node the fragment's @ paths read"
    )
    each: str | None = Field(None, description="JSONPath of a source array; the field becomes an array")
    where: Condition | None = Field(None, description="with each: keep only the items meeting this")
    when: Condition | None = Field(None, description="write the field only when this holds")
    transforms: list[str | dict[str, Any]] = Field(default_factory=list, description="applied in order")
    default: Any = Field(None, description="written as is when the value is missing or empty")
    required: bool = Field(False, description="a missing or empty value fails the message")

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        sources = [name for name in VALUE_KEYS if name in self.model_fields_set]
        blocks = [name for name in ("fields", "fragment") if getattr(self, name) is not None]
        if len(sources) + len(blocks) != 1:
            given = ", ".join(sources + blocks) or "none"
            raise ValueError(
                "a field needs exactly one of path, first_of, value, ref, count, sum, min, max, "
                f"fields, fragment (got {given})"
            )
        if self.from_ is not None and self.fragment is None:
            raise ValueError("'from' goes with 'fragment'")
        if self.where is not None and self.each is None:
            raise ValueError("'where' goes with 'each'")
        if blocks and self.transforms:
            raise ValueError("transforms apply to values, not to a nested block")
        return self

    @property
    def explicit_default(self) -> bool:
        return "default" in self.model_fields_set


# ---------------------------------------------------------------------------- source and target


class WsdlMessage(_Strict):
    file: str = Field(description="local WSDL file, relative to this mapping file")
    operation: str
    message: Literal["input", "output"] = "input"


class SourceSpec(_Strict):
    name: str = Field(description="what the input is, e.g. portal-request or RequestActCopy answer")
    schema_: str | None = Field(
        None, alias="schema", description="JSON Schema file of the input, relative to this file"
    )
    wsdl: WsdlMessage | None = Field(
        None, description="in an answer mapping: the WSDL message $.response holds (message: output)"
    )


class CsvFormat(_Strict):
    delimiter: str = Field(";", min_length=1, max_length=1)
    quote: Literal["minimal", "all", "never"] = "minimal"
    header: bool = Field(True, description="the file starts with the column names")


class FixedColumn(_Strict):
    width: int = Field(gt=0)
    align: Literal["left", "right"] = "left"
    fill: str = Field(" ", min_length=1, max_length=1)


class FixedWidthFormat(_Strict):
    columns: dict[str, FixedColumn] = Field(min_length=1, description="every top-level field, in order")
    overflow: Literal["error", "truncate"] = "error"


class XmlFormat(_Strict):
    root: str = Field(description="name of the root element")
    namespace: str | None = None


class TargetSpec(_Strict):
    name: str = Field(description="what the output is, e.g. RequestActCopy or billing line")
    format: Literal["json", "soap", "csv", "fixed_width", "xml"] = "json"
    schema_: str | None = Field(
        None, alias="schema", description="JSON Schema file of the output, relative to this file"
    )
    wsdl: WsdlMessage | None = Field(None, description="for soap: the WSDL message the output must fit")
    csv: CsvFormat | None = None
    fixed_width: FixedWidthFormat | None = None
    xml: XmlFormat | None = None

    @model_validator(mode="after")
    def _options_match_format(self) -> TargetSpec:
        for option in ("csv", "fixed_width", "xml"):
            if getattr(self, option) is not None and self.format != option:
                raise ValueError(f"'{option}' options go with format: {option}")
        if self.wsdl is not None and self.format != "soap":
            raise ValueError("'wsdl' goes with format: soap")
        if self.format == "fixed_width" and self.fixed_width is None:
            raise ValueError("format fixed_width needs 'fixed_width: {columns: ...}'")
        if self.format == "xml" and self.xml is None:
            raise ValueError("format xml needs 'xml: {root: ...}'")
        return self


class MappingFile(_Strict):
    mapping: str = Field(pattern=NAME, description="the name flows use, e.g. etat-civil/request-act-copy")
    description: str = ""
    source: SourceSpec | None = None
    target: TargetSpec | None = None
    fields: dict[str, FieldSpec] = Field(min_length=1)


class FragmentFile(_Strict):
    fragment: str = Field(pattern=NAME, description="the name fields use in 'fragment:'")
    description: str = ""
    fields: dict[str, FieldSpec] = Field(min_length=1)


class TableFile(_Strict):
    table: str = Field(pattern=NAME)
    description: str = ""
    source: str = Field("", description="where the codes come from (nomenclature, version)")
    values: dict[str, Any] = Field(min_length=1, description="code -> value")


class CaseFile(_Strict):
    description: str = ""
    input: Any = Field(None, description="the source document")
    input_file: str | None = Field(None, description="a JSON file holding the source, relative to this file")
    expect: Any = Field(None, description="the exact expected output")
    expect_error: ExpectedError | None = None

    @model_validator(mode="after")
    def _one_input_one_outcome(self) -> CaseFile:
        if ("input" in self.model_fields_set) == (self.input_file is not None):
            raise ValueError("a case needs exactly one of input, input_file")
        if ("expect" in self.model_fields_set) == (self.expect_error is not None):
            raise ValueError("a case needs exactly one of expect, expect_error")
        return self


class ExpectedError(_Strict):
    field: str = Field(description="the target field the error names, e.g. children[1].birthDate")
    reason: str | None = Field(None, description="text the error's reason contains")


CaseFile.model_rebuild()
