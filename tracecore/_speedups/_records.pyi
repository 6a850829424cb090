"""Types of the compiled ``_records`` module (see _records.pyx)."""

from collections.abc import Sequence
from typing import Any

def packed_in_key_order(keys: list[bytes], records: list[Sequence[Any]]
                        ) -> list[tuple[bytes, bytes]]: ...
