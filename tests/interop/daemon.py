"""Run our daemon (`matter-ota serve`) inside a test's network namespace."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .netns import Namespace

CHECKOUT = Path(__file__).resolve().parent.parent.parent


class Daemon:
    """A running `matter-ota serve`; ``log()`` is what it wrote so far."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 10.0) -> bool:
        """Wait until ``needle`` appears in the log (or the process dies)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log():
                return True
            if self.proc.poll() is not None:
                return needle in self.log()
            time.sleep(0.05)
        return False


@contextlib.contextmanager
def serve(ns: Namespace, workdir: Path, *args: str, ready: str = "event=listening"
          ) -> Iterator[Daemon]:
    """Start `matter-ota serve ARGS` in ``ns``; stop it (by its PID) at the end."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "daemon.log"
    env = dict(os.environ, PYTHONPATH=str(CHECKOUT / "daemon"), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "matter_ota.cli", "serve",
               "--state-dir", str(workdir / "state"), *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(ns.wrap(command), stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=workdir)
    daemon = Daemon(proc, log_path)
    try:
        if not daemon.wait_for(ready):
            raise RuntimeError(f"daemon did not become ready:\n{daemon.log()}")
        yield daemon
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
