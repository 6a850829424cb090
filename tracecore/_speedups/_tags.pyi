"""Tag checks of a batch of codes in C (``_tags.pyx``)."""

from collections.abc import Iterable, Sequence

from tracecore._speedups._hmac import HmacKey
from tracecore.schemes.base import Code

def gs1_check_tags(codes: Sequence[Code], keys: dict[int, HmacKey]) -> list[int | None]: ...
def nmpa_check_tag(code: Code, keys: Iterable[tuple[int, HmacKey]]) -> int | None: ...
