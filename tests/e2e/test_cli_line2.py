"""Pack hierarchies and replaced labels from the command line, against a real `pharmatrace
serve`: `product add --hierarchy`, `tenant policy` and `codes replace`."""

from __future__ import annotations

import uuid

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, lifecycle_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb

from tests.e2e.conftest import Cli
from tests.e2e.test_cli import TRACEBACK

pytestmark = pytest.mark.timeout(300)

GTIN = "09501101530003"
LOT = "LOT-L2"


def test_a_product_added_with_a_hierarchy_keeps_its_levels_ratios_and_gtins(cli: Cli) -> None:
    """bundle:10,case:12:GTIN,pallet:40 comes back from the server as registered; a malformed
    level is refused by the command, a level out of order by the server, naming the level."""
    tenant = f"h-{uuid.uuid4().hex[:8]}"
    cli.ok("tenant", "create", tenant)
    cli.ok("product", "add", "--tenant", tenant, "--gtin", GTIN, "--name", "Amoxicillin",
           "--hierarchy", "bundle:10,case:12:9501101530010,pallet:40")
    with grpc.insecure_channel(cli.server.issue_addr) as channel:
        product = admin_pb2_grpc.AdminStub(channel).GetProduct(
            apb.GetProductRequest(tenant=tenant, product=GTIN), timeout=30).product
    assert [(lv.level, lv.quantity, lv.gtin) for lv in product.hierarchy] == [
        (cpb.PACKAGING_LEVEL_BUNDLE, 10, ""), (cpb.PACKAGING_LEVEL_CASE, 12, "09501101530010"),
        (cpb.PACKAGING_LEVEL_PALLET, 40, "")]
    bad = cli("product", "add", "--tenant", tenant, "--gtin", "09501101530027", "--name", "x",
              "--hierarchy", "crate:10")
    assert bad.returncode != 0 and "LEVEL:QUANTITY" in bad.stderr
    backwards = cli("product", "add", "--tenant", tenant, "--gtin", "09501101530027",
                    "--name", "x", "--hierarchy", "case:12,bundle:10")
    assert backwards.returncode != 0 and "product.hierarchy[1].level" in backwards.stderr
    assert not TRACEBACK.search(bad.stderr + backwards.stderr)


def test_codes_replace_needs_the_policy_then_links_the_new_code(cli: Cli) -> None:
    """Refused while the tenant's policy is off; with it on, OLD is replaced by NEW and
    verifies as voided."""
    tenant = f"r-{uuid.uuid4().hex[:8]}"
    cli.ok("tenant", "create", tenant)
    cli.ok("product", "add", "--tenant", tenant, "--gtin", GTIN, "--name", "Amoxicillin")
    cli.ok("batch", "add", "--tenant", tenant, "--product", GTIN, "--lot", LOT,
           "--expires", "2029-06-30")
    out = cli.cwd / "codes.txt"
    cli.ok("codes", "request", "--tenant", tenant, "--product", GTIN, "--lot", LOT, "--count",
           "2", "--request-id", "r-1", "--out", str(out), "--quiet")
    old, new = out.read_text().split()
    with grpc.insecure_channel(cli.server.issue_addr) as channel:
        assert lifecycle_pb2_grpc.LifecycleStub(channel).Commission(lpb.CommissionRequest(
            tenant=tenant, codes=[old]), timeout=30).applied
    refused = cli("codes", "replace", "--tenant", tenant, old, new)
    assert refused.returncode != 0 and "policy does not allow" in refused.stderr
    assert "label replacement: on" in cli.ok(
        "tenant", "policy", "--tenant", tenant, "--label-replacement", "on").stdout
    assert f"{old} replaced by {new}" in cli.ok(
        "codes", "replace", "--tenant", tenant, old, new, "--reason", "torn").stdout
    again = cli("codes", "replace", "--tenant", tenant, old, new)
    assert again.returncode != 0 and "VOIDED" in again.stderr
