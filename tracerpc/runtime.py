"""The interpreter settings of a serving process (the issuance server, each verification
worker), set once everything it needs at start is loaded."""

from __future__ import annotations

import gc
import sys

#: Net allocations between two young collections (Python's default: 700).
GC_YOUNG = 50_000

#: How long a thread may hold the GIL before it is asked to hand it over (Python's default:
#: 5 ms).
SWITCH_INTERVAL_S = 0.0005


def tune() -> None:
    """Collector and GIL settings for serving many small calls beside a few large ones.

    - What is loaded at start lives as long as the process: frozen, the collector no longer
      walks it again and again under load (py-spy showed gen-2 pauses of up to 150 ms).
    - A call allocates its answers (a verification) or its parsed codes (a capture message) in
      bulk and frees them when it returns, so collections at the default 700 net allocations
      walk young containers over and over: pallets of 10,000 codes took 1,913 young
      collections of up to 18 ms each, and a tenth of CaptureEvents' time went to the
      collector. Collecting only once far more has piled up leaves what a call frees to
      reference counting.
    - A large call (a pallet's VerifyBatch, a partner's 10,000-event import) runs in a thread;
      the event loop and the other tenants' writer lanes then wait for the GIL at every step.
      Handing it over every 0.5 ms instead of every 5 ms took a consumer's p99 beside a pallet a
      second from 48 to 15 ms (bench/scenarios.py day, 2 workers), with no change to consumers
      alone.
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 20, 100)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
