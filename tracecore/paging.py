"""Pages of a listing: the page size asked for, and the page token that resumes one.

A token is the decimal position (a record id or sequence number) the next page starts at; the
service gives it out and takes back only what it could have given out.
"""

from __future__ import annotations

from tracecore.errors import InvalidArgument

MAX_PAGE = 1000
"""The most items one page holds."""
DEFAULT_PAGE = 100
"""The page size when the caller leaves it at 0."""
_MAX_TOKEN_DIGITS = 20  # 2**64 - 1 has 20 digits


def page_size(requested: int, *, default: int = DEFAULT_PAGE, limit: int = MAX_PAGE) -> int:
    """The size of the page to return: ``default`` for 0, InvalidArgument above ``limit``."""
    size = requested or default
    if size > limit:
        raise InvalidArgument(f"at most {limit}", field="page_size")
    return size


def page_start(token: str, *, last: int, first: int = 1) -> int:
    """The position a page starts at: ``first`` without a token, else the token's, which must lie
    between ``first`` and ``last``."""
    if not token:
        return first
    if not (token.isascii() and token.isdigit() and len(token) <= _MAX_TOKEN_DIGITS
            and first <= int(token) <= last):
        raise InvalidArgument("is not a token this service gave out", field="page_token")
    return int(token)


def next_token(position: int) -> str:
    """The token of the page that starts at ``position``."""
    return str(position)
