"""The tenant's day: `report recount` rebuilds the daily counters cut at the tenant's local
midnight (after a restore, or to check them)."""

from __future__ import annotations

import argparse
from typing import Any

from pharmatrace_cli.command import EXIT_OK, add_command, endpoints, subgroup


def register(commands: Any) -> None:
    """Adds report recount to the report group."""
    report = subgroup(commands, "report", "Reports.")
    add_command(report, "recount", "Rebuild the tenant's daily counters (received, sold, "
                "returned) with days cut at midnight in the tenant's time zone (tenant policy "
                "--tz).", _recount, example="pharmatrace report recount --tenant acme")


def _recount(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    response = endpoints(args).admin().RecountDaily(pb.RecountDailyRequest(tenant=args.tenant))
    print(f"{response.daily_counters} daily counters recounted in {response.time_zone}")
    return EXIT_OK

