"""Shared pytest fixtures."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from dcl_server import FakeLedger, leftover_threads


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """A test that leaves a download thread, a server or an event loop thread behind fails.

    DCL modules switch it on for every test with ``pytest.mark.usefixtures``."""
    before = set(threading.enumerate())
    yield
    assert leftover_threads(before) == []


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[FakeLedger]:
    """A real HTTPS DCL ledger on loopback with its own CA under ``tmp_path / "tls"``."""
    (tmp_path / "tls").mkdir()
    server = FakeLedger(tmp_path / "tls").start()
    yield server
    server.stop()
