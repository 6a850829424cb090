"""Protobuf wire format in C (``_wire.pyx``)."""

INT32: int
UINT32: int
INT64: int
UINT64: int
STRING: int

def message(pieces: list[bytes | tuple[int, int, list[int] | int | str]]) -> bytes: ...
