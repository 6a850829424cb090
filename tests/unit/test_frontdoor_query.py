"""The front door's plain views read a query string as Starlette reads it."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from frontdoor.asgi import query

_PIECES = st.sampled_from(["code", "lang", "=", "&", "%28", "%2", "%e4%b8%ad", "%C3", "+", "a",
                           "%%", "%zz", ";", "é", "%00", "(01)", "%2B", " "])


@given(st.lists(_PIECES, max_size=14).map("".join))
def test_a_query_reads_as_parse_qsl_reads_it(text: str) -> None:
    """Every name and value, percent-escapes and plus signs decoded, blank ones kept, the last
    of a name winning, bad escapes and bad UTF-8 as parse_qsl leaves them: the same as
    ``dict(parse_qsl(...))`` for ASCII and for raw UTF-8 query strings."""
    raw = text.encode()
    expected = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    assert query({"query_string": raw}) == expected
