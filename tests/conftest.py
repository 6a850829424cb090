"""Settings shared by every test: Hypothesis profiles, and servers that do not slow down.

``CI`` in the environment selects the "ci" profile (fewer examples, no deadline: shared CI
machines are slow and uneven); ``HYPOTHESIS_PROFILE`` names a profile explicitly.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", deadline=None)
settings.register_profile("thorough", max_examples=2_000, deadline=None)

_DEFAULT = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or _DEFAULT)

# Every test client calls from 127.0.0.1, and many tests are refused on purpose: a server that
# slowed that address after a burst of refusals would slow every later test. The refusal tests
# start their own servers with their own policy.
os.environ.setdefault("PHARMATRACE_REFUSAL_DELAY_MS", "0")
