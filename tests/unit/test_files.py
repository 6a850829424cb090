"""Small files (keys, key rings, certificates) are read whole within a bound, or refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracecore.errors import InvalidArgument, KeyRingError
from tracecore.files import read_bounded


def test_a_file_within_the_bound_is_read_whole(tmp_path: Path) -> None:
    """A file of exactly the limit comes back byte for byte."""
    path = tmp_path / "server.pem"
    path.write_bytes(b"x" * 64)
    assert read_bounded(path, 64, "server.pem") == b"x" * 64


def test_a_file_past_the_bound_is_refused_without_its_path(tmp_path: Path) -> None:
    """One byte too many is refused, naming what the file is for but not where it lives."""
    path = tmp_path / "secret-dir" / "key.pem"
    path.parent.mkdir()
    path.write_bytes(b"x" * 65)
    with pytest.raises(InvalidArgument) as refused:
        read_bounded(path, 64, "key.pem")
    assert "larger than 64 bytes" in str(refused.value)
    assert "secret-dir" not in str(refused.value)


def test_a_missing_file_raises_the_callers_error_with_the_reason(tmp_path: Path) -> None:
    """The caller picks the error class; the message gives the OS reason, not the path."""
    with pytest.raises(KeyRingError) as refused:
        read_bounded(tmp_path / "nowhere" / "ring.bin", 4096, "key ring file", KeyRingError)
    assert str(refused.value) == "key ring file cannot be read: No such file or directory"
