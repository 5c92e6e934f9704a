"""Host side of the connectedhomeip controller harness.

``run_controller(ns, scratch, "pase", "--ip", ...)`` runs ``controller_main.py`` with the
test venv's Python inside the namespace ``ns``, in a fresh mount namespace with a private root
(``private_root.py``) so that the SDK's hard-coded ``/data`` and ``/tmp`` files land in
``scratch``. Returns the parsed outcome plus the SDK's log for failure messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .netns import Namespace, network_namespace, unavailable_reason

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent.parent


@contextlib.contextmanager
def sdk_namespace(prefix: str) -> Iterator[Namespace]:
    """A network namespace for a test that drives the connectedhomeip SDK; the test is skipped
    where no namespace can be made or the SDK's native library does not load."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    try:
        import chip.native  # noqa: F401
    except Exception as e:  # the SDK's native library may not load on this machine
        pytest.skip(f"connectedhomeip bindings unavailable: {e}")
    with network_namespace(prefix) as namespace:
        yield namespace


def credentials_dir() -> Path | None:
    """The shared test credentials, or None (tests skip) when this machine lacks them."""
    env = os.environ.get("MATTER_OTA_TEST_CREDENTIALS")
    path = Path(env) if env else CHECKOUT.parent / "shared" / "credentials" / "test"
    return path if (path / "paa-fff1-cert.der").is_file() else None


def paa_trust_store(scratch: Path) -> Path:
    """A trust store dir holding the test PAA (linked from the shared credentials, not copied).

    It lives in ``scratch/data``, which the controller sees as ``/data``.
    """
    creds = credentials_dir()
    store = scratch / "data" / "paa-trust-store"
    store.mkdir(parents=True, exist_ok=True)
    if creds is not None:
        link = store / "paa-fff1-cert.der"
        if not link.exists():
            link.symlink_to(creds / "paa-fff1-cert.der")
    return store


@dataclass
class ControllerResult:
    result: dict[str, Any]
    returncode: int
    log: str

    @property
    def ok(self) -> bool:
        return bool(self.result.get("ok"))


def private_root_command(scratch: Path, *command: str) -> list[str]:
    """``command`` in a fresh mount namespace and private root whose /data and /tmp are in
    ``scratch``; the checkout, the virtualenv and the shared test credentials (the trust
    store's link target) stay visible even when they live under /tmp (as in CI's clones)."""
    keep = [str(CHECKOUT), sys.prefix, sys.base_prefix]
    creds = credentials_dir()
    if creds is not None:
        keep.append(str(creds.resolve()))
    return [
        "unshare", "-m", "--propagation", "private",
        sys.executable, str(HERE / "private_root.py"), "--scratch", str(scratch),
        *(arg for path in keep for arg in ("--keep", path)), "--",
        *command,
    ]  # fmt: skip


def run_controller(ns: Namespace, scratch: Path, *args: str, timeout: float = 60.0
                   ) -> ControllerResult:
    """Run one controller sub-command and return its outcome."""
    scratch.mkdir(parents=True, exist_ok=True)
    result_file = scratch / "data" / "result.json"
    result_file.unlink(missing_ok=True)
    command = private_root_command(
        scratch,
        sys.executable, str(HERE / "controller_main.py"),
        # Paths as the controller sees them inside its private root.
        "--storage", "/data/controller.json",
        "--paa-trust-store", "/data/" + paa_trust_store(scratch).name,
        "--result", "/data/result.json",
        *args,
    )
    proc = subprocess.run(ns.wrap(command), capture_output=True, text=True, timeout=timeout,
                          cwd=CHECKOUT)
    log = proc.stderr + proc.stdout
    if not result_file.exists():
        return ControllerResult({"ok": False, "error": "no result"}, proc.returncode, log)
    result = json.loads(result_file.read_text())
    result_file.unlink()
    return ControllerResult(result, proc.returncode, log)
