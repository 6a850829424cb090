"""Types of the compiled ``_records`` module (see _records.pyx)."""

from collections.abc import Sequence
from typing import Any

def packed_in_key_order(keys: list[bytes], records: list[Sequence[Any]]
                        ) -> list[tuple[bytes, bytes]]: ...
def unpacked(data: list[bytes | memoryview], cls: type[Any], status_of: dict[int, Any]
             ) -> list[Any]: ...
def in_key_order(keys: list[bytes], values: list[Any]) -> tuple[list[bytes], list[Any]]: ...
