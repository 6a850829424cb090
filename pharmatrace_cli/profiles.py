"""The profile file: where the services are, for whom, and with which credentials, so that a
daily user types none of it.

``$XDG_CONFIG_HOME/pharmatrace/config.toml`` (``~/.config/pharmatrace/config.toml`` without it),
or the file named by ``$PHARMATRACE_CONFIG``::

    default_profile = "acme"

    [profiles.acme]
    issue_addr = "issue.example.net:50051"
    verify_addr = "verify.example.net:50052"
    tenant = "acme"
    token_file = "~/.config/pharmatrace/acme.token"
    ca = "~/.config/pharmatrace/ca.pem"

Flags win over environment variables, which win over the file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

SETTINGS: tuple[tuple[str, str, str | None], ...] = (
    ("tenant", "PHARMATRACE_TENANT", "demo"),
    ("issue_addr", "PHARMATRACE_ISSUE_ADDR", None),
    ("verify_addr", "PHARMATRACE_VERIFY_ADDR", None),
    ("token_file", "PHARMATRACE_TOKEN_FILE", None),
    ("ca", "PHARMATRACE_CA", None),
    ("cert", "PHARMATRACE_CERT", None),
    ("key", "PHARMATRACE_KEY", None),
)
"""Each setting: its option's name (also its key in a profile), its environment variable, and
its value when neither gives one."""


class ProfileError(Exception):
    """The profile file cannot be read, or lacks the profile asked for."""


_PATHS = frozenset({"token_file", "ca", "cert", "key"})


def config_path() -> Path:
    """Where the profile file is looked for."""
    if named := os.environ.get("PHARMATRACE_CONFIG"):
        return Path(named).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "pharmatrace" / "config.toml"


def load(name: str | None) -> dict[str, Any]:
    """The settings of profile ``name`` (else $PHARMATRACE_PROFILE, else the file's default).

    No file and no profile asked for is no settings; a profile asked for that the file lacks is
    an error, so that a typo does not silently reach the default servers.
    """
    name = name or os.environ.get("PHARMATRACE_PROFILE") or None
    path = config_path()
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        if name:
            raise ProfileError(f"profile {name!r} asked for, but there is no {path}") from None
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: {exc}") from None
    found = document.get("profiles", {})
    chosen = name or document.get("default_profile") or ("default" if "default" in found
                                                          else None)
    if chosen is None:
        return {}
    if chosen not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ProfileError(f"no profile {chosen!r} in {path} (profiles: {known})")
    settings: dict[str, Any] = found[chosen]
    return settings


def expand(name: str, value: str | None) -> str | None:
    """A path setting with ``~`` expanded; other settings as they are."""
    if value and name in _PATHS:
        return str(Path(value).expanduser())
    return value
