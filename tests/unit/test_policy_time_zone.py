"""A tenant's time zone is kept in its ledger's policy and survives reopening."""

from __future__ import annotations

from pathlib import Path

from tests.ledgers import dev_codes
from tracecore.ledger import policy
from tracecore.ledger.store import Ledger


def test_time_zone_survives_reopen_and_label_only_changes(tmp_path: Path) -> None:
    """A zone once set is read back after reopening, and a label-rule change leaves it alone."""
    ledger = Ledger(tmp_path / "ledger", tenant="t", codes=dev_codes("t"))
    try:
        assert policy.read(ledger).time_zone == ""
        policy.write(ledger, time_zone="Asia/Shanghai")
        kept = policy.write(ledger, label_replacement=True)
        assert kept == policy.Policy(label_replacement=True, time_zone="Asia/Shanghai")
    finally:
        ledger.close()
    ledger = Ledger(tmp_path / "ledger", tenant="t", codes=dev_codes("t"))
    try:
        assert policy.read(ledger) == policy.Policy(label_replacement=True,
                                                    time_zone="Asia/Shanghai")
    finally:
        ledger.close()
