"""The scan statistics' per-code loops in C (``_scans.pyx``)."""

from collections.abc import Callable, Iterable
from typing import Any

from tracecore.ledger.env import Txn
from tracecore.ledger.observations import Located, _Log

def located(keys: list[bytes], earlier: list[int], repeated: bool,
            index: Callable[[], tuple[dict[bytes, tuple[int, int]],
                                      dict[bytes, tuple[int, int]]]],
            flushing: _Log | None, txn: Txn, db: Any, now_ms: int, region: int
            ) -> Located: ...
def merge(log: _Log, txn: Txn, db: Any) -> int: ...

class KeyedBlake2b:
    def __init__(self, key: bytes, digest_size: int) -> None: ...
    def digests(self, keys: Iterable[bytes]) -> list[bytes]: ...
