"""Random request messages for the fuzz test, built from their descriptors: wrong, huge and empty
strings, random unicode, malformed codes, extreme numbers, unknown enum values, nested messages,
repeated fields of any length; values of the populated tenant (``Known``) where they make a
request reach further."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from tests.integration.authz.rig import Rpc
from tracecore.clock import now_ms

MAX_MESSAGE_BYTES = 1 << 20
HUGE = 64 * 1024
#: The tenant the test populates, and what it registers there.
TENANT = "fuzz"
GTIN, NMPA_ID, LOT = "09501101530003", "8612345", "LOT-F1"
SUPPLIER, SUPPLIER_LOT = "SinoChem API Co.", "SC-2024-07"
PARTIES = ("PLANT", "DIST-1", "PHARM-1")


@dataclass
class Known:
    """Real identifiers of tenant ``fuzz``, so that generated requests reach deep checks."""

    codes: list[str]
    credential_ids: list[str]
    request_ids: list[str]


# -- the generator -----------------------------------------------------------------------------

_SPECIAL = ["", " ", "\x00", "../../../../etc/passwd", "%s%s%n", "'; DROP TABLE codes; --",
            "\u202e\u0645", "🧪💊", "０９５０１１０１５３０００３", "٠٩٥٠١١٠١٥٣٠٠٠٣", "\t\n\r",
            "null", "-1", "1e309", "NaN", "${jndi:ldap://x}", "<script>", "\\", "\ufeff"]
_DATES = ["2031-06-30", "2031-02-30", "31-06-2031", "2031-6-3", "0000-00-00", "9999-12-31",
          "2031-06-30T00:00:00Z", "20310630"]
_REGIONS = ["110105", "440305", "44", "4403", "000000", "999999", "1101055", "11a105"]
_INT32 = [0, 1, -1, 2**31 - 1, -(2**31), 100, 1000, 1001, 1023, 1024, 65_535, 65_536]
_INT64 = [*_INT32, 2**63 - 1, -(2**63), 2**32, 100_000, 100_001, 10**13]
_UINT32 = [0, 1, 2**32 - 1, 2**31, 100, 1000, 1001, 1023, 1024, 65_536, 100_001]
_UINT64 = [*_UINT32, 2**64 - 1, 2**63, 10**13]
#: Fields whose generic values would make a valid request do unbounded work (mint millions).
_COUNTS = [0, 1, 2, 3, 10_000_001, 2**64 - 1, 2**40]


class Fuzzer:
    """Random request messages built from their descriptors."""

    def __init__(self, rng: random.Random, known: Known) -> None:
        self.rng = rng
        self.known = known
        self.budget = MAX_MESSAGE_BYTES
        # Huge values are cut from a few long ones made once: making each anew is too slow.
        self.long = ["A" * HUGE, "9" * HUGE, self.unicode(HUGE), "\x1d" * HUGE]

    def request(self, rpc: Rpc) -> Message:
        self.budget = MAX_MESSAGE_BYTES
        message = self.message(rpc.method.input_type, 0)
        if "tenant" in rpc.method.input_type.fields_by_name:
            message.tenant = TENANT if self.rng.random() < 0.9 else self.text("tenant")  # type: ignore[attr-defined]
        return message

    def message(self, descriptor: Descriptor, depth: int) -> Message:
        message: Message = GetMessageClass(descriptor)()
        for fd in descriptor.fields:
            if self.rng.random() < 0.3:
                continue
            if fd.is_repeated:
                count = self.count()
                if count > 40:  # past a bound: one short value, many times
                    values = [self.short(fd)] * count
                else:
                    values = [self.value(fd, depth) for _ in range(count)]
                if fd.type == FieldDescriptor.TYPE_MESSAGE:
                    getattr(message, fd.name).extend(values)
                else:
                    getattr(message, fd.name)[:] = values
            elif fd.type == FieldDescriptor.TYPE_MESSAGE:
                if depth < 4:
                    getattr(message, fd.name).CopyFrom(self.message(fd.message_type, depth + 1))
            else:
                setattr(message, fd.name, self.value(fd, depth))
        return message

    def count(self) -> int:
        roll = self.rng.random()
        if roll < 0.2:
            return 0
        if roll < 0.7:
            return self.rng.randint(1, 3)
        if roll < 0.997:
            return self.rng.randint(4, 40)
        return 100_001 if self.budget > 400_000 else 0

    def short(self, fd: FieldDescriptor) -> Any:
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            return GetMessageClass(fd.message_type)()
        if fd.type == FieldDescriptor.TYPE_STRING:
            return self.rng.choice(["", "x", *self.known.codes[:3]])
        return self.value(fd, 0)

    def value(self, fd: FieldDescriptor, depth: int) -> Any:
        rng, kind = self.rng, fd.type
        if kind == FieldDescriptor.TYPE_MESSAGE:
            return self.message(fd.message_type, depth + 1) if depth < 4 else \
                GetMessageClass(fd.message_type)()
        if kind == FieldDescriptor.TYPE_STRING:
            return self.text(fd.name)
        if kind == FieldDescriptor.TYPE_BYTES:
            return rng.randbytes(rng.choice([0, 1, 16, 32, 300]))
        if kind == FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if kind == FieldDescriptor.TYPE_ENUM:
            numbers = [v.number for v in fd.enum_type.values]
            return rng.choice([*numbers, *numbers, rng.randint(-(2**31), 2**31 - 1), 99, -1])
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return rng.choice([0.0, -1.0, 1e308, float("inf"), float("nan"), rng.random()])
        if fd.name == "count" and fd.containing_type.name == "RequestCodesRequest":
            return rng.choice(_COUNTS)
        if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
            return rng.choice([*_UINT64, rng.getrandbits(64)])
        if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
            return rng.choice([*_UINT32, rng.getrandbits(32)])
        if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64,
                    FieldDescriptor.TYPE_SFIXED64):
            return rng.choice([*_INT64, rng.getrandbits(63) - 2**62, now_ms()])
        return rng.choice([*_INT32, rng.getrandbits(31) - 2**30])

    def text(self, name: str) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            known = self.known_text(name)
            if known is not None:
                return known
        if roll < 0.6:
            return rng.choice(_SPECIAL)
        if roll < 0.7:
            return self.code()
        if roll < 0.72 and self.budget > 4 * HUGE:
            size = rng.choice([4097, HUGE, rng.randint(1, HUGE)])
            self.budget -= size * 4
            return rng.choice(self.long)[:size]
        if roll < 0.85:
            return self.unicode(rng.randint(1, 40))
        if roll < 0.9:
            return rng.randbytes(rng.randint(1, 40)).decode("latin-1")
        return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-._:")
                       for _ in range(rng.randint(1, 70)))

    def unicode(self, length: int) -> str:
        rng = self.rng
        points = (rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0xD7FF),
                              rng.randint(0xE000, 0x10FFFF)]) for _ in range(length))
        return "".join(chr(p) for p in points)

    def known_text(self, name: str) -> str | None:
        rng, known = self.rng, self.known
        if name in ("code", "codes", "parent", "children"):
            return rng.choice(known.codes) if rng.random() < 0.6 else self.code()
        if name in ("product", "products", "gtin"):
            return rng.choice([GTIN, NMPA_ID, "09501101530010", "09501101530004", "861234"])
        if name == "nmpa_id":
            return rng.choice([NMPA_ID, "8612346", "861234X"])
        if name == "lot":
            return rng.choice([LOT, "LOT-NONE", "lot with spaces", "L" * 21])
        if name in ("party_id", "destination"):
            return rng.choice([*PARTIES, "NOBODY", "bad party"])
        if name == "request_id":
            return rng.choice([*known.request_ids, "r" * 65, "bad id!"])
        if name == "credential_id":
            return rng.choice([*known.credential_ids, "cert-line-1", "0" * 12])
        if name == "supplier":
            return rng.choice([SUPPLIER, " sinochem  api co. "])
        if name == "supplier_lot":
            return rng.choice([SUPPLIER_LOT, "SC-0000"])
        if name in ("region", "authorised_regions"):
            return rng.choice(_REGIONS)
        if name.endswith("_on"):
            return rng.choice(_DATES)
        if name == "tz_offset":
            return rng.choice(["+08:00", "-05:30", "+24:00", "Z", "+8"])
        if name == "document":
            return rng.choice(["{}", "[]", "{", '{"@context": 1}', json.dumps(
                {"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
                 "type": "EPCISDocument", "schemaVersion": "2.0",
                 "creationDate": "2026-01-01T00:00:00Z",
                 "epcisBody": {"eventList": [{"type": "ObjectEvent", "action": "OBSERVE",
                                              "eventTime": "x", "epcList": [self.code()]}]}})])
        return None

    def code(self) -> str:
        """A code in one of its input forms, often damaged."""
        rng = self.rng
        base = rng.choice(self.known.codes)
        forms = [base, base.lower(), base[:-1], base + "0", base.replace("(21)", "(21)X"),
                 "\x1d" + base.replace("(01)", "01").replace("(21)", "21"),
                 f"https://id.example/01/{GTIN}/10/{LOT}/21/{base[-12:]}?17=310630",
                 f"https://id.example/01/{GTIN}/21/%ZZ", "(01)" + "9" * 14 + "(21)",
                 "".join(rng.choice("0123456789") for _ in range(20)), "(01)(21)", "(17)310630"]
        text = rng.choice(forms)
        if text and rng.random() < 0.3:
            at = rng.randrange(len(text))
            text = text[:at] + rng.choice("0Ol1I-(\x1d") + text[at + 1:]
        return text
