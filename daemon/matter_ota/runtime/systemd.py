"""systemd's service notification protocol (sd_notify), on a plain unix datagram socket.

A ``Type=notify`` unit gives the service ``$NOTIFY_SOCKET``; each notification is one datagram of
newline-separated ``KEY=VALUE`` assignments (sd_notify(3)): ``READY=1`` once the daemon serves,
``STATUS=...`` for ``systemctl status``, ``RELOADING=1``, ``STOPPING=1`` on the way down, and
``WATCHDOG=1`` at least every ``$WATCHDOG_USEC`` microseconds when the unit sets
``WatchdogSec=``. A socket name starting with ``@`` is in the abstract namespace.

Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing. A failed send is logged and
ignored: the daemon never stops serving because its supervisor is not listening.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

import anyio

log = logging.getLogger("matter_ota.systemd")


class Notifier:
    """Sends notifications to the service manager (a no-op when there is none)."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._socket: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """The notifier for this process: ``$NOTIFY_SOCKET``, and ``$WATCHDOG_USEC`` when
        ``$WATCHDOG_PID`` is unset or is our own pid (sd_watchdog_enabled(3))."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        pid = env.get("WATCHDOG_PID")
        if pid is None or pid == str(os.getpid()):
            try:
                usec = int(env.get("WATCHDOG_USEC", "")) or None
            except ValueError:
                usec = None
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """How often to send ``WATCHDOG=1``: half the manager's timeout, as sd_notify(3)
        recommends; None when the watchdog is off."""
        return None if not self.watchdog_usec else self.watchdog_usec / 2e6

    def notify(self, **fields: str | int) -> bool:
        """Send one notification (``notify(READY=1, STATUS="serving")``); True if sent."""
        if self.address is None or not fields:
            return False
        if any("\n" in str(v) for v in fields.values()):
            raise ValueError("a notification value cannot contain a newline")
        text = "\n".join(f"{key}={value}" for key, value in fields.items())
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]  # abstract namespace
        try:
            if self._socket is None:
                kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                self._socket = socket.socket(socket.AF_UNIX, kind)
                self._socket.setblocking(False)
            self._socket.sendto(text.encode(), target)
        except OSError as exc:
            if not self._failing:  # once per run of failures, not at every watchdog ping
                log.warning("event=sd_notify_failed socket=%s error=%s", self.address, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("event=sd_notify_recovered socket=%s", self.address)
            self._failing = False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY=1, STATUS=status, MAINPID=os.getpid())

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    async def run_watchdog(self) -> None:
        """Ping the watchdog at half its timeout until cancelled (returns at once if off).

        It runs in the daemon's event loop: a loop stuck for longer than the timeout stops the
        pings, and systemd restarts the service, which is the point of the watchdog."""
        interval = self.watchdog_interval
        if interval is None or not self.enabled:
            return
        log.info("event=watchdog_enabled interval_s=%.1f", interval)
        while True:
            self.watchdog()
            await anyio.sleep(interval)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
