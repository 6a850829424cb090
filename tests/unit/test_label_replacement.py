"""A damaged label replaced, in memory: the rule that moves a pack to its new code, and the
replacement as EPCIS writes it."""

from __future__ import annotations

from tests.unit.test_lifecycle_rules import NOW, FakePacks, code
from tracecore import epcis
from tracecore.custody_policy import HANDLERS
from tracecore.events import Event, EventKind
from tracecore.lifecycle_request import Refused, Result
from tracecore.status import Status


def _replace(packs: FakePacks, old: str, new: str) -> list[bytes]:
    event = Event(EventKind.REPLACE, (code(old),), NOW, replacement=code(new))
    return HANDLERS[EventKind.REPLACE](packs, event, code(old).key(), Result())


def _refusal(packs: FakePacks, old: str, new: str) -> str:
    try:
        _replace(packs, old, new)
    except Refused as refused:
        return refused.reason
    raise AssertionError("not refused")


def test_the_new_code_takes_the_old_ones_place_and_the_old_is_voided() -> None:
    """Batch, holder and level pass to the new code, and its container and contents with it
    (its holder is its container's: a pack inside one inherits its custody)."""
    packs = FakePacks()
    packs.add("CASE", level=3, holder=7)
    old = packs.add("OLD", level=2, holder=7, batch=4, inside="CASE")
    packs.add("U1", inside="OLD")
    new = packs.add("NEW", Status.ISSUED, level=2, batch=0)
    assert _replace(packs, "OLD", "NEW") == [old, new]
    after = packs.records[new]
    assert (after.status, after.batch_ref, after.holder_ref, after.level) == (
        Status.ACTIVE, 4, 7, 2)
    assert packs.records[old].status is Status.VOIDED
    assert packs.parents[new] == code("CASE").key() and old not in packs.parents
    assert packs.children(new) == [code("U1").key()]
    assert packs.commissions == [(4, new)]


def test_only_an_active_pack_gets_a_fresh_issued_code_of_its_product() -> None:
    """A used new code, a dispensed or in-transit old one, or an unknown code is refused."""
    packs = FakePacks()
    packs.add("OLD")
    packs.add("USED")
    packs.add("NEW", Status.ISSUED)
    packs.add("GONE", Status.DISPENSED)
    assert _refusal(packs, "OLD", "USED") == "the new code is ACTIVE, not a fresh ISSUED one"
    assert _refusal(packs, "OLD", "NOPE") == "the new code is not issued by this tenant"
    assert _refusal(packs, "GONE", "NEW") == (
        "is DISPENSED: only an ACTIVE pack's label can be replaced")
    packs.records[code("OLD").key()] = packs.records[code("OLD").key()].evolve(flags=1)
    assert _refusal(packs, "OLD", "NEW").startswith("is in transit")


def test_a_code_of_another_product_cannot_replace_a_label() -> None:
    """The new code must be of the damaged pack's product."""
    packs = FakePacks()
    packs.add("OLD")
    new = packs.add("NEW", Status.ISSUED)
    packs.records[new] = packs.records[new].evolve(product_ref=2)
    assert _refusal(packs, "OLD", "NEW") == "the new code is of another product"


def test_epcis_writes_a_replacement_as_the_new_codes_commissioning_naming_the_old() -> None:
    """ObjectEvent ADD commissioning of the new code, with pharmatrace:replaces the old one."""
    event = Event(EventKind.REPLACE, (code("OLD"),), 1_714_500_000_000, tz_offset="+08:00",
                  replacement=code("NEW"), event_id="urn:uuid:1")
    document = epcis.export_document([event], id_form="epc", party_uri=str, created_ms=0)
    (wire,) = document["epcisBody"]["eventList"]
    assert (wire["type"], wire["action"], wire["bizStep"]) == (
        "ObjectEvent", "ADD", "commissioning")
    assert [e.rsplit(".", 1)[-1] for e in wire["epcList"]] == ["NEW"]
    assert wire["pharmatrace:replaces"].rsplit(".", 1)[-1] == "OLD"
