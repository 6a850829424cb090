"""What `pharmatrace serve` runs with: a TOML file, the command line over it, validated once.

Keys are the long options of `serve` with ``_`` for ``-`` (``issue_port``, ``tls_cert``...).
An option given on the command line wins over the file; the file wins over the defaults.
Relative paths in the file are taken from the file's directory. Secrets are never in the file:
the key-encryption passphrase comes from ``key_passphrase_file`` (a file holding it) or from
$PHARMATRACE_KEY_PASSPHRASE, a key file from ``key_file`` or $PHARMATRACE_KEY_FILE.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from tracecore import localday
from tracecore.errors import InvalidArgument

PASSPHRASE_ENV = "PHARMATRACE_KEY_PASSPHRASE"  # noqa: S105 - a variable name
KEY_FILE_ENV = "PHARMATRACE_KEY_FILE"
MAX_MAP_SIZE_ENV = "PHARMATRACE_MAX_MAP_SIZE"
CLONE_MAX_SCANS_ENV = "PHARMATRACE_CLONE_MAX_SCANS"
CLONE_MAX_SPEED_ENV = "PHARMATRACE_CLONE_MAX_SPEED_KMH"
LOG_LEVEL_ENV = "PHARMATRACE_LOG_LEVEL"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Keys that would put a secret in the file, and where the secret goes instead.
_SECRETS = {
    "key_passphrase": f"key_passphrase_file (a file holding it) or ${PASSPHRASE_ENV}",
    "passphrase": f"key_passphrase_file (a file holding it) or ${PASSPHRASE_ENV}",
    "token": "a token file given to the client commands, never to the server",
}
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1000, "KIB": 1 << 10, "M": 1 << 20, "MB": 10**6,
          "MIB": 1 << 20, "G": 1 << 30, "GB": 10**9, "GIB": 1 << 30, "T": 1 << 40,
          "TB": 10**12, "TIB": 1 << 40}


class PortSettings(Protocol):
    """The settings that say where `serve` listens (``Settings``, and ``ServeConfig`` made
    from it)."""

    @property
    def host(self) -> str: ...
    @property
    def metrics_host(self) -> str: ...
    @property
    def issue_port(self) -> int: ...
    @property
    def verify_port(self) -> int: ...
    @property
    def http_port(self) -> int: ...
    @property
    def public_port(self) -> int: ...
    @property
    def metrics_port(self) -> int: ...
    @property
    def client_ca(self) -> Path | None: ...


def listening_ports(settings: PortSettings) -> list[tuple[str, str, int]]:
    """(setting, host, port) of every port `serve` listens on; a port of 0 is picked free
    when serving, below 0 is not served. The public port is served only with a client CA."""
    return [("issue_port", settings.host, settings.issue_port),
            ("verify_port", settings.host, settings.verify_port),
            ("http_port", settings.host, settings.http_port),
            ("public_port", settings.host,
             settings.public_port if settings.client_ca is not None else -1),
            ("metrics_port", settings.metrics_host, settings.metrics_port)]


class ConfigError(ValueError):
    """A setting is wrong; the message names the key (and the file) first."""


@dataclass(frozen=True)
class Settings:
    """Everything `serve` runs with."""

    data: Path = Path("./data")
    """Data directory: every tenant's ledger, key ring and credentials."""
    host: str = "127.0.0.1"
    """Address every port listens on."""
    issue_port: int = 50051
    """Issuance service (gRPC, writes); 0 lets the system choose."""
    verify_port: int = 50052
    """Verification service (gRPC, reads), shared by the workers."""
    metrics_port: int = 9464
    """Prometheus metrics (HTTP)."""
    metrics_host: str = "127.0.0.1"
    """Address of the plaintext metrics endpoint: loopback, since it names tenants."""
    http_port: int = 8080
    """HTTP front door (Digital Link resolver, consumer check page, /healthz)."""
    public_base_url: str = ""
    """The URL the HTTP front door is reached at from outside ("" : as requested)."""
    workers: int = 0
    """Verification worker processes; 0: one per core."""
    nats: str = ""
    """NATS server URL: every committed change of every tenant is published to its JetStream
    stream (replication); "": none."""
    replicated_commit: bool = False
    """With ``nats``: answer a write only once the stream has acknowledged it."""
    dev: bool = False
    """Development: the public development key passphrase, a demo tenant, NO authentication."""
    public_verify: bool = False
    """Answer Verify without a credential (the public role), rate-limited."""
    public_rate: float = 10.0
    """Public verifications per second per client."""
    insecure: bool = False
    """Serve plaintext, without TLS (development on a trusted host only)."""
    tls_cert: Path | None = None
    """Server certificate chain (PEM)."""
    tls_key: Path | None = None
    """Server private key (PEM); a file, so not a secret in this file."""
    client_ca: Path | None = None
    """Require client certificates signed by this CA (mutual TLS)."""
    grace: float = 10.0
    """Seconds calls in flight get to finish on shutdown."""
    ready_file: Path | None = None
    """Write the bound ports here as JSON once serving."""
    max_map_size: int | None = None
    """Bytes each tenant's ledger may grow to (512MiB, 64GiB, 4TiB); None: the ledger's
    default, or $PHARMATRACE_MAX_MAP_SIZE."""
    key_file: Path | None = None
    """File holding the key-encryption key (instead of a passphrase)."""
    key_passphrase_file: Path | None = None
    """File holding the key-encryption passphrase (e.g. a systemd credential)."""
    migrate: bool = False
    """Bring older ledgers to the current format at start, one tenant at a time."""
    max_import_mib: int = 16
    """Largest EPCIS document one import may send, in MiB."""
    public_port: int = -1
    """With client_ca: the verification port for callers without a client certificate
    (public verification, tokens), TLS without client certificates; 0: any free port; below
    0: none."""
    clone_max_scans: int | None = None
    """A code verified more often than this is suspected cloned; None: 20, or
    $PHARMATRACE_CLONE_MAX_SCANS."""
    clone_max_speed_kmh: float | None = None
    """Two scans further apart than this speed allows: a clone; None: 1000, or
    $PHARMATRACE_CLONE_MAX_SPEED_KMH."""
    log_level: str | None = None
    """DEBUG, INFO, WARNING or ERROR; None: $PHARMATRACE_LOG_LEVEL, else INFO."""
    default_time_zone: str = "UTC"
    """IANA time zone of a tenant created without one: where its days begin in reports."""

    def problems(self) -> list[str]:
        """What is wrong with the combination of settings (each value alone is checked when
        read)."""
        out: list[str] = []
        if not self.insecure and not self.tls_cert:
            out.append("tls_cert: TLS needs tls_cert and tls_key (create development ones with "
                       "`pharmatrace certs init`), or set insecure to serve plaintext")
        if bool(self.tls_cert) != bool(self.tls_key):
            out.append("tls_key: tls_cert and tls_key go together")
        if self.client_ca and not self.tls_cert:
            out.append("client_ca: mutual TLS needs tls_cert and tls_key; plaintext (insecure) "
                       "asks for no client certificate")
        if self.replicated_commit and not self.nats:
            out.append("replicated_commit: needs nats, the server that keeps the streams")
        if self.key_file and self.key_passphrase_file:
            out.append("key_file: set only one of key_file and key_passphrase_file")
        for name in ("issue_port", "verify_port", "metrics_port"):
            if not 0 <= getattr(self, name) <= 65535:
                out.append(f"{name}: must be a port number, 0 to 65535")
        if not -1 <= self.http_port <= 65535:
            out.append("http_port: must be a port number, 0 to 65535, or -1 for no front door")
        out.extend(self._shared_ports())
        if self.dev and not loopback(self.host):
            out.append(f"dev: turns authentication off, so it serves loopback only, not "
                       f"{self.host}: drop dev or use host 127.0.0.1")
        if self.workers < 0:
            out.append("workers: must be 0 (one per core) or more")
        if self.public_rate <= 0:
            out.append("public_rate: must be more than 0")
        if not 1 <= self.max_import_mib <= 64:
            out.append("max_import_mib: must be 1 to 64 (a gRPC message carries at most 64 MiB)")
        if self.grace < 0:
            out.append("grace: must be 0 or more")
        if self.clone_max_scans is not None and self.clone_max_scans < 1:
            out.append("clone_max_scans: must be 1 or more")
        if self.clone_max_speed_kmh is not None and not self.clone_max_speed_kmh > 0:
            out.append("clone_max_speed_kmh: must be more than 0")
        try:
            localday.zone(self.default_time_zone)
        except InvalidArgument:
            out.append(f"default_time_zone: unknown IANA time zone {self.default_time_zone!r}")
        if self.log_level is not None and self.log_level.upper() not in _LEVELS:
            out.append(f"log_level: must be one of {', '.join(_LEVELS)}")
        return out

    def _shared_ports(self) -> list[str]:
        """Two services given one port number: the second would fail to start, or (the
        verification workers and the HTTP front door share their ports) answer in its place."""
        ports = listening_ports(self)
        out = []
        for i, (name, _, port) in enumerate(ports):
            for other, _, other_port in ports[:i]:
                # 0 picks a free port and below 0 turns the service off: no clash.
                if port > 0 and port == other_port:
                    out.append(f"{name}: {port} is already {other}")
        return out

    def environment(self) -> dict[str, str]:
        """The variables through which `serve`'s processes read the settings that are not
        passed to them directly (the verification workers' clone checks, the log level)."""
        out: dict[str, str] = {}
        if self.clone_max_scans is not None:
            out[CLONE_MAX_SCANS_ENV] = str(self.clone_max_scans)
        if self.clone_max_speed_kmh is not None:
            out[CLONE_MAX_SPEED_ENV] = repr(self.clone_max_speed_kmh)
        if self.log_level is not None:
            out[LOG_LEVEL_ENV] = self.log_level.upper()
        return out

    def shown(self) -> dict[str, object]:
        """Every setting as `config show` prints it; secrets' files are named, never read."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


#: Every key a file may hold, with the type it must have.
_TYPES: dict[str, type] = {
    "data": Path, "host": str, "issue_port": int, "verify_port": int, "metrics_port": int,
    "http_port": int, "public_base_url": str, "workers": int, "dev": bool,
    "public_verify": bool, "public_rate": float, "insecure": bool, "tls_cert": Path,
    "tls_key": Path, "client_ca": Path, "grace": float, "ready_file": Path,
    "max_map_size": int, "key_file": Path, "key_passphrase_file": Path, "migrate": bool,
    "clone_max_scans": int, "clone_max_speed_kmh": float, "log_level": str,
    "default_time_zone": str,
    "nats": str, "replicated_commit": bool, "metrics_host": str, "max_import_mib": int,
    "public_port": int,
}
assert set(_TYPES) == {f.name for f in fields(Settings)}


def read_file(path: Path) -> dict[str, Any]:
    """The settings a TOML file holds, checked key by key; ConfigError names the first bad
    key."""
    path = path.absolute()
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        values[key] = _value(key, value, path)
    return values


def loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or localhost)."""
    import ipaddress

    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def merge(file_values: Mapping[str, Any], flags: Mapping[str, Any]) -> Settings:
    """Defaults, then the file, then every flag that was given (not None)."""
    given = {k: v for k, v in flags.items() if v is not None}
    settings = Settings(**{**file_values, **given})
    wrong = settings.problems()
    if wrong:
        raise ConfigError(wrong[0])
    return settings


def key_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """The key-encryption variables `serve` and its workers need, from the settings' files or
    the environment (never both: which one would win is not obvious)."""
    from_env = [name for name in (PASSPHRASE_ENV, KEY_FILE_ENV) if environ.get(name)]
    if settings.key_passphrase_file or settings.key_file:
        if from_env:
            key = "key_passphrase_file" if settings.key_passphrase_file else "key_file"
            raise ConfigError(f"{key}: ${from_env[0]} is set as well: give the key-encryption "
                              "key one way only")
        if settings.key_file:
            return {KEY_FILE_ENV: str(settings.key_file)}
        assert settings.key_passphrase_file is not None
        try:
            passphrase = settings.key_passphrase_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"key_passphrase_file: cannot be read: {exc.strerror}") from None
        if not passphrase:
            raise ConfigError("key_passphrase_file: the file is empty")
        return {PASSPHRASE_ENV: passphrase}
    return {}


def key_origin(settings: Settings, environ: Mapping[str, str]) -> str:
    """Where the key-encryption key comes from, for people: never the secret itself."""
    if settings.dev:
        return "the public development passphrase (--dev)"
    if settings.key_passphrase_file:
        return f"passphrase from the file {settings.key_passphrase_file} (****)"
    if settings.key_file:
        return f"key file {settings.key_file}"
    if environ.get(PASSPHRASE_ENV):
        return f"passphrase from ${PASSPHRASE_ENV} (****)"
    if environ.get(KEY_FILE_ENV):
        return f"key file from ${KEY_FILE_ENV}: {environ[KEY_FILE_ENV]}"
    return f"none configured: set key_passphrase_file, key_file or ${PASSPHRASE_ENV}"


def parse_size(text: str) -> int:
    """Bytes from "1048576", "512MiB", "64 GiB", "1.5TB"; ValueError otherwise."""
    cleaned = text.strip().upper().replace(" ", "")
    number = cleaned.rstrip("KMGTIB")
    unit = cleaned[len(number):]
    try:
        size = int(float(number) * _UNITS[unit])
    except (KeyError, ValueError):
        raise ValueError(f"{text!r} is not a size such as 1048576, 512MiB or 64GiB") from None
    if size <= 0:
        raise ValueError(f"{text!r} is not a positive size")
    return size


# -- one key's value -------------------------------------------------------------------------


def _value(key: str, value: Any, path: Path | None) -> Any:
    where = f"{path}: " if path else ""
    if key in _SECRETS:
        raise ConfigError(f"{where}{key}: secrets are never in the configuration file: use "
                          f"{_SECRETS[key]}")
    kind = _TYPES.get(key)
    if kind is None:
        raise ConfigError(f"{where}{key}: unknown key (known: {', '.join(sorted(_TYPES))})")
    if key == "max_map_size":
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str):
            try:
                return parse_size(value)
            except ValueError as exc:
                raise ConfigError(f"{where}{key}: {exc}") from None
        raise ConfigError(f"{where}{key}: must be a size such as 512MiB, 64GiB or 4TiB")
    if kind is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}{key}: must be a path (a string)")
        p = Path(value).expanduser()
        return p if p.is_absolute() or path is None else path.parent / p
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigError(f"{where}{key}: must be {_NAMES[kind]}, not {value!r}")
    return value


_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}


def environ_max_map_size(environ: Mapping[str, str] = os.environ) -> int | None:
    """$PHARMATRACE_MAX_MAP_SIZE, when set; ConfigError naming it when it is not a size."""
    text = environ.get(MAX_MAP_SIZE_ENV, "")
    if not text:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ConfigError(f"${MAX_MAP_SIZE_ENV}: {exc}") from None
