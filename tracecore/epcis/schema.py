"""Validation of a partner's EPCIS document against the official EPCIS 2.0 JSON schema, with the
first problem named by its JSON path."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # jsonschema ships no type information
import jsonschema_rs

from tracecore.epcis.identifiers import URI
from tracecore.epcis.vocabulary import epoch_ms, json_member, utc_text
from tracecore.errors import InvalidArgument

_MAX_REASON = 200  # jsonschema messages quote the instance; a whole event is no reason

_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
                        r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")

def schema_path() -> Path:
    """The official EPCIS 2.0 JSON schema documents are validated with, packaged in tracecore."""
    return Path(__file__).parent.parent / "epcis_schema" / "EPCIS-JSON-Schema.json"


def conforms(doc: object) -> bool:
    """Whether ``doc`` conforms, without saying where it does not (the fast check)."""
    try:
        return _compiled().is_valid(doc)
    except (ValueError, TypeError, OverflowError):
        return False  # not JSON's kind of data: the detailed check says what is wrong


def check_schema(doc: object) -> None:
    """InvalidArgument naming the JSON path of the first problem, unless ``doc`` conforms."""
    if conforms(doc):
        return
    # The compiled check says whether; jsonschema says precisely where and why.
    errors = _validator().iter_errors(doc)
    first = next(errors, None)
    if first is None:
        return
    # The errors of one spot come together: an anyOf over an event, then what failed inside it.
    # The deepest of them says most precisely what is wrong.
    best, prefix = first, tuple(first.absolute_path)
    for error in errors:
        where = tuple(error.absolute_path)
        if where[:len(prefix)] != prefix:
            break
        if len(where) > len(best.absolute_path):
            best = error
    while best.context and isinstance(best.instance, dict | list):
        best = max(best.context, key=lambda error: len(error.absolute_path))
    reason = best.message
    if len(reason) > _MAX_REASON:
        reason = reason[:_MAX_REASON - 1] + "…"
    raise InvalidArgument(reason, field=_json_path(best.absolute_path))


@functools.cache
def _compiled() -> jsonschema_rs.Validator:
    """The schema compiled by jsonschema-rs (Rust): some five times faster than the same schema
    compiled to Python, far faster than walking it with jsonschema, which a partner's valid
    document (the common case) then never needs. Its regular expressions are ECMAScript's,
    narrower than Python's (``\\d`` is ASCII, ``$`` is the very end): what it refuses that
    jsonschema takes is then checked by jsonschema, event by event, and taken."""
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    return jsonschema_rs.Draft7Validator(
        schema, formats={"date-time": _is_date_time, "uri": _is_uri}, validate_formats=True)


@functools.cache
def _validator() -> Any:
    # jsonschema skips any format whose optional checker package is missing; these two are
    # what the EPCIS schema uses, checked here so that validation is the same everywhere.
    formats = jsonschema.FormatChecker(formats=())
    formats.checks("date-time")(_is_date_time)
    formats.checks("uri")(_is_uri)
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema, format_checker=formats)


def _is_date_time(value: object) -> bool:
    """Whether a string is an RFC 3339 date-time whose UTC instant, to the ms, a datetime holds."""
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.fullmatch(value):
        return False
    try:
        utc_text(epoch_ms(value))
    except (ValueError, OverflowError):
        return False
    return True


def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or URI.fullmatch(value) is not None


def _json_path(parts: Iterable[str | int]) -> str:
    path = "$"
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else json_member(path, part)
    return path
