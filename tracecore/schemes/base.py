"""What every code scheme is: the canonical ``Code`` and ``Scan``, the ``CodeScheme`` interface
each scheme module implements, and the registry that ``tracecore.codes`` and
``tracecore.minting`` dispatch through.

A scheme answers four questions: how its codes are read (readers keyed by the first character,
and an optional quick reader for the layout our own labels carry), how they are written
(``render``, ``text``), how our serials are laid out and tagged (``random``, ``key_part``,
``tag``, ``check_tag``, the density limit), and how its codes are keyed in the ledger
(``key_letter``, ``split_key``).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from tracecore.errors import InvalidArgument
from tracecore.mac import Mac


class Scheme(enum.IntEnum):
    """The coding scheme of a pack code; the numbers are those of ``pharmatrace.v1.Scheme``."""

    GS1 = 1
    NMPA = 2
    SSCC = 3


class Form(enum.StrEnum):
    """A written form of a code."""

    HRI = "hri"
    ELEMENT = "element"
    DIGITAL_LINK = "digital-link"
    NMPA20 = "nmpa20"
    EPC_URI = "epc-uri"


# Filled by ``register``: the ledger key letter of each scheme, read on every Code.key().
_KEY_PREFIX: dict[Scheme, bytes] = {}


@dataclass(frozen=True, slots=True)
class Code:
    """The canonical identity of one pack.

    ``product`` is the GTIN-14 or the 7-digit NMPA drug identifier; ``serial`` the AI (21) serial
    or the 13-digit NMPA production identifier. The constructor trusts its arguments: codes come
    from ``parse``, ``Code.from_key`` or a ``Minter``'s serials.
    """

    scheme: Scheme
    product: str
    serial: str

    def __reduce__(self) -> tuple[type[Code], tuple[Scheme, str, str]]:
        # Pickled by value: a document reader process sends thousands of codes back at a time,
        # and a slotted dataclass's own pickling walks its fields in Python, some four times
        # slower both ways.
        return Code, (self.scheme, self.product, self.serial)

    def key(self) -> bytes:
        """The ledger key: the scheme's letter, the product, the serial."""
        return _KEY_PREFIX[self.scheme] + (self.product + self.serial).encode("ascii")

    @staticmethod
    def keys_of(codes: Iterable[Code]) -> list[bytes]:
        """``key`` of each code, in one loop without a call per code (an event names tens of
        thousands)."""
        prefix = _KEY_PREFIX
        return [prefix[c.scheme] + (c.product + c.serial).encode("ascii") for c in codes]

    @classmethod
    def from_key(cls, key: bytes) -> Code:
        """The code whose ledger key is ``key``."""
        scheme = _BY_KEY_LETTER.get(key[:1])
        body = key[1:]
        if scheme is not None and body.isascii():
            parts = scheme.split_key(body.decode("ascii"))
            if parts is not None:
                return cls(scheme.scheme, *parts)
        raise InvalidArgument("not a code key", field="key")

    def text(self) -> str:
        """The canonical text: ``(01){gtin}(21){serial}``, or the 20 NMPA digits."""
        return SCHEMES[self.scheme].text(self)


@dataclass(frozen=True, slots=True)
class Scan:
    """What one scanned or typed input said: the code, and the lot and expiry if it carried them."""

    code: Code
    lot: str | None = None
    expiry: str | None = None
    """YYMMDD exactly as written, day 00 included; see ``gs1.expiry_date``."""


Reader = Callable[[str], Scan | None]
"""Reads one input (stripped, non-empty): a Scan, None when the text is not this scheme's (the
next reader for its first character is tried), or ParseError when it is but is malformed."""


class CodeScheme(ABC):
    """One coding scheme behind one interface; ``register`` makes it known."""

    scheme: ClassVar[Scheme]
    key_letter: ClassVar[bytes]
    """The first byte of its codes' ledger keys; one letter per scheme."""
    product_length: ClassVar[int]
    """The length of the product identifier, which follows the letter in a ledger key."""
    readers: ClassVar[Mapping[str, Reader]]
    """Reader by the input's first character."""
    quick_readers: ClassVar[Mapping[str, Reader]] = {}
    """By first character, readers of the layout our own labels print, tried before every
    scheme's ``readers`` and ``symbologies``: each must read such text as they would, and
    return None for anything else."""
    symbologies: ClassVar[Mapping[str, Reader]] = {}
    """Reader by AIM symbology identifier (such as ``]d2``) of the whole text, identifier
    included; schemes sharing an identifier are tried in turn, as ``readers`` are."""
    capacity: ClassVar[int]
    """How many codes one product may have under one signing key: the density limit."""
    random: ClassVar[tuple[int, bytes, bytes]]
    """Our serials' random part: width, a 256-byte table from CSPRNG bytes to characters, and
    the bytes dropped so that every character stays equally likely."""

    @abstractmethod
    def split_key(self, body: str) -> tuple[str, str] | None:
        """(product, serial) of a ledger key after its letter; None when it is not one."""

    @abstractmethod
    def text(self, code: Code) -> str:
        """The canonical text of a code."""

    @abstractmethod
    def render(self, scan: Scan, form: Form, host: str,
               company_prefix_length: int | None) -> str:
        """The code written in ``form``; InvalidArgument if the scheme has no such form."""

    @abstractmethod
    def check_product(self, product: str) -> None:
        """Raise InvalidArgument unless ``product`` is the identifier codes are minted under."""

    @abstractmethod
    def key_part(self, key_id: int) -> str:
        """What our serials carry of the signing key's id."""

    @staticmethod
    @abstractmethod
    def tag(digest: bytes) -> bytes:
        """The tag (or check characters) closing a serial, from the HMAC of the key before it."""

    tag_layout: ClassVar[tuple[bytes, int] | None] = None
    """What ``tag`` does, for the compiled minting loop: ``(table, n)``, the digest's first
    ``n`` bytes through a 256-byte table, or ``(b"", n)``, its first 8 bytes (big-endian)
    modulo ``10 ** n`` as ``n`` digits; None for a scheme we do not mint."""

    @abstractmethod
    def key_id_of(self, serial: str) -> int | None:
        """The key id (or the part of it) a serial carries; None if it is not in our layout."""

    def density_slot(self, key_id: int) -> int:
        """Which random space a key mints into; codes in one space count against one limit."""
        return key_id

    @staticmethod
    @abstractmethod
    def check_tag(code: Code, macs: Mapping[int, Mac]) -> int | None:
        """The id of the key in ``macs`` whose tag the code carries, else None."""

    def signed_here(self, code: Code, macs: Mapping[int, Mac]) -> bool:
        """Whether the code carries a tag of this tenant's keys: minted here. Any other code of
        the scheme may still be recorded as minted elsewhere (with its provenance)."""
        return self.check_tag(code, macs) is not None


SCHEMES: dict[Scheme, CodeScheme] = {}
"""Every registered scheme, by its number."""
QUICK_READERS: dict[str, Reader] = {}
READERS: dict[str, Reader] = {}
"""By first character: the one scheme's reader, or the schemes' readers tried in turn."""
SYMBOLOGY_READERS: dict[str, Reader] = {}
_BY_KEY_LETTER: dict[bytes, CodeScheme] = {}
_CHAINS: dict[str, list[Reader]] = {}
_QUICK_CHAINS: dict[str, list[Reader]] = {}
_SYMBOLOGY_CHAINS: dict[str, list[Reader]] = {}


def register(scheme: CodeScheme) -> None:
    """Make a scheme known to parsing, rendering, minting and the ledger keys."""
    if scheme.scheme in SCHEMES or scheme.key_letter in _BY_KEY_LETTER:
        raise ValueError(f"scheme {scheme.scheme.name} or key letter {scheme.key_letter!r} "
                         "is registered already")
    SCHEMES[scheme.scheme] = scheme
    _BY_KEY_LETTER[scheme.key_letter] = scheme
    _KEY_PREFIX[scheme.scheme] = scheme.key_letter
    _add_readers(QUICK_READERS, _QUICK_CHAINS, scheme.quick_readers)
    _add_readers(READERS, _CHAINS, scheme.readers)
    _add_readers(SYMBOLOGY_READERS, _SYMBOLOGY_CHAINS, scheme.symbologies)


def _add_readers(table: dict[str, Reader], chains: dict[str, list[Reader]],
                 readers: Mapping[str, Reader]) -> None:
    for first, reader in readers.items():
        chain = chains.setdefault(first, [])
        chain.append(reader)
        table[first] = reader if len(chain) == 1 else _either(table[first], reader)


def _either(first: Reader, second: Reader) -> Reader:
    """A reader that asks ``first``, then ``second`` when ``first`` finds no code of its own."""
    def read(text: str) -> Scan | None:
        return first(text) or second(text)

    return read
