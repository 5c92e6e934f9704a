"""Throw-away network namespaces for interop tests.

Each namespace holds a veth pair with both ends inside it (so nothing ever leaves the
machine, mDNS included), ``lo`` up and multicast on. The device end (our daemon) is
``fd00:6d61::1`` / ``10.233.0.1``, the controller end ``fd00:6d61::2`` / ``10.233.0.2``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

DEVICE_V6 = "fd00:6d61::1"
CONTROLLER_V6 = "fd00:6d61::2"
DEVICE_V4 = "10.233.0.1"
CONTROLLER_V4 = "10.233.0.2"


def unavailable_reason() -> str | None:
    """Why interop tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "interop tests need root (network namespaces, mounts)"
    for tool in ("ip", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"interop tests need the `{tool}` command"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Namespace:
    """A live network namespace; ``wrap`` turns a command into one that runs inside it."""

    name: str
    device_v6: str = DEVICE_V6
    controller_v6: str = CONTROLLER_V6
    device_v4: str = DEVICE_V4
    controller_v4: str = CONTROLLER_V4

    def wrap(self, command: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *command]

    def run(self, command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.wrap(command), check=True, capture_output=True, text=True)


@contextlib.contextmanager
def network_namespace(prefix: str = "mota") -> Iterator[Namespace]:
    """Create a namespace with a veth pair inside, yield it, and always delete it."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    _ip("netns", "add", name)
    try:
        ns = Namespace(name)
        # veth names are per namespace, so fixed names cannot collide with other tests.
        _ip("-n", name, "link", "add", "dev0", "type", "veth", "peer", "name", "ctl0")
        _ip("-n", name, "link", "set", "lo", "up")
        for dev, v6, v4 in (("dev0", ns.device_v6, ns.device_v4),
                            ("ctl0", ns.controller_v6, ns.controller_v4)):
            _ip("-n", name, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            _ip("-n", name, "addr", "add", f"{v4}/24", "dev", dev)
            _ip("-n", name, "link", "set", dev, "multicast", "on", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
