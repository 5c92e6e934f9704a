"""Rate limits for the log lines a remote peer can cause, one per datagram.

A flood of garbage must not become a flood of log lines: every drop is worth a DEBUG line and
every refused handshake an INFO line, until someone sends 20,000 of them a second. The
:class:`PeerEventLimit` filter lets ``burst`` records of one event (the ``event=...`` key that
starts each of our messages) through per ``interval`` seconds and logger, drops the rest, and
adds ``suppressed=N`` to the first record let through after a suppression, so the count is not
lost. Records at WARNING and above, and INFO records of events a peer cannot trigger at will
(a session established, a release transition), always pass.

The runtime installs it (:func:`install`); protocol code logs as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

#: INFO events one datagram from anyone can cause (refused or failed handshakes and requests).
PEER_TRIGGERED_INFO = frozenset({
    "event=status_sent", "event=pase_failed", "event=case_refused", "event=case_failed",
    "event=exchange_failed", "event=im_status", "event=command_status", "event=write_refused",
    "event=timed_expired", "event=slow_datagram",
})

#: The loggers of the code a datagram runs through.
PROTOCOL_LOGGERS = ("matter_ota.node", "matter_ota.exchange", "matter_ota.pase",
                    "matter_ota.case", "matter_ota.im", "matter_ota.bdx", "matter_ota.udp")


class PeerEventLimit(logging.Filter):
    """At most ``burst`` records per event key and logger every ``interval`` seconds."""

    def __init__(self, burst: int = 20, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.interval = interval
        self.clock = clock
        # (logger, event) -> [window start, records let through, records suppressed]
        self._windows: dict[tuple[str, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        msg = record.msg if isinstance(record.msg, str) else ""
        event = msg.split(" ", 1)[0]
        if record.levelno == logging.INFO and event not in PEER_TRIGGERED_INFO:
            return True
        now = self.clock()
        key = (record.name, event)
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.interval:
            suppressed = int(window[2]) if window is not None else 0
            self._windows[key] = [now, 1, 0]
            if len(self._windows) > 1024:  # event keys are few; a bound all the same
                self._windows = {key: self._windows[key]}
            if suppressed and not isinstance(record.args, dict):
                args = _args(record.args)
                record.msg = f"{msg if args else msg.replace('%', '%%')} suppressed=%d"
                record.args = (*args, suppressed)
            return True
        if window[1] < self.burst:
            window[1] += 1
            return True
        window[2] += 1
        return False


def _args(args: object) -> tuple[object, ...]:
    if args is None:
        return ()
    return args if isinstance(args, tuple) else (args,)


def install(limit: PeerEventLimit | None = None,
            loggers: Iterable[str] = PROTOCOL_LOGGERS) -> PeerEventLimit:
    """Put one limiter on the protocol loggers (once: a second call returns the first)."""
    names = list(loggers)
    for name in names:
        for existing in logging.getLogger(name).filters:
            if isinstance(existing, PeerEventLimit):
                return existing
    limit = limit or PeerEventLimit()
    for name in names:
        logging.getLogger(name).addFilter(limit)
    return limit


def uninstall(loggers: Iterable[str] = PROTOCOL_LOGGERS) -> None:
    """Take the limiter off the protocol loggers again (tests that count log lines)."""
    for name in loggers:
        logger = logging.getLogger(name)
        for existing in list(logger.filters):
            if isinstance(existing, PeerEventLimit):
                logger.removeFilter(existing)
