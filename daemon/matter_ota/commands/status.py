"""`matter-ota status`: is the daemon running, and does it serve the config files on disk?

The daemon records in the state store where it listens, a heartbeat, and the generation and
digest of the config it applied; this command compares that digest with the files on disk,
so an operator (or a script) sees whether the last edit is live, still pending, or refused.
Exit 0 when a daemon is running, 3 when none is (the LSB "not running" code).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matter_ota.cli import CliError
from matter_ota.commands._common import add_config_options
from matter_ota.commands._console import load_provider_config, state_dir
from matter_ota.reload import files_digest
from matter_ota.runtime.service import HEARTBEAT_INTERVAL, pid_alive
from matter_ota.store import DB_NAME, DaemonStatus, Store, StoreError

EXIT_NOT_RUNNING = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="the daemon: running, where, which config generation")
    add_config_options(p)
    p.add_argument("--json", action="store_true", help="one JSON object for scripts")
    p.set_defaults(func=run)


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def liveness(status: DaemonStatus | None, now: float) -> str:
    """running, not_responding (no heartbeat, or its process is gone), stopped, never_started."""
    if status is None:
        return "never_started"
    if status.state == "stopped":
        return "stopped"
    if now - status.heartbeat_at > 3 * HEARTBEAT_INTERVAL or not pid_alive(status.pid):
        return "not_responding"
    return "running"


def report(store: Store, provider_paths: tuple[Path, Path], now: float) -> dict[str, Any]:
    status = store.daemon_status()
    on_disk = files_digest(provider_paths)
    warnings = [{"file": w.file, "line": w.line, "reason": w.reason, "at": iso(w.at)}
                for w in store.config_warnings()]
    out: dict[str, Any] = {"state": liveness(status, now), "files_digest": on_disk,
                           "warnings": warnings}
    if status is not None:
        out.update({
            "pid": status.pid, "address": status.address, "started_at": iso(status.started_at),
            "heartbeat_at": iso(status.heartbeat_at),
            "config_generation": status.config_generation,
            "config_digest": status.config_digest,
            "config_applied_at": iso(status.config_applied_at),
            "in_sync": status.config_digest == on_disk,
        })
    return out


def describe(r: dict[str, Any]) -> list[str]:
    """The report as lines for people."""
    state = r["state"]
    if state == "never_started":
        return ["daemon: has never run on this state directory"]
    lines = [f"daemon: {state.replace('_', ' ')} (pid {r['pid']}) on {r['address'] or '-'}, "
             f"started {r['started_at']}, last heartbeat {r['heartbeat_at']}"]
    lines.append(f"config: generation {r['config_generation']} applied "
                 f"{r['config_applied_at']} (digest {r['config_digest'][:12]})")
    if r["in_sync"]:
        lines.append("files:  the daemon serves the files on disk" if state == "running" else
                     "files:  unchanged since the daemon last applied them")
    elif r["warnings"]:
        lines.append("files:  the files on disk were refused; the daemon serves the last "
                     "valid version")
    else:
        lines.append("files:  changed since the daemon applied them (a valid edit is live "
                     "within 2 s)" if state == "running" else
                     "files:  changed since the daemon last applied them")
    lines += [f"warning: {w['file']}:{w['line'] or '-'}: {w['reason']}" for w in r["warnings"]]
    return lines


def daemon_note(store: Store, paths: tuple[Path, Path], now: float) -> str | None:
    """One line for `matter-ota releases`: which config generation the daemon serves."""
    r = report(store, paths, now)
    if r["state"] == "never_started":
        return None
    live = ("the files on disk are live" if r["in_sync"] else
            "the files on disk were refused" if r["warnings"] else
            "the files on disk are not applied yet")
    return (f"daemon {r['state'].replace('_', ' ')} (pid {r['pid']}), config generation "
            f"{r['config_generation']} applied {r['config_applied_at']}; {live}")


def run(args: argparse.Namespace) -> int:
    provider = load_provider_config(args)
    paths = (provider.path, provider.releases_file)
    directory = state_dir(args, provider)
    if not (directory / DB_NAME).exists():
        r: dict[str, Any] = {"state": "never_started", "files_digest": files_digest(paths),
                             "warnings": []}
    else:
        try:
            with Store.open(directory, create=False) as store:
                r = report(store, paths, time.time())
        except StoreError as exc:
            raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print("\n".join(describe(r)))
    return 0 if r["state"] == "running" else EXIT_NOT_RUNNING
