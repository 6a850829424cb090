"""Damaged labels: `codes replace` links a new code to the one it replaces, and `tenant policy`
says whether the tenant's market allows it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pharmatrace_cli.command import EXIT_ERROR, EXIT_OK, add_command, endpoints, subgroup


def register(commands: Any) -> None:
    """Adds codes replace and tenant policy to their command groups."""
    codes = subgroup(commands, "codes", "Request and return code pools.")
    replace = add_command(codes, "replace", "Replace a damaged label: the NEW code (issued, of "
                          "the same product) takes the OLD one's place; OLD is voided and "
                          "points to NEW. Only where the tenant's policy allows it.", _replace)
    replace.add_argument("old", help="the code on the damaged label")
    replace.add_argument("new", help="the code printed in its place")
    replace.add_argument("--party", default="", help="the party where the label is replaced")
    replace.add_argument("--reason", default="", help="at most 500 characters")

    tenant = subgroup(commands, "tenant", "Create and list tenants.")
    policy = add_command(tenant, "policy", "Set which rules of its market the tenant follows.",
                         _policy)
    policy.add_argument("--label-replacement", choices=("on", "off"),
                        help="damaged labels may be replaced by new codes (China's code rules "
                             "allow it, the EU's do not; default off)")
    policy.add_argument("--dispense-elsewhere", choices=("on", "off"),
                        help="a party may dispense a pack it does not hold, each time raising "
                             "a dispensed_elsewhere alert (default off: refused)")
    policy.add_argument("--tz", metavar="ZONE",
                        help="IANA time zone whose midnight cuts the tenant's days, e.g. "
                             "Asia/Shanghai; changing it recounts the daily counters in the "
                             "new zone")


def _replace(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    response = endpoints(args).lifecycle().ReplaceCode(pb.ReplaceCodeRequest(
        tenant=args.tenant, context=pb.EventContext(party_id=args.party), old_code=args.old,
        new_code=args.new, reason=args.reason))
    if not response.applied:
        for failure in response.failures:
            print(f"{failure.code}: {failure.reason}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.old} replaced by {args.new}")
    return EXIT_OK


def _policy(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    wanted = pb.TenantPolicy()
    if args.label_replacement is not None:
        wanted.label_replacement = args.label_replacement == "on"
    if args.dispense_elsewhere is not None:
        wanted.dispense_elsewhere = args.dispense_elsewhere == "on"
    if args.tz is not None:
        wanted.time_zone = args.tz
    response = endpoints(args).admin().SetTenantPolicy(pb.SetTenantPolicyRequest(
        tenant=args.tenant, policy=wanted))
    print(f"label replacement: {'on' if response.policy.label_replacement else 'off'}")
    print(f"dispense elsewhere: {'on' if response.policy.dispense_elsewhere else 'off'}")
    print(f"time zone: {response.policy.time_zone}")
    return EXIT_OK
