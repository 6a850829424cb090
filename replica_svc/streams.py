"""Names and headers shared by the publisher and the replicas."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client
from nats.errors import NoServersError
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from tracecore.errors import Unavailable

log = logging.getLogger("pharmatrace.nats")

#: Headers of a change message; Nats-Msg-Id is "epoch:commit:part", so the stream drops a resend.
EPOCH, SEQ, PART, PARTS = "Pt-Epoch", "Pt-Seq", "Pt-Part", "Pt-Parts"
MSG_ID = "Nats-Msg-Id"
#: Present ("1") on a change message sealed by ``tracecore.replication.sealing``; a stream
#: written by an earlier release holds messages without it, in clear.
SEALED = "Pt-Sealed"
#: A fence: written by `tenant promote` on the change subject; it carries the writer term, the
#: node promoted and the last epoch seen, and makes the stream refuse the old writer's next change.
FENCE, NODE = "Pt-Fence", "Pt-Node"
#: Each change names the subject's last sequence its writer saw; after a fence it no longer
#: matches and the stream refuses the change.
EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"
#: How long the stream remembers message ids to drop a resend.
DUPLICATE_WINDOW_S = 600.0


#: Copies of each stream and bucket in a cluster: a majority survives the loss of one node.
CLUSTER_COPIES = 3


async def connect_long_lived(url: str, name: str) -> Client:
    """A node's long-lived connection: reconnect for ever, ping often enough that a link cut
    without a word (a lost route, a dead switch) is noticed in seconds, not minutes, and log
    the link going and coming back once each, not a traceback every attempt; a close this
    process asked for is not a lost link."""
    link = _Link(name)
    link.client = await nats.connect(
        servers(url), name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
        ping_interval=5, max_outstanding_pings=3, error_cb=link.error,
        disconnected_cb=link.disconnected, reconnected_cb=link.reconnected)
    return link.client


async def connect_once(url: str) -> Client:
    """A command's connection: each server tried twice, half a second apart, then Unavailable
    naming the URL (nats-py's defaults retry for two minutes, a traceback every two seconds)."""

    async def quiet(_: Exception) -> None:
        pass

    try:
        return await nats.connect(servers(url), allow_reconnect=False, max_reconnect_attempts=1,
                                  reconnect_time_wait=0.5, connect_timeout=5, error_cb=quiet)
    except (TimeoutError, OSError, NoServersError) as exc:
        raise Unavailable(f"NATS does not answer at {url} ({exc or type(exc).__name__})"
                          ) from None


class _Link:
    """What one connection says about its link: each new error once, the link lost once,
    and its return (nats-py would log each failed attempt, every half second, with a
    traceback)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._down = False
        self._last = ""
        self.client: Client | None = None

    async def error(self, exc: Exception) -> None:
        text = str(exc) or type(exc).__name__
        if text != self._last:
            self._last = text
            log.warning("%s: NATS: %s", self._name, text)

    async def disconnected(self) -> None:
        if self.client is not None and self.client.is_closed:
            log.debug("%s: connection to NATS closed", self._name)
            return  # closed by this process (nats-py calls this on a close too)
        if not self._down:
            self._down = True
            log.warning("%s: lost the connection to NATS; reconnecting every 0.5 s",
                        self._name)

    async def reconnected(self) -> None:
        self._down = False
        self._last = ""
        log.info("%s: reconnected to NATS", self._name)


def servers(url: str) -> list[str]:
    """The NATS URLs of a comma-separated list (the nodes of a cluster, or one server)."""
    return [u.strip() for u in url.split(",") if u.strip()]


def copies(js: JetStreamContext) -> int:
    """How many copies a new stream or bucket keeps: three when the server is one of a
    cluster, so that acknowledged messages outlive a node; one on a lone server."""
    info: dict[str, object] = getattr(getattr(js, "_nc", None), "_server_info", {}) or {}
    return CLUSTER_COPIES if info.get("cluster") else 1


def stream_name(tenant: str) -> str:
    return f"PT_{tenant.upper().replace('.', '_').replace('-', '_')}"


def subject(tenant: str) -> str:
    """Change records."""
    return f"pt.changes.{tenant}"


def keys_subject(tenant: str) -> str:
    """The tenant's key ring, still encrypted under the key-encryption key, each time it
    changes (a rotation): replicas need it to check the codes' tags."""
    return f"pt.keys.{tenant}"


def all_subjects(tenant: str) -> str:
    return f"pt.*.{tenant}"


def msg_id(epoch: int, seq: int, part: int) -> str:
    return f"{epoch}:{seq}:{part}"


async def ensure_stream(js: JetStreamContext, tenant: str) -> None:
    """The tenant's change stream, created if missing (file storage, ``copies`` copies)."""
    name = stream_name(tenant)
    try:
        await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(StreamConfig(
            name=name, subjects=[subject(tenant), keys_subject(tenant)], storage=StorageType.FILE,
            num_replicas=copies(js), duplicate_window=DUPLICATE_WINDOW_S))
