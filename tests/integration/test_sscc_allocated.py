"""An SSCC's authenticity in a real LMDB ledger: allocated from one of the tenant's pools or not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledgers import dev_codes
from tracecore import sscc
from tracecore.ledger.sscc_pools import SsccPools
from tracecore.ledger.store import Ledger

PREFIX = "0614141"


@pytest.fixture
def pools(tmp_path: Path) -> Iterator[SsccPools]:
    ledger = Ledger(tmp_path / "ledger", tenant="acme", codes=dev_codes("acme"))
    pools = SsccPools(ledger)
    pools.register_prefix(PREFIX, now_ms=1)
    yield pools
    ledger.close()


def test_every_sscc_of_a_pool_is_allocated_and_the_next_one_is_not(pools: SsccPools) -> None:
    """The SSCCs handed out answer their prefix; the next one of the counter answers None."""
    record = pools.allocate("pallets-1", PREFIX, 3, 50, now_ms=2)
    ssccs = sscc.Range(PREFIX, 3, record.first, record.count).ssccs()
    assert all(pools.allocated_under(s) == PREFIX for s in ssccs)
    assert pools.allocated_under(sscc.mint(PREFIX, 3, 50)) is None


def test_another_extension_digit_or_prefix_was_never_allocated(pools: SsccPools) -> None:
    """A reference allocated under extension 3 is not allocated under 4, nor under a prefix the
    tenant never registered."""
    pools.allocate("pallets-1", PREFIX, 3, 10, now_ms=2)
    assert pools.allocated_under(sscc.mint(PREFIX, 4, 0)) is None
    assert pools.allocated_under(sscc.mint("0614142", 3, 0)) is None


def test_every_written_form_of_an_allocated_sscc_names_the_same_code(pools: SsccPools) -> None:
    """Bare digits, (00) HRI, element string, Digital Link /00/ and the EPC URI all parse to the
    one SSCC the pool holds."""
    record = pools.allocate("cases-1", PREFIX, 0, 1, now_ms=2)
    code = sscc.Range(PREFIX, 0, record.first, 1).ssccs()[0]
    forms = [code, sscc.render_hri(code), sscc.render_element(code),
             sscc.render_digital_link(code), sscc.render_epc_uri(code, len(PREFIX))]
    assert {pools.allocated_under(sscc.parse(form)) for form in forms} == {PREFIX}
