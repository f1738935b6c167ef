"""The source and target schemas a mapping may declare, read once at load.

A JSON Schema file is used as is. A WSDL message becomes the same kind of schema (objects with
closed ``properties``, arrays for repeating elements, the JSON type of simple values and the
``enum`` of an enumerated simple type) read from the WSDL's inline XSD with lxml, without network
access or DTDs, so a mapping naming a SOAP element the back-end does not have, or a flow waiting
for a status the back-end never answers, is refused at load, at its file:line.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

XSD = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"


class SchemaError(ValueError):
    pass


@cache
def json_schema(path: Path) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaError(f"cannot read schema {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SchemaError(f"schema {path} is not UTF-8 (byte {exc.start}: {exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(f"schema {path} is not JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise SchemaError(f"schema {path} is not a JSON object")
    return schema


@cache
def wsdl_operation_names(path: Path) -> frozenset[str]:
    """The operations a local WSDL declares (empty when the file cannot be read)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.parse(str(path), parser).getroot()
    except (OSError, etree.XMLSyntaxError):
        return frozenset()
    return frozenset(root.xpath("w:portType/w:operation/@name", namespaces={"w": WSDL}))


@cache
def wsdl_message_schema(path: Path, operation: str, message: str) -> dict[str, Any]:
    """The element an operation's input or output message carries, as a JSON-Schema-like dict."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.parse(str(path), parser).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise SchemaError(f"cannot read WSDL {path}: {exc}") from None
    ns = {"w": WSDL, "xs": XSD}
    operations = root.xpath("w:portType/w:operation[@name=$name]", namespaces=ns, name=operation)
    if not operations:
        names = ", ".join(sorted(root.xpath("w:portType/w:operation/@name", namespaces=ns))) or "none"
        raise SchemaError(f"WSDL {path.name} has no operation {operation!r}; valid: {names}")
    reference = operations[0].xpath(f"w:{message}/@message", namespaces=ns)
    if not reference:
        raise SchemaError(f"operation {operation} has no {message} message")
    message_name = reference[0].split(":")[-1]
    parts = root.xpath("w:message[@name=$name]/w:part/@element", namespaces=ns, name=message_name)
    if len(parts) != 1:
        raise SchemaError(f"message {message_name} must have exactly one element part (document/literal)")
    element_name = parts[0].split(":")[-1]
    elements = {
        e.get("name"): e for e in root.iter(f"{{{XSD}}}element") if e.getparent().tag == f"{{{XSD}}}schema"
    }
    types = {t.get("name"): t for t in root.iter(f"{{{XSD}}}complexType") if t.get("name")}
    simple = {t.get("name"): t for t in root.iter(f"{{{XSD}}}simpleType") if t.get("name")}
    if element_name not in elements:
        raise SchemaError(f"WSDL {path.name} declares no element {element_name}")
    return _element(elements[element_name], types, depth=0, simple=simple)


# XSD built-in types -> the JSON type of the value zeep gives for them (dates as ISO text)
_JSON_TYPES = {
    **dict.fromkeys(
        ("int", "integer", "long", "short", "byte", "nonNegativeInteger", "positiveInteger",
         "negativeInteger", "nonPositiveInteger", "unsignedInt", "unsignedLong", "unsignedShort",
         "unsignedByte"),
        "integer",
    ),
    **dict.fromkeys(("decimal", "float", "double"), "number"),
    "boolean": "boolean",
    **dict.fromkeys(
        ("string", "normalizedString", "token", "language", "Name", "NCName", "NMTOKEN", "ID",
         "IDREF", "anyURI", "QName", "date", "dateTime", "time", "duration", "gYear", "gYearMonth",
         "gMonth", "gMonthDay", "gDay", "base64Binary", "hexBinary"),
        "string",
    ),
}  # fmt: skip


def _simple(
    type_name: str, inline: etree._Element | None, simple: dict[str, etree._Element], depth: int = 0
) -> dict[str, Any]:
    """A simple value's schema: its JSON type (from the built-in type it restricts) and, for an
    enumeration, its values. Unknown or unusual types give {} (not checked)."""
    definition = inline if inline is not None else simple.get(type_name)
    if definition is None:
        kind = _JSON_TYPES.get(type_name)
        return {"type": kind} if kind else {}
    restriction = definition.find(f"{{{XSD}}}restriction")
    if restriction is None or depth > 8:
        return {}  # a list or a union: not checked
    base = (restriction.get("base") or "").split(":")[-1]
    schema = _simple(base, restriction.find(f"{{{XSD}}}simpleType"), simple, depth + 1)
    values: list[Any] = [e.get("value") for e in restriction.findall(f"{{{XSD}}}enumeration")]
    if values:
        # as zeep gives them: an enumerated xs:int is a number, not the text of the WSDL
        cast = {"integer": int, "number": float, "boolean": lambda v: v in ("true", "1")}.get(
            schema.get("type", "string"), str
        )
        try:
            schema = {**schema, "enum": [cast(v) for v in values]}
        except ValueError:
            return {}
    return schema


def _element(
    element: etree._Element,
    types: dict[str, etree._Element],
    depth: int,
    simple: dict[str, etree._Element] | None = None,
) -> dict[str, Any]:
    simple = simple or {}
    if depth > 32:
        return {}
    type_name = (element.get("type") or "").split(":")[-1]
    complex_type = element.find(f"{{{XSD}}}complexType")
    if complex_type is None and type_name in types:
        complex_type = types[type_name]
    if complex_type is None:
        schema: dict[str, Any] = _simple(type_name, element.find(f"{{{XSD}}}simpleType"), simple)
    else:
        properties = {}
        for child in complex_type.iter(f"{{{XSD}}}element"):
            if child.get("name") is None:
                continue
            if _owner(child) is not complex_type:
                continue
            properties[child.get("name")] = _element(child, types, depth + 1, simple)
        for attribute in complex_type.iter(f"{{{XSD}}}attribute"):
            if attribute.get("name"):
                properties["@" + attribute.get("name")] = {}
        schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if element.get("maxOccurs") not in (None, "1", "0"):
        return {"type": "array", "items": schema}
    return schema


def _owner(element: etree._Element) -> etree._Element | None:
    parent = element.getparent()
    while parent is not None and parent.tag != f"{{{XSD}}}complexType":
        parent = parent.getparent()
    return parent
