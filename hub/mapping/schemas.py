"""The source and target schemas a mapping may declare, read once at load.

A JSON Schema file is used as is. A WSDL message becomes the same kind of schema (objects with
closed ``properties``, arrays for repeating elements) read from the WSDL's inline XSD with lxml,
without network access or DTDs, so a mapping naming a SOAP element the back-end does not have is
refused at load, at its file:line.
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
    if element_name not in elements:
        raise SchemaError(f"WSDL {path.name} declares no element {element_name}")
    return _element(elements[element_name], types, depth=0)


def _element(element: etree._Element, types: dict[str, etree._Element], depth: int) -> dict[str, Any]:
    if depth > 32:
        return {}
    type_name = (element.get("type") or "").split(":")[-1]
    complex_type = element.find(f"{{{XSD}}}complexType")
    if complex_type is None and type_name in types:
        complex_type = types[type_name]
    if complex_type is None:
        schema: dict[str, Any] = {}
    else:
        properties = {}
        for child in complex_type.iter(f"{{{XSD}}}element"):
            if child.get("name") is None:
                continue
            if _owner(child) is not complex_type:
                continue
            properties[child.get("name")] = _element(child, types, depth + 1)
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
