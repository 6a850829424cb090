"""``tracecore.codes.parse_many`` in C (``_codes.pyx``)."""

from collections.abc import Callable, Iterable

from tracecore.errors import ParseError
from tracecore.schemes.base import Code, Scan, Scheme

def parse_many(texts: Iterable[str | bytes], parse: Callable[[str | bytes], Scan],
               error_type: type[ParseError], code_type: type[Code], scan_type: type[Scan],
               gs1: Scheme) -> list[Scan | ParseError]: ...
