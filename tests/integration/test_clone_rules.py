"""Clone and diversion checks of verification on a real ledger, with the scan times chosen by
the test: how far a pack can travel between two scans, the configured thresholds, and the
checks switched off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import trace_pb2 as tpb

from tests.ledgers import dev_codes
from tracecore.codes import Code, Scheme
from tracecore.events import Event, EventKind
from tracecore.keys import KeySource
from tracecore.ledger import lifecycle
from tracecore.ledger.alerts import AlertBook, AlertFilter
from tracecore.ledger.observations import Observations
from tracecore.ledger.store import PoolRequest
from tracecore.ledger.tenants import DataDir, Tenant
from tracecore.minting import Minter
from tracecore.oversight import Checks
from tracecore.verification import Alert, ScanContext, Verifier

GTIN = "09501101530010"
T0 = 1_772_352_000_000  # 2026-03-01 08:00 UTC
MINUTE = 60_000
HOUR = 60 * MINUTE
BEIJING, GUANGZHOU, SHENZHEN, URUMQI = 110105, 440106, 440305, 650102


@dataclass
class _Ledger:
    tenant: Tenant
    codes: list[str]
    path: Path

    def verifier(self, checks: Checks) -> tuple[Verifier, AlertBook]:
        book = AlertBook(self.path / "alerts", tenant="t", codes=dev_codes("t"))
        observations = Observations(self.path / "observations", tenant="t",
                                    code_key=b"clone-rules-test-key")
        return Verifier(self.tenant, observations, book, checks), book


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[_Ledger]:
    """A tenant with one batch (sold in Guangdong only) and 6 packs commissioned at a pharmacy
    in Guangzhou."""
    data = DataDir(tmp_path / "data", KeySource.dev())
    tenant = data.create("t", "Test", T0)
    store = tenant.ledger
    store.register_product(cpb.Product(gtin=GTIN, name="Amoxicillin"), T0)
    store.add_batch(cpb.Batch(product=GTIN, lot="L1", expires_on="2031-01-01",
                              authorised_regions=["44"]), T0)
    store.add_party(cpb.Party(party_id="PHARM", name="Pharmacy", region=str(GUANGZHOU),
                              kind=cpb.PARTY_KIND_PHARMACY), T0)
    key = tenant.keys.active
    serials = Minter(Scheme.GS1, GTIN, key.key_id, key.mac).mint(6)
    store.open_pool(PoolRequest("pool-1", GTIN, "L1", 1, 6), key.key_id, T0)
    store.append_pool_codes("pool-1", 0, serials, key.key_id, T0, lambda n: [])
    codes = [Code(Scheme.GS1, GTIN, s) for s in serials]
    (result,) = lifecycle.apply(store, [lifecycle.Request(
        [Event(EventKind.COMMISSION, tuple(codes), T0, party_id="PHARM")])], T0)
    assert result.applied
    yield _Ledger(tenant, [c.text() for c in codes], tmp_path)
    data.close()


def _mask(verifier: Verifier, code: str, region: int, at_ms: int, party: str = "") -> int:
    return verifier.verify([code], ScanContext(party, region), at_ms).alert_masks[0]


def _clone(mask: int) -> bool:
    return bool(mask & Alert.CLONE_SUSPECTED.bit)


def test_a_trip_a_pack_can_make_in_the_time_between_scans_is_no_clone(ledger: _Ledger) -> None:
    """Beijing to Guangzhou (about 1,900 km) in three hours is possible by plane; Guangzhou to
    Ürümqi (about 3,300 km) in one hour is not."""
    verifier, _ = ledger.verifier(Checks())
    code = ledger.codes[0]
    assert not _clone(_mask(verifier, code, BEIJING, T0))
    assert not _clone(_mask(verifier, code, GUANGZHOU, T0 + 3 * HOUR))
    assert _clone(_mask(verifier, code, URUMQI, T0 + 4 * HOUR))


def test_the_speed_limit_is_configurable(ledger: _Ledger) -> None:
    """At 500 km/h the three-hour Beijing-Guangzhou trip is too fast."""
    verifier, _ = ledger.verifier(Checks(max_speed_kmh=500))
    code = ledger.codes[0]
    _mask(verifier, code, BEIJING, T0)
    assert _clone(_mask(verifier, code, GUANGZHOU, T0 + 3 * HOUR))


def test_a_scan_without_a_region_does_not_hide_where_the_pack_was_seen(ledger: _Ledger) -> None:
    """Beijing, then a scan with no region, then Guangzhou two minutes later: a clone."""
    verifier, _ = ledger.verifier(Checks())
    code = ledger.codes[0]
    _mask(verifier, code, BEIJING, T0)
    assert not _clone(_mask(verifier, code, 0, T0 + MINUTE))
    assert _clone(_mask(verifier, code, GUANGZHOU, T0 + 2 * MINUTE))


def test_the_scan_threshold_is_configurable_and_the_alert_stored_once(ledger: _Ledger) -> None:
    """With a threshold of 3, the 4th and 5th scans are flagged and one alert is stored, with
    the scans flushed in between."""
    verifier, book = ledger.verifier(Checks(max_scans=3))
    code = ledger.codes[1]
    flagged = []
    for i in range(5):
        flagged.append(_clone(_mask(verifier, code, 0, T0 + i * MINUTE)))
        book.flush()
    assert flagged == [False, False, False, True, True]
    (alert,) = book.page(AlertFilter(), 100, "")[0]
    assert (alert.clone_reason, alert.scan_count, alert.code) == (
        tpb.CLONE_REASON_TOO_MANY_SCANS, 4, code)


def test_with_the_checks_off_nothing_is_flagged_or_stored(ledger: _Ledger) -> None:
    """Diversion and clone checks off: a scan outside the batch's regions, an impossible trip
    and too many scans answer no such alert, and none is stored."""
    verifier, book = ledger.verifier(Checks(diversion=False, clones=False, max_scans=1))
    code = ledger.codes[2]
    masks = [_mask(verifier, code, BEIJING, T0), _mask(verifier, code, URUMQI, T0 + MINUTE),
             _mask(verifier, code, SHENZHEN, T0 + 2 * MINUTE, party="PHARM")]
    assert not any(m & (Alert.CLONE_SUSPECTED.bit | Alert.DIVERSION.bit) for m in masks)
    book.flush()
    assert book.page(AlertFilter(), 100, "")[0] == []


def test_the_same_diversion_is_stored_once_however_often_it_is_scanned(ledger: _Ledger) -> None:
    """Ten scans in Beijing of a pack sold in Guangdong only: DIVERSION every time, one alert."""
    verifier, book = ledger.verifier(Checks(max_scans=100))
    code = ledger.codes[3]
    masks = [_mask(verifier, code, BEIJING, T0 + i * HOUR) for i in range(10)]
    assert all(m & Alert.DIVERSION.bit for m in masks)
    book.flush()
    alerts = book.page(AlertFilter(), 100, "")[0]
    assert [(a.code, a.region, a.authorised_by) for a in alerts] == [(code, "110105", "batch")]
