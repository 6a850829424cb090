"""Types of the compiled ``_moves`` module (see _moves.pyx)."""

from collections.abc import Sequence
from typing import Any

def count_moves(moves: list[tuple[Sequence[Any], Sequence[Any]]], fields: tuple[int, ...]
                ) -> dict[Any, int]: ...
