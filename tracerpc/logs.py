"""Process-wide logging: one line per record on stderr, for people and log collectors alike."""

from __future__ import annotations

import logging
import os


def configure_logging(level: str | None = None) -> None:
    logging.basicConfig(
        level=(level or os.environ.get("PHARMATRACE_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s",
    )
