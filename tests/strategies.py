"""Hypothesis strategies for pack codes and scans, shared by every property test."""

from __future__ import annotations

import datetime

from hypothesis import strategies as st

from tracecore import gs1
from tracecore.codes import Code, Scan, Scheme
from tracecore.status import Status


def digit_strings(length: int) -> st.SearchStrategy[str]:
    """Strings of exactly ``length`` ASCII digits."""
    return st.text(alphabet="0123456789", min_size=length, max_size=length)


def gtins(length: int = 14) -> st.SearchStrategy[str]:
    """Valid GTINs of ``length`` digits (8, 12, 13 or 14): a body and its check digit."""
    return digit_strings(length - 1).map(lambda body: body + str(gs1.check_digit(body)))


def any_gtins() -> st.SearchStrategy[str]:
    """Valid GTIN-8, -12, -13 and -14."""
    return st.sampled_from(gs1.GTIN_LENGTHS).flatmap(gtins)


def lots() -> st.SearchStrategy[str]:
    """Lot numbers: 1 to 20 characters of GS1 character set 82."""
    return st.text(alphabet=gs1.CSET82, min_size=1, max_size=20)


def gs1_serials() -> st.SearchStrategy[str]:
    """AI (21) serials: 1 to 20 characters of GS1 character set 82."""
    return st.text(alphabet=gs1.CSET82, min_size=1, max_size=20)


@st.composite
def expiries(draw: st.DrawFn) -> str:
    """Valid YYMMDD values, about one in five with day 00 (end of month)."""
    # 19YY, 20YY and 21YY have the same leap days but for YY 00, which the GS1 century window
    # reads as 2000 until 2050.
    day = draw(st.dates(datetime.date(2000, 1, 1), datetime.date(2099, 12, 31)))
    text = day.strftime("%y%m%d")
    return text[:4] + "00" if draw(st.integers(0, 4)) == 0 else text


def gs1_codes() -> st.SearchStrategy[Code]:
    """GS1 codes: a GTIN-14 and any serial of set 82."""
    return st.builds(Code, st.just(Scheme.GS1), gtins(), gs1_serials())


def nmpa_codes() -> st.SearchStrategy[Code]:
    """NMPA codes: a 7-digit drug identifier and a 13-digit production identifier."""
    return st.builds(Code, st.just(Scheme.NMPA), digit_strings(7), digit_strings(13))


def codes() -> st.SearchStrategy[Code]:
    """Codes of either scheme."""
    return st.one_of(gs1_codes(), nmpa_codes())


def gs1_scans() -> st.SearchStrategy[Scan]:
    """GS1 scans with and without a lot and an expiry."""
    return st.builds(Scan, gs1_codes(), st.none() | lots(), st.none() | expiries())


def nmpa_scans() -> st.SearchStrategy[Scan]:
    """NMPA scans: the code alone, as the 20 digits carry nothing else."""
    return st.builds(Scan, nmpa_codes())


def scans() -> st.SearchStrategy[Scan]:
    """Scans of either scheme."""
    return st.one_of(gs1_scans(), nmpa_scans())


@st.composite
def commissionings(draw: st.DrawFn) -> tuple[dict[str, tuple[int, int]], list[str],
                                             dict[str, object]]:
    """A commissioning event against a few packs: (serial -> (status, batch ref) of the packs
    the ledger holds, the serials the event names in order, some twice or unknown, and the
    event's lot, level, acting party and stated expiry)."""
    serials = [f"S{i}" for i in range(draw(st.integers(1, 8)))]
    stored = {s: (draw(st.sampled_from([1, 1, 1, 2, 3, 4, 9])), draw(st.sampled_from([0, 1, 2])))
              for s in serials if draw(st.integers(0, 5))}
    named = draw(st.lists(st.sampled_from(serials), min_size=1, max_size=12,
                          unique=draw(st.booleans())))
    event: dict[str, object] = {
        "lot": draw(st.sampled_from(["", "", "L1", "L2", "L9"])),
        "level": draw(st.sampled_from([0, 0, 1, 2, 7])),
        "party_id": draw(st.sampled_from(["", "PLANT", "PLANT", "NOBODY"])),
        "extra": {"expiry": draw(st.sampled_from(["", "", "2001-01-01", "2999-12-31"]))},
    }
    return stored, named, event


@st.composite
def packs_in_cases(draw: st.DrawFn) -> dict[str, tuple[int, int, int, str, int]]:
    """A few packs, some of them cases holding others: serial -> (status, batch ref, level, the
    case it is in, holder party ref)."""
    serials = [f"S{i}" for i in range(draw(st.integers(1, 6)))]
    cases = [s for s in serials[:2] if draw(st.booleans())]
    return {s: (draw(st.sampled_from([2, 2, 2, 2, 1, 4, 9])),
                draw(st.sampled_from([1, 1, 1, 2])), 2 if s in cases else 1,
                draw(st.sampled_from(["", *cases])) if s not in cases else "",
                draw(st.sampled_from([0, 1, 1, 2])))
            for s in serials if s in cases or draw(st.integers(0, 5))}


def _named(draw: st.DrawFn, stored: dict[str, tuple[int, int, int, str, int]]) -> list[str]:
    """Serials an event names in order: the packs', some twice, and an unknown one."""
    return draw(st.lists(st.sampled_from([*stored, "UNKNOWN"]), min_size=1, max_size=12,
                         unique=draw(st.booleans())))


@st.composite
def decommissionings(draw: st.DrawFn) -> tuple[dict[str, tuple[int, int, int, str, int]],
                                               list[str], dict[str, object]]:
    """A decommissioning event against ``packs_in_cases``: the packs, the serials it names, and
    its target status and acting party."""
    stored = draw(packs_in_cases())
    return stored, _named(draw, stored), {
        "target": Status(draw(st.sampled_from([4, 4, 5, 9, 2]))),
        "party_id": draw(st.sampled_from(["", "PHARM", "PHARM", "NOBODY"])),
    }


@st.composite
def shipments(draw: st.DrawFn) -> tuple[dict[str, tuple[int, int, int, str, int]],
                                        list[str], dict[str, object]]:
    """A shipping event against ``packs_in_cases``: the packs, the serials it names, and its
    sender and destination."""
    stored = draw(packs_in_cases())
    return stored, _named(draw, stored), {
        "party_id": draw(st.sampled_from(["", "PLANT", "PLANT", "NOBODY"])),
        "destination": draw(st.sampled_from(["DIST", "DIST", "", "PLANT", "NOBODY"])),
    }


@st.composite
def record_changes(draw: st.DrawFn) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Code records before and after a change, as field tuples (``CodeRecord``'s order): a few
    batches, holders, regions, levels, flags and every status."""
    def record() -> tuple[int, ...]:
        return (draw(st.integers(1, 13)), draw(st.sampled_from([1, 1, 2])), 1,
                draw(st.sampled_from([5, 6])), draw(st.sampled_from([0, 7, 8])), 1,
                draw(st.sampled_from([0, 3, 4])), draw(st.sampled_from([0, 110105, 310101])),
                1, 2, 0, draw(st.sampled_from([0, 1])))
    return draw(st.lists(st.builds(lambda: (record(), record())), max_size=40))
