"""The transforms a field's value goes through, in order: ``transforms: [trim, {pad: {width: 5}}]``.

Each transform is declared once here with its arguments' model; the loader validates the
arguments, the JSON Schema for editors lists them, and :func:`build` turns a declaration into a
plain function compiled once per file. A transform raises ``ValueError`` with a reason that
never contains the value (the caller masks the value itself).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

Transform = Callable[[Any], Any]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---------------------------------------------------------------------------- text


_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'"})
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss"})
_SPACES = re.compile(r"\s+")
_AROUND_HYPHENS = re.compile(r"\s*(-{1,2})\s*")
_AFTER_APOSTROPHE = re.compile(r"'\s+")
_DIGITS = re.compile(r"\D+")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | dict | list):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return str(value)


def strip_accents(value: Any) -> str:
    decomposed = unicodedata.normalize("NFKD", _text(value).translate(_LIGATURES))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def french_surname(value: Any) -> str:
    """As civil registers write a surname: upper case, one space between words, no space around
    hyphens (``--`` of a double name kept) or after an apostrophe, typographic apostrophes made
    plain. Particles stay where they are: ``de la  Fontaine`` -> ``DE LA FONTAINE``,
    ``d’ Alembert`` -> ``D'ALEMBERT``, ``Martin - Dupont`` -> ``MARTIN-DUPONT``."""
    text = _SPACES.sub(" ", _text(value).translate(_APOSTROPHES)).strip()
    text = _AFTER_APOSTROPHE.sub("'", _AROUND_HYPHENS.sub(r"\1", text))
    return text.upper()


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = _text(value).strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError("not an integer")
    return int(text)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    text = _text(value).strip().replace("\u202f", "").replace("\xa0", "").replace(" ", "")
    if re.fullmatch(r"[+-]?\d+,\d+", text):
        text = text.replace(",", ".")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError("not a number") from None
    if not number.is_finite():
        raise ValueError("not a finite number")
    return number


def _number_value(value: Any) -> int | float:
    number = _decimal(value)
    return int(number) if number == number.to_integral_value() else float(number)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _last(value: Any) -> Any:
    return value[-1] if isinstance(value, list) and value else value


SIMPLE: dict[str, tuple[Transform, str]] = {
    "trim": (lambda v: _text(v).strip(), "remove spaces at both ends"),
    "upper": (lambda v: _text(v).upper(), "upper case"),
    "lower": (lambda v: _text(v).lower(), "lower case"),
    "title": (lambda v: _text(v).lower().title(), "Title Case (jean-pierre -> Jean-Pierre)"),
    "collapse_spaces": (lambda v: _SPACES.sub(" ", _text(v)).strip(), "one space between words"),
    "strip_accents": (strip_accents, "remove accents; œ -> oe, æ -> ae"),
    "french_surname": (french_surname, "a surname as registers write it (see docs)"),
    "digits": (lambda v: _DIGITS.sub("", _text(v)), "keep only the digits (phone numbers)"),
    "string": (_text, "the value as text"),
    "integer": (_integer, "the value as an integer ('042' -> 42)"),
    "decimal": (_number_value, "the value as a number ('12,50' -> 12.5)"),
    "first": (_first, "the first item of a list"),
    "last": (_last, "the last item of a list"),
}


# ---------------------------------------------------------------------------- with arguments


class PadArgs(_Args):
    width: int = Field(gt=0, le=10_000)
    fill: str = Field(" ", min_length=1, max_length=1)
    side: Literal["left", "right"] = "left"


def _pad(args: PadArgs) -> Transform:
    if args.side == "left":
        return lambda v: _text(v).rjust(args.width, args.fill)
    return lambda v: _text(v).ljust(args.width, args.fill)


class FormatArgs(RootModel[str]):
    @field_validator("root")
    @classmethod
    def _only_placeholders(cls, pattern: str) -> str:
        fields = [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]
        if len(fields) != 1 or fields[0] != "":
            raise ValueError("a format holds exactly one {} placeholder (with an optional :spec)")
        if any(conv for _, name, _, conv in string.Formatter().parse(pattern) if name is not None and conv):
            raise ValueError("conversions (!r, !s) are not allowed in a format")
        return pattern


def _format(args: FormatArgs) -> Transform:
    pattern = args.root

    def format_(value: Any) -> str:
        try:
            return pattern.format(value)
        except (ValueError, TypeError):
            raise ValueError(f"value does not fit the format {pattern!r}") from None

    return format_


class SeparatorArgs(RootModel[str]):
    pass


def _split(args: SeparatorArgs) -> Transform:
    separator = args.root or None
    return lambda v: [part for part in _text(v).split(separator) if part]


def _join(args: SeparatorArgs) -> Transform:
    separator = args.root

    def join(value: Any) -> Any:
        if isinstance(value, list):
            return separator.join(_text(v) for v in value if v is not None and v != "")
        return value

    return join


class SubstringArgs(_Args):
    start: int = 0
    length: int | None = Field(None, ge=0)


def _substring(args: SubstringArgs) -> Transform:
    end = None if args.length is None else args.start + args.length
    return lambda v: _text(v)[args.start : end]


class ReplaceArgs(_Args):
    pattern: str = Field(description="a regular expression (Python syntax)")
    with_: str = Field("", alias="with")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return pattern


def _replace(args: ReplaceArgs) -> Transform:
    compiled, replacement = re.compile(args.pattern), args.with_
    return lambda v: compiled.sub(replacement, _text(v))


class TruncateArgs(RootModel[int]):
    @field_validator("root")
    @classmethod
    def _positive(cls, width: int) -> int:
        if width < 1:
            raise ValueError("truncate to at least 1 character")
        return width


def _truncate(args: TruncateArgs) -> Transform:
    return lambda v: _text(v)[: args.root]


class NumberArgs(_Args):
    decimals: int = Field(2, ge=0, le=12)
    decimal_separator: str = Field(".", max_length=1)
    thousands_separator: str = Field("", max_length=1)
    scale: float = Field(1, description="multiply first, e.g. 100 for amounts in cents")


def _format_number(number: Decimal, args: NumberArgs) -> str:
    quantum = Decimal(1).scaleb(-args.decimals)
    number = number.quantize(quantum, rounding=ROUND_HALF_UP)
    sign = "-" if number < 0 else ""
    whole, _, fraction = f"{abs(number):f}".partition(".")
    if args.thousands_separator:
        groups = []
        while len(whole) > 3:
            whole, groups = whole[:-3], [whole[-3:], *groups]
        whole = args.thousands_separator.join([whole, *groups])
    return sign + whole + (args.decimal_separator + fraction if args.decimals else "")


def _number(args: NumberArgs) -> Transform:
    scale = Decimal(repr(args.scale))
    return lambda v: _format_number(_decimal(v) * scale, args)


class CurrencyArgs(_Args):
    symbol: str = Field("€", max_length=5)
    decimals: int = Field(2, ge=0, le=4)


def _currency(args: CurrencyArgs) -> Transform:
    french = NumberArgs(decimals=args.decimals, decimal_separator=",", thousands_separator="\u202f")
    return lambda v: f"{_format_number(_decimal(v), french)}\u00a0{args.symbol}"


class DateArgs(_Args):
    from_: str | list[str] = Field("iso", alias="from", description="strptime format(s), or iso")
    to: str = Field("iso", description="strftime format, or iso")


def _parse_date(value: Any, formats: list[str]) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value).strip()
    for fmt in formats:
        try:
            return date.fromisoformat(text) if fmt == "iso" else datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"date does not match {' or '.join(repr(f) for f in formats)}")


def _date(args: DateArgs) -> Transform:
    formats = [args.from_] if isinstance(args.from_, str) else list(args.from_)

    def convert(value: Any) -> str:
        day = _parse_date(value, formats)
        return day.isoformat() if args.to == "iso" else day.strftime(args.to)

    return convert


class DatetimeArgs(_Args):
    from_: str | list[str] = Field("iso", alias="from", description="strptime format(s), or iso (ISO 8601)")
    to: str = Field("iso", description="strftime format, or iso (ISO 8601 with offset)")
    timezone: str = Field("Europe/Paris", description="time zone of the output")
    assume: str = Field("Europe/Paris", description="time zone of an input that carries none")

    @field_validator("timezone", "assume")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (IANA names, e.g. Europe/Paris, UTC)") from None
        return name


def _datetime(args: DatetimeArgs) -> Transform:
    formats = [args.from_] if isinstance(args.from_, str) else list(args.from_)
    zone, assumed = ZoneInfo(args.timezone), ZoneInfo(args.assume)

    def convert(value: Any) -> str:
        moment = value if isinstance(value, datetime) else None
        text = "" if moment else _text(value).strip()
        for fmt in formats if moment is None else ():
            try:
                moment = datetime.fromisoformat(text) if fmt == "iso" else datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if moment is None:
            raise ValueError(f"date-time does not match {' or '.join(repr(f) for f in formats)}")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=assumed)
        moment = moment.astimezone(zone)
        return moment.isoformat() if args.to == "iso" else moment.strftime(args.to)

    return convert


class BoolArgs(_Args):
    # Not "true:"/"false:" as keys: YAML reads those keys as booleans, not as names.
    if_true: Any = Field(description="the code for true")
    if_false: Any = Field(description="the code for false")


_TRUE = {"true", "1", "yes", "oui", "o", "y"}
_FALSE = {"false", "0", "no", "non", "n"}


def _bool(args: BoolArgs) -> Transform:
    def code(value: Any) -> Any:
        if isinstance(value, bool):
            return args.if_true if value else args.if_false
        text = _text(value).strip().lower()
        if text in _TRUE:
            return args.if_true
        if text in _FALSE:
            return args.if_false
        raise ValueError("not a boolean (true/false, oui/non, 1/0)")

    return code


@dataclass(frozen=True)
class TransformKind:
    args: type[BaseModel]
    build: Callable[[Any], Transform]
    summary: str


WITH_ARGS: dict[str, TransformKind] = {
    "pad": TransformKind(PadArgs, _pad, "pad to a width: {pad: {width: 5, fill: '0', side: left}}"),
    "format": TransformKind(FormatArgs, _format, "put the value in a pattern: {format: 'FR-{}'}"),
    "split": TransformKind(SeparatorArgs, _split, "text to a list: {split: ' '}"),
    "join": TransformKind(SeparatorArgs, _join, "list to text: {join: ' '}"),
    "substring": TransformKind(SubstringArgs, _substring, "{substring: {start: 0, length: 1}}"),
    "replace": TransformKind(ReplaceArgs, _replace, "regex replace: {replace: {pattern: '\\\\s', with: ''}}"),
    "truncate": TransformKind(TruncateArgs, _truncate, "keep at most N characters: {truncate: 32}"),
    "number": TransformKind(NumberArgs, _number, "format a number: {number: {decimals: 2, scale: 100}}"),
    "currency": TransformKind(CurrencyArgs, _currency, "French amount: 1 234,50 €"),
    "date": TransformKind(DateArgs, _date, "{date: {from: '%Y-%m-%d', to: '%d/%m/%Y'}}"),
    "datetime": TransformKind(DatetimeArgs, _datetime, "{datetime: {from: iso, to: iso, timezone: UTC}}"),
    "bool": TransformKind(BoolArgs, _bool, "boolean to code: {bool: {if_true: O, if_false: N}}"),
}

# ``table`` is a transform too, declared in hub.mapping.tables because it needs the loaded tables.
NAMES = (*SIMPLE, *WITH_ARGS, "table")


def describe(declaration: str | dict[str, Any]) -> str:
    """How a transform reads in ``hub mappings explain``: ``trim`` or ``date(%Y-%m-%d -> %d/%m/%Y)``."""
    if isinstance(declaration, str):
        return declaration
    ((name, args),) = declaration.items()
    if isinstance(args, dict):
        return f"{name}(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"
    return f"{name}({args})"
