"""A group's write session, with every record it read, is freed when the group commits: by
reference counting, not left for the cyclic collector (which then walked all of it once a
capture, a sixth of the capture's time)."""

from __future__ import annotations

import gc
from pathlib import Path

from tests.lifecycle_world import K, S, World
from tracecore.ledger.pack_session import Overlay, Session


def _alive() -> int:
    return sum(isinstance(o, Session | Overlay) for o in gc.get_objects())


def test_a_committed_groups_session_and_overlays_are_freed_without_the_collector(
        tmp_path: Path) -> None:
    """Commissioning, shipping and dispensing leave no session or overlay behind them."""
    world = World(tmp_path)
    try:
        codes = world.issued(50)
        gc.collect()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            before = _alive()
            world.ok(K.COMMISSION, codes, party_id="PLANT")
            world.ok(K.SHIP, codes[:25], party_id="PLANT", destination="DIST")
            world.ok(K.DECOMMISSION, codes[25:], party_id="PLANT", target=S.DISPENSED)
            assert _alive() == before
        finally:
            if was_enabled:
                gc.enable()
    finally:
        world.ledger.close()
