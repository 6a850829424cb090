"""Prometheus metrics of the services, on an injected registry."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)


class Metrics:
    """Every metric pharmatrace exports. Labels carry RPC names, outcomes and tenants only."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        target = registry if registry is not None else REGISTRY
        self.requests = Counter(
            "pharmatrace_requests", "RPCs handled, by method and status code.",
            ["method", "code"], registry=target,
        )
        self.latency = Histogram(
            "pharmatrace_request_seconds", "RPC handling time, by method.",
            ["method"], buckets=_LATENCY_BUCKETS, registry=target,
        )
        self.codes_issued = Counter(
            "pharmatrace_codes_issued", "Codes minted and durably committed, by tenant.",
            ["tenant"], registry=target,
        )
        self.verdicts = Counter(
            "pharmatrace_verdicts", "Verification verdicts, by verdict.", ["verdict"],
            registry=target,
        )
        self.rate_limited = Counter(
            "pharmatrace_rate_limited", "Requests refused by the public rate limit.",
            registry=target,
        )
        self.http_requests = Counter(
            "pharmatrace_http_requests", "HTTP front door requests, by route and status.",
            ["route", "status"], registry=target,
        )
        self.http_latency = Histogram(
            "pharmatrace_http_request_seconds", "HTTP front door handling time, by route.",
            ["route"], buckets=_LATENCY_BUCKETS, registry=target,
        )
        self.refusals = Counter(
            "pharmatrace_refusals", "Calls refused by authentication or authorisation, by "
            "reason (tracecore.refusals.Reason).", ["reason"], registry=target,
        )
        self.slowed = Counter(
            "pharmatrace_slowed_calls", "Calls held back because their address had a burst of "
            "refusals.", registry=target,
        )
        self.build_info = Gauge(
            "pharmatrace_build_info", "The release serving and the ledger format it reads and "
            "writes (value 1).", ["version", "ledger_format"], multiprocess_mode="max",
            registry=target,
        )
        self.ledger_bytes = Gauge(
            "pharmatrace_ledger_bytes", "Bytes in use by a tenant's ledger.", ["tenant"],
            multiprocess_mode="max", registry=target,
        )
        self.ledger_limit_used = Gauge(
            "pharmatrace_ledger_limit_used_ratio", "Share of its size limit a tenant's ledger "
            "uses; alert above 0.8, writes are refused at 1.", ["tenant"],
            multiprocess_mode="max", registry=target,
        )
        self.disk_free_bytes = Gauge(
            "pharmatrace_disk_free_bytes", "Bytes left on the data directory's filesystem.",
            multiprocess_mode="min", registry=target,
        )
        self.ledger_codes = Gauge(
            "pharmatrace_ledger_codes", "Codes in a tenant's ledger.", ["tenant"],
            multiprocess_mode="max", registry=target,
        )
