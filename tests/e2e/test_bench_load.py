"""The load harness (bench/load.py) against a real server: it counts what the server answered,
by status code, catches a wrong verdict, keeps to its arrival schedule in an open loop, and its
histogram's percentiles are those of the latencies it was given."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from pharmatrace.v1 import verification_pb2 as vpb

from bench import harness, verify
from bench.issue import register_product, request_pool
from bench.load import (
    OK,
    WRONG,
    Histogram,
    Load,
    LoadResult,
    Tally,
    read_requests,
    run_load,
    write_requests,
)

pytestmark = pytest.mark.timeout(180)


def test_histogram_quantiles_are_within_one_bucket_of_the_exact_ones() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(math.log(0.002), 1.0) for _ in range(20_000)]
    histogram = Histogram()
    for v in values:
        histogram.add(v)
    exact = sorted(values)
    width = 2 ** (1 / Histogram.PER_OCTAVE)
    for q in (0.5, 0.9, 0.99, 0.999):
        truth = exact[math.ceil(q * len(exact)) - 1]
        assert truth <= histogram.quantile(q) <= truth * width * 1.0001
    assert histogram.quantile(1.0) == max(values)
    assert histogram.count == len(values)


def test_histograms_merged_equal_one_histogram_of_everything() -> None:
    a, b, both = Histogram(), Histogram(), Histogram()
    for i in range(1, 1000):
        (a if i % 3 else b).add(i / 1e5)
        both.add(i / 1e5)
    merged = Histogram().merge(a).merge(b)
    assert merged.buckets == both.buckets
    assert (merged.count, merged.min, merged.max) == (both.count, both.min, both.max)
    assert math.isnan(Histogram().quantile(0.5))


def test_slow_calls_are_reported_by_when_in_the_window_they_were_due() -> None:
    """A pause shows as slow calls of several clients in the same 100 ms of the window, with
    the worst latency of each bucket; fast calls are not listed."""
    first, second = Tally(), Tally()
    first.slow += [(0.05, 0.012), (1.23, 0.040), (1.29, 0.021)]
    second.slow += [(1.21, 0.035)]
    result = LoadResult(2.0, [first, second], [0.5], 0.0, 0.0)
    assert result.slow_over_time() == {"0.0": [1, 12.0], "1.2": [3, 40.0]}
    assert LoadResult(2.0, [Tally()], [0.5], 0.0, 0.0).slow_over_time() == {}


def test_request_files_keep_each_request_with_its_expected_answer(tmp_path: Path) -> None:
    pairs = [(b"", b""), (b"abc", b"\x01"), (bytes(range(256)), b"\x01\x02\x03")]
    write_requests(tmp_path / "r.bin", pairs)
    assert read_requests(tmp_path / "r.bin") == pairs


class _Site:
    def __init__(self, server: harness.ServerProcess, texts: list[str], data: Path) -> None:
        self.server, self.texts, self.data = server, texts, data
        self.verify_address = f"{harness.HOST}:{server.ports['verify']}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Site]:
    tmp = tmp_path_factory.mktemp("bench-load")
    with harness.pharmatrace_server(tmp / "data", tmp, workers=1) as server:
        address = f"{harness.HOST}:{server.ports['issue']}"
        register_product(address)
        pool = request_pool(address, 2_000, "bench-load-test", keep=True)
        assert pool.serials is not None
        yield _Site(server, verify.scanned_texts(pool.serials), tmp / "data")


def _load(site: _Site, path: Path, **kw: float) -> Load:
    return Load(site.verify_address, verify.VERIFY_METHOD, str(path), "unary", 2, **kw)


def test_mixed_consumer_codes_get_the_verdicts_expected_of_them(site: _Site, tmp_path: Path
                                                                 ) -> None:
    requests = verify.consumer_requests(site.data, site.texts, 400)
    verdicts = [r[1][0] for r in requests]
    assert [verdicts.count(v) for v in (vpb.VERDICT_GENUINE, vpb.VERDICT_UNKNOWN,
                                        vpb.VERDICT_BAD_SIGNATURE, vpb.VERDICT_INVALID_FORMAT)
            ] == [360, 16, 12, 12]
    # A ledger's sample smaller than asked for (bench scale on a small build): as many as it has.
    assert len(verify.consumer_requests(site.data, site.texts[:50], 400)) == 50
    write_requests(tmp_path / "mixed.bin", requests)
    result = run_load([_load(site, tmp_path / "mixed.bin", concurrency=8)], site.server,
                      warmup=0.2, seconds=1.0)
    assert result.outcomes() == {OK: result.tallies[0].calls}
    assert result.calls_per_s > 0
    assert result.latency().count == result.tallies[0].calls


def test_a_wrong_verdict_and_a_refused_call_are_counted_by_what_they_were(
        site: _Site, tmp_path: Path) -> None:
    genuine = vpb.VerifyRequest(tenant="demo", code=site.texts[0]).SerializeToString()
    # An unknown code claimed GENUINE, and a tenant that does not exist.
    unknown = verify.consumer_requests(site.data, site.texts, 100)
    claimed = next(r for r, v in unknown if v[0] == vpb.VERDICT_UNKNOWN)
    stranger = vpb.VerifyRequest(tenant="nobody", code=site.texts[1]).SerializeToString()
    write_requests(tmp_path / "bad.bin", [(genuine, verify.GENUINE), (claimed, verify.GENUINE),
                                          (stranger, verify.GENUINE)])
    result = run_load([_load(site, tmp_path / "bad.bin", concurrency=3)], site.server,
                      warmup=0.1, seconds=0.5)
    outcomes = result.outcomes()
    assert set(outcomes) == {OK, WRONG, "NOT_FOUND"}
    assert outcomes[OK] == result.tallies[0].calls


def test_an_open_loop_sends_every_call_due_in_the_window(site: _Site, tmp_path: Path) -> None:
    write_requests(tmp_path / "one.bin", [
        (vpb.VerifyRequest(tenant="demo", code=t).SerializeToString(), verify.GENUINE)
        for t in site.texts[:50]])
    loads = [_load(site, tmp_path / "one.bin", rate=100.0, phase=k / 200) for k in range(2)]
    result = run_load(loads, site.server, warmup=0.3, seconds=1.0)
    sent = sum(sum(t.outcomes.values()) for t in result.tallies)
    assert 198 <= sent <= 202
    assert result.outcomes() == {OK: sent}


def test_a_short_working_day_runs_every_actor_at_its_pace(tmp_path: Path) -> None:
    """`python -m bench scenarios day`, small: consumers, a distributor, a packaging line and a
    plant at once; every call answered right, the line's pools and the plant's cases all in."""
    from bench import scenarios

    options = scenarios.Options(codes=20_000, seconds=2.0, warmup=0.5, pool=5_000,
                                pool_every_s=1.0, cases_per_s=2.0, consumer_share=0.1)
    results = {r.key: r for r in scenarios.run_day(options)}
    consumers = results["scenarios.day.consumers"].details
    assert consumers["errors"] == 0 and consumers["calls"] > 0
    distributor = results["scenarios.day.distributor"].details
    assert distributor["errors"] == 0 and distributor["units"] == distributor["calls"] * 10_000
    line = results["scenarios.day.line"].details
    assert line["pools"] >= 2 and line["codes"] == line["pools"] * 5_000
    plant = results["scenarios.day.capture"].details
    assert plant["changed"] == plant["latency"]["count"] * 1_000 >= 3_000
