"""What every server offers besides the pharmatrace API: health, reflection, Prometheus metrics."""

from __future__ import annotations

import re

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import issuance_pb2, verification_pb2
from prometheus_client import generate_latest

pytestmark = pytest.mark.timeout(120)

HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"
#: The pharmatrace services each server must offer, at least.
EXPECTED = {
    "issue": {apb.DESCRIPTOR.services_by_name["Admin"].full_name,
              issuance_pb2.DESCRIPTOR.services_by_name["CodeIssuance"].full_name},
    "verify": {verification_pb2.DESCRIPTOR.services_by_name["Verification"].full_name},
}


@pytest.fixture(params=["issue", "verify"])
def server(request: pytest.FixtureRequest, issue_channel: grpc.Channel,
           verify_channel: grpc.Channel) -> tuple[str, grpc.Channel]:
    """Each server in turn: its name and a channel to it."""
    return request.param, issue_channel if request.param == "issue" else verify_channel


def _listed_services(channel: grpc.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (response,) = stub.ServerReflectionInfo(iter([request]), timeout=30)
    return [s.name for s in response.list_services_response.service]


def test_reflection_lists_the_pharmatrace_and_standard_services(server) -> None:
    """Server reflection lists the server's pharmatrace services, health and reflection."""
    name, channel = server
    listed = _listed_services(channel)
    assert EXPECTED[name] | {HEALTH, REFLECTION} <= set(listed), listed
    assert len(listed) == len(set(listed))


def test_reflection_describes_every_listed_service_completely(server) -> None:
    """A reflection client (grpcurl) can resolve every pharmatrace service, method and message."""
    _, channel = server
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(database)
    for name in _listed_services(channel):
        if not name.startswith("pharmatrace."):
            continue
        service = pool.FindServiceByName(name)
        assert service.methods, name
        for method in service.methods:
            assert method.input_type.full_name.startswith("pharmatrace.v1.")
            assert method.output_type.full_name.startswith("pharmatrace.v1.")


def test_health_is_serving_overall_and_for_every_service(server) -> None:
    """grpc.health.v1 answers SERVING for "" and for each pharmatrace service of the server."""
    _, channel = server
    stub = health_pb2_grpc.HealthStub(channel)
    names = ["", *(n for n in _listed_services(channel) if n.startswith("pharmatrace."))]
    statuses = {n: stub.Check(health_pb2.HealthCheckRequest(service=n), timeout=30).status
                for n in names}
    assert statuses == dict.fromkeys(names, health_pb2.HealthCheckResponse.SERVING)
    assert len(names) > 1


def test_health_watch_streams_the_serving_status(server) -> None:
    """grpc.health.v1 Watch (what load balancers and Kubernetes probes stream) first answers
    SERVING for the server as a whole."""
    _, channel = server
    stub = health_pb2_grpc.HealthStub(channel)
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
    try:
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        watch.cancel()


def test_health_of_an_unknown_service_is_not_found(server) -> None:
    """A health check for a service the server does not offer is NOT_FOUND."""
    _, channel = server
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Check(health_pb2.HealthCheckRequest(service="pharmatrace.v1.NoSuchService"),
                   timeout=30)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def _value(servers, name: str, **labels: str) -> float:
    return servers.registry.get_sample_value(name, labels) or 0.0


def test_metrics_count_requests_by_method_and_status_and_codes_issued(api, servers,
                                                                      gs1) -> None:
    """After some calls, the metrics show requests by method and status code, and codes issued
    by tenant."""
    ok = {"method": "RequestCodes", "code": "OK"}
    not_found = {"method": "GetProduct", "code": "NOT_FOUND"}
    before = (_value(servers, "pharmatrace_requests_total", **ok),
              _value(servers, "pharmatrace_requests_total", **not_found))
    api.codes(gs1.tenant, gs1.gtin, 25, lot=gs1.lot)
    api.codes(gs1.tenant, gs1.gtin, 5)
    with pytest.raises(grpc.RpcError):
        api.admin.GetProduct(apb.GetProductRequest(tenant=gs1.tenant, product="04006381333931"))
    after = (_value(servers, "pharmatrace_requests_total", **ok),
             _value(servers, "pharmatrace_requests_total", **not_found))
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)
    assert _value(servers, "pharmatrace_codes_issued_total", tenant=gs1.tenant) == 30
    text = generate_latest(servers.registry).decode()
    assert re.search(r'^pharmatrace_requests_total\{code="OK",method="RequestCodes"\} \d',
                     text, re.MULTILINE)
    assert f'pharmatrace_codes_issued_total{{tenant="{gs1.tenant}"}} 30.0' in text


def test_a_replayed_retry_does_not_count_codes_as_issued_again(api, servers, gs1) -> None:
    """pharmatrace_codes_issued_total counts codes minted, not codes sent again on a retry."""
    request_id = api.new_request_id()
    api.codes(gs1.tenant, gs1.gtin, 10, request_id=request_id)
    api.codes(gs1.tenant, gs1.gtin, 10, request_id=request_id)
    assert _value(servers, "pharmatrace_codes_issued_total", tenant=gs1.tenant) == 10
