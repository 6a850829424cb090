"""Compressed GS1 Digital Link URIs (GS1 Digital Link 1.x, URI compression): the path after the
host is one base64url segment holding the AIs as a bit stream, e.g.
``https://id.gs1.org/ARHKVAdpQg`` for ``https://id.gs1.org/01/09780345418913``.

Decoding follows GS1's reference toolkit (GS1DigitalLinkCompressionPrototype) with the tables it
ships, kept verbatim in ``gs1_compression_data/tables.json``: table P (how many digits each AI
has, by its first two), table F (how each AI's value is encoded) and the optimisation table
(one hex pair standing for a run of AIs, such as (01)(10)(21)(17)).
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from typing import Any
from urllib.parse import quote

from tracecore.errors import ParseError

_TABLES: dict[str, Any] = json.loads(
    resources.files("tracecore.gs1_compression_data").joinpath("tables.json").read_text("utf-8"))
_BASE64 = str(_TABLES["safeBase64Alphabet"])
_HEX = str(_TABLES["hexAlphabet"])
_TABLE_P: dict[str, int] = _TABLES["tableP"]
_TABLE_F: dict[str, list[dict[str, str]]] = _TABLES["tableF"]
_TABLE_OPT: dict[str, list[str]] = _TABLES["tableOpt"]
_BITS = {c: format(i, "06b") for i, c in enumerate(_BASE64)}

_URI = re.compile(r"((?i:https?)://[^/?#\s]+(?:/[^?#\s]*)?)/([A-Za-z0-9_-]+)(?:\?([^#\s]*))?"
                  r"(?:#\S*)?")
#: Keys that precede a value in an uncompressed Digital Link path.
_PATH_KEYS = frozenset({"01", "22", "10", "21", "00", "414", "254", "8004", "8003", "8006"})
_QUALIFIERS = ("22", "10", "21")
#: The shortest compressed GTIN: 8 bits of AI, 47 of value, in 6-bit characters.
_SHORTEST = 10
#: Far beyond any real label, small enough that a hostile URI costs nothing to refuse.
_LONGEST = 2000


def expand(uri: str) -> str | None:
    """The uncompressed Digital Link of a compressed one; None when ``uri`` is not in
    compressed form.

    ParseError when it is in that form but its bits do not decode.
    """
    match = _URI.fullmatch(uri)
    if match is None:
        return None
    prefix, segment, query = match.groups()
    last_key = prefix.rsplit("/", 1)[-1]
    # All digits is a key's value (a GTIN after a misspelt key), not a bit stream.
    if len(segment) < _SHORTEST or last_key in _PATH_KEYS or segment.isdigit():
        return None
    if len(segment) > _LONGEST:
        raise ParseError("compressed Digital Link is too long")
    elements, others = decode(segment)
    if "01" not in elements:
        raise ParseError("compressed Digital Link has no GTIN (01)")
    path = [prefix, "01", elements.pop("01")]
    for ai in _QUALIFIERS:
        if ai in elements:
            path += (ai, quote(elements.pop(ai), safe=""))
    pairs = [f"{ai}={quote(value, safe='')}" for ai, value in elements.items()]
    pairs += [f"{key}={quote(value, safe='')}" for key, value in others.items()]
    if query:
        pairs.append(query)
    return "/".join(path) + ("?" + "&".join(pairs) if pairs else "")


def decode(segment: str) -> tuple[dict[str, str], dict[str, str]]:
    """(AI values, other key=value pairs) of one compressed path segment."""
    try:
        bits = "".join(_BITS[c] for c in segment)
    except KeyError:
        raise ParseError("compressed Digital Link: not base64url") from None
    reader = _Reader(bits)
    elements: dict[str, str] = {}
    others: dict[str, str] = {}
    # Whatever is left after the last value is padding to a whole character (under 8 bits).
    while len(bits) - reader.at > 8:
        h1, h2 = reader.hex(), reader.hex()
        if h1.isdigit() and h2.isdigit():
            digits = _TABLE_P.get(h1 + h2)
            if digits is None:
                raise ParseError(f"compressed Digital Link: no AI starts with {h1}{h2}")
            ai = h1 + h2
            for _ in range(digits - 2):
                more = reader.hex()
                if not more.isdigit():
                    raise ParseError(f"compressed Digital Link: AI {ai}{more} is not numeric")
                ai += more
            _put(elements, ai, _value(reader, ai))
        elif h1 + h2 in _TABLE_OPT:
            for ai in _TABLE_OPT[h1 + h2]:
                _put(elements, ai, _value(reader, ai))
        elif h1 == "F":
            # A non-GS1 pair: 7 bits of key length (h2 and 3 more bits), the key in base64url.
            reader.at -= 4
            key = reader.chars(reader.number(7), 6, _BASE64)
            encoding = reader.number(3)
            _put(others, key, reader.encoded(encoding, reader.number(7)))
        else:
            raise ParseError(f"compressed Digital Link: unknown code {h1}{h2}")
    return elements, others


def _put(into: dict[str, str], key: str, value: str) -> None:
    if key in into:
        raise ParseError(f"compressed Digital Link: ({key}) appears twice")
    into[key] = value


def _value(reader: _Reader, ai: str) -> str:
    """One AI's value, its parts encoded as table F says."""
    parts = _TABLE_F.get(ai)
    if parts is None:
        raise ParseError(f"compressed Digital Link: AI ({ai}) has no encoding")
    value = ""
    for part in parts:
        numeric = part["E"] == "N"
        if "L" in part:
            length = int(part["L"])
            if numeric:
                value += str(reader.number(_value_bits(length))).zfill(length)
            else:
                value += reader.encoded(reader.number(3), length)
        elif numeric:
            digits = reader.number(_length_bits(int(part["M"])))
            number = reader.number(_value_bits(digits))
            value += str(number) if digits else ""
        else:
            encoding = reader.number(3)
            value += reader.encoded(encoding, reader.number(_length_bits(int(part["M"]))))
    return value


def _length_bits(longest: int) -> int:
    return math.ceil(math.log2(longest) + 0.01)


def _value_bits(digits: int) -> int:
    return math.ceil(digits * math.log2(10) + 0.01)


class _Reader:
    """A cursor over the bit string."""

    def __init__(self, bits: str) -> None:
        self.bits = bits
        self.at = 0

    def take(self, count: int) -> str:
        if count > len(self.bits) - self.at:
            raise ParseError("compressed Digital Link ends inside a value")
        taken = self.bits[self.at:self.at + count]
        self.at += count
        return taken

    def number(self, count: int) -> int:
        return int(self.take(count), 2) if count else 0

    def hex(self) -> str:
        return _HEX[self.number(4)]

    def chars(self, count: int, width: int, alphabet: str) -> str:
        return "".join(alphabet[self.number(width)] for _ in range(count))

    def encoded(self, encoding: int, count: int) -> str:
        """``count`` characters in one of the five encodings of the standard."""
        if encoding == 0:
            return str(self.number(_value_bits(count)))
        if encoding in (1, 2):
            text = self.chars(count, 4, _HEX)
            return text.lower() if encoding == 1 else text
        if encoding == 3:
            return self.chars(count, 6, _BASE64)
        if encoding == 4:
            return "".join(chr(self.number(7)) for _ in range(count))
        raise ParseError(f"compressed Digital Link: unknown encoding {encoding}")

