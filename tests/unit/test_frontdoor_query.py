"""The front door's plain ASGI views read a query string exactly as Starlette (and so
``urllib.parse.parse_qsl``) reads it: the same code, language and LVMS fields reach the use
cases whichever route serves the request."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from frontdoor.asgi import query


@pytest.mark.parametrize("raw", [
    b"code=%2801%2909501101530027%2821%29ABC&lang=zh",
    b"code=(01)09501101530027(21)ABC",
    b"a=1&a=2&b",
    b"&&x=%E4%B8%AD+y&y+z=1",
    b"c=%ZZ&d=%&e=%E4",
    b"k=v=w&=empty",
    b"",
])
def test_query_parameters_read_as_parse_qsl_reads_them(raw: bytes) -> None:
    """Escapes, plus signs, repeated and blank names and broken escapes give what
    ``parse_qsl(keep_blank_values=True)`` gives, the last of a repeated name winning."""
    expected = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    assert query({"query_string": raw}) == expected
