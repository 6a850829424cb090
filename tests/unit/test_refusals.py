"""The refusal rules on their own: reasons from errors, bursts per address and per credential
within a sliding window, reported once, and how long an address is slowed."""

from __future__ import annotations

import pytest

from tracecore.errors import InvalidArgument, PermissionDenied, TraceError, Unauthenticated
from tracecore.refusals import BurstPolicy, Reason, Refusal, RefusalWatch, reason_of

POLICY = BurstPolicy(limit=3, window_ms=60_000, slow_ms=120_000, delay_ms=500)


def _refused(at_ms: int, address: str = "ipv4:10.0.0.1", credential: str = "") -> Refusal:
    return Refusal(at_ms, Reason.UNKNOWN_TOKEN, "/pharmatrace.v1.Admin/ListProducts", address,
                   "acme", credential)


@pytest.mark.parametrize(("error", "reason"), [
    (Unauthenticated("unknown API token"), Reason.UNKNOWN_TOKEN),
    (Unauthenticated("credential revoked"), Reason.REVOKED),
    (Unauthenticated("credential expired"), Reason.EXPIRED),
    (Unauthenticated("malformed API token"), Reason.MALFORMED_TOKEN),
    (Unauthenticated("client certificate is not bound to this tenant"),
     Reason.UNBOUND_CERTIFICATE),
    (PermissionDenied("the line role may not call ListTokens"), Reason.ROLE),
    (PermissionDenied("this credential belongs to another tenant"), Reason.OTHER_TENANT),
    (PermissionDenied("this credential acts for party P1"), Reason.OTHER_PARTY),
    (PermissionDenied("something new"), Reason.OTHER),
])
def test_each_refusal_error_has_its_reason(error: TraceError, reason: Reason) -> None:
    """The authentication and authorisation errors map to the reasons the metric counts."""
    assert reason_of(error) is reason


def test_a_burst_is_reported_once_per_window_and_slows_its_address() -> None:
    """The third refusal within a minute from one address is a burst; the fourth is not
    reported again; the address is held for two minutes after it, others are not."""
    watch = RefusalWatch(POLICY)
    assert watch.note(_refused(0)) == [] and watch.note(_refused(1_000)) == []
    (burst,) = watch.note(_refused(2_000))
    assert (burst.key, burst.count, burst.tenant) == ("address:ipv4:10.0.0.1", 3, "acme")
    assert watch.note(_refused(3_000)) == []
    assert watch.delay_ms("ipv4:10.0.0.1", 100_000) == 500
    assert watch.delay_ms("ipv4:10.0.0.2", 100_000) == 0
    assert watch.delay_ms("ipv4:10.0.0.1", 122_001) == 0


def test_refusals_spread_over_more_than_the_window_are_no_burst() -> None:
    """Three refusals a minute apart never make three within one minute."""
    watch = RefusalWatch(POLICY)
    assert all(watch.note(_refused(i * 60_000)) == [] for i in range(5))


def test_one_credential_from_many_addresses_is_a_burst_of_its_own() -> None:
    """A stolen token tried from three addresses: the credential's burst, no address's."""
    watch = RefusalWatch(POLICY)
    found = [b for i in range(3) for b in watch.note(
        _refused(i, address=f"ipv4:10.0.0.{i}", credential="token abc"))]
    assert [b.key for b in found] == ["credential:token abc"]
    assert "3 refused calls within 60 s from credential token abc" in found[0].describe()


def test_the_policy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """PHARMATRACE_REFUSAL_* override the defaults; nonsense is refused naming the variable."""
    monkeypatch.setenv("PHARMATRACE_REFUSAL_BURST", "7")
    monkeypatch.setenv("PHARMATRACE_REFUSAL_WINDOW_S", "30")
    monkeypatch.setenv("PHARMATRACE_REFUSAL_DELAY_MS", "0")
    assert BurstPolicy.from_env() == BurstPolicy(limit=7, window_ms=30_000, delay_ms=0)
    monkeypatch.setenv("PHARMATRACE_REFUSAL_BURST", "0")
    with pytest.raises(InvalidArgument) as caught:
        BurstPolicy.from_env()
    assert caught.value.field == "PHARMATRACE_REFUSAL_BURST"
