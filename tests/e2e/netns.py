"""Linux network namespaces joined by veth pairs to one bridge, for end-to-end tests that run
each node as its own host: addresses exist only inside the namespaces, so nothing a test starts
is reachable from (or reaches) the machine's own network."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

SUBNET = "10.77.0"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Network:
    """A hub namespace holding a bridge, and one namespace per host plugged into it."""

    prefix: str = field(default_factory=lambda: f"pt{os.getpid() % 100000}")
    hosts: dict[str, str] = field(default_factory=dict)

    @property
    def hub(self) -> str:
        return f"{self.prefix}-hub"

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def create(self) -> None:
        _ip("netns", "add", self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")

    def add(self, host: str, number: int) -> str:
        """A namespace for ``host`` with the address SUBNET.number on its eth0; that address."""
        ns, peer, address = self.ns(host), f"h{number}", f"{SUBNET}.{number}"
        _ip("netns", "add", ns)
        _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer, "netns",
            self.hub)
        _ip("-n", self.hub, "link", "set", peer, "master", "br0", "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        self.hosts[host] = address
        return address

    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside ``host``'s namespace."""
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def link(self, host: str, up: bool) -> None:
        """Plugs ``host``'s cable in or pulls it out."""
        _ip("-n", self.ns(host), "link", "set", "eth0", "up" if up else "down")

    def destroy(self) -> None:
        for name in [*(self.ns(h) for h in self.hosts), self.hub]:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)
