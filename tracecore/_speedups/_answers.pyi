"""A verification call's answer rows in C (``_answers.pyx``)."""

from collections.abc import Sequence

from tracecore.codes import Scan
from tracecore.errors import ParseError
from tracecore.verification_rows import Call

def answer_rows(call: Call, scans: Sequence[Scan | ParseError],
                key_ids: Sequence[int | None], keys: Sequence[bytes],
                stored: Sequence[bytes]) -> None: ...
