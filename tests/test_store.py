"""The SQLite state store: schema, tokens, outcomes, audit, concurrency and crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from matter_ota import store as store_mod
from matter_ota.store import Fabric, Store, StoreError, schema

DAEMON_DIR = Path(__file__).resolve().parent.parent / "daemon"
CFID = "2906C908D115D362"


def _seen(s: Store, node: int, now: float = 1000.0, version: int = 1) -> None:
    s.record_query(
        compressed_fabric_id=CFID, node_id=node, vendor_id=0xFFF1, product_id=0x8001,
        software_version=version, hardware_version=None, channel="production",
        result="NotAvailable", now=now,
    )


def test_fresh_database_is_at_current_schema_with_wal(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        assert s.schema_version() == store_mod.SCHEMA_VERSION
        assert s.integrity_check() == []
    raw = sqlite3.connect(tmp_path / store_mod.DB_NAME)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    raw = sqlite3.connect(tmp_path / store_mod.DB_NAME)
    raw.execute(f"PRAGMA user_version = {store_mod.SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer than this program"):
        Store.open(tmp_path)


def test_migration_steps_apply_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store.open(tmp_path).close()
    step = ("CREATE TABLE extra (x INTEGER)",)
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, step))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema.MIGRATIONS))
    with Store.open(tmp_path) as s:
        assert s.schema_version() == len(schema.MIGRATIONS)
        assert s._read("SELECT count(*) FROM extra")[0][0] == 0


def test_garbage_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / store_mod.DB_NAME).write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError):
        Store.open(tmp_path)


def test_missing_database_without_create(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no state database"):
        Store.open(tmp_path / "nowhere", create=False)


def test_fabrics_roundtrip(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        s.put_fabric(Fabric(1, CFID.lower(), "home", b"\x04" * 65, 0x1234), now=1.0)
        s.put_fabric(Fabric(2, "00000000000000AB", "lab", None, 7), now=2.0)
        s.put_fabric(Fabric(2, "00000000000000AB", "lab2", None, 7), now=3.0)
        fabrics = s.fabrics()
        assert [f.label for f in fabrics] == ["home", "lab2"]
        assert fabrics[0].compressed_fabric_id == CFID
        s.remove_fabric(1)
        assert [f.fabric_index for f in s.fabrics()] == [2]


def test_device_ledger_keeps_first_seen(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        _seen(s, 5, now=10.0, version=1)
        _seen(s, 5, now=20.0, version=2)
        d = s.device(CFID, 5)
        assert d is not None
        assert (d.first_seen, d.last_seen, d.software_version) == (10.0, 20.0, 2)
        assert s.device(CFID, 6) is None
        assert len(s.devices(vendor_id=0xFFF1, product_id=0x8001)) == 1
        assert s.devices(vendor_id=1, product_id=1) == []


def test_tokens_are_bound_to_device_and_expire(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        _seen(s, 5)
        _seen(s, 6)
        token = s.issue_token(CFID, 5, 1, now=100.0, ttl=60.0)
        assert 8 <= len(token) <= 32
        assert s.issue_token(CFID, 5, 1, now=100.0, ttl=60.0) != token
        record = s.check_token(token, CFID, 5, now=159.0)
        assert record is not None and record.software_version == 1
        assert s.check_token(token, CFID, 6, now=120.0) is None  # another device's token
        assert s.check_token(token, CFID, 5, now=160.0) is None  # expired
        with pytest.raises(StoreError, match="unknown device"):
            s.issue_token(CFID, 99, 1, now=100.0, ttl=60.0)


def test_transfers_and_outcome_counts(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        for node in range(1, 6):
            _seen(s, node)
        rel = {"channel": "production", "vendor_id": 0xFFF1, "product_id": 0x8001,
               "software_version": 2}
        for node in range(1, 6):
            s.set_outcome(**rel, compressed_fabric_id=CFID, node_id=node, state="offered",
                          now=1.0)
        t1 = s.start_transfer(**rel, compressed_fabric_id=CFID, node_id=1, total_bytes=100,
                              now=2.0)
        t2 = s.start_transfer(**rel, compressed_fabric_id=CFID, node_id=2, total_bytes=100,
                              now=2.0)
        s.progress_transfer(t1, 50)
        assert s.active_transfers() == 2
        s.end_transfer(t2, "failed", now=3.0, reason="digest mismatch")
        s.end_transfer(t1, "completed", now=3.0)
        s.set_outcome(**rel, compressed_fabric_id=CFID, node_id=1, state="applied", now=4.0)
        counts = s.outcome_counts("production", 0xFFF1, 0x8001, 2)
        assert (counts.offered, counts.downloading, counts.applied, counts.failed) == (
            3, 0, 1, 1)
        tr = s.transfer(t2)
        assert tr is not None and tr.state == "failed" and tr.reason == "digest mismatch"
        assert s.active_transfers() == 0
        for state in ("active", "completed", "failed", "bogus"):
            with pytest.raises(StoreError, match="is completed: it cannot end"):
                s.end_transfer(t1, state, now=5.0)  # ended transfers are final
        assert (s.transfer(t1) or tr).state == "completed"
        with pytest.raises(StoreError, match="no transfer"):
            s.end_transfer(999, "completed", now=5.0)
        with pytest.raises(StoreError):
            s.set_outcome(**rel, compressed_fabric_id=CFID, node_id=1, state="bogus", now=1.0)


def test_audit_log_order_and_json(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        s.audit(actor="cli", action="release", now=1.0, channel="production",
                product="FFF1:8001", before=None, after={"percent": 10})
        s.audit(actor="cli", action="stop", now=2.0, channel="production",
                product="FFF1:8001", before={"status": "LIVE"}, after={"status": "INACTIVE"})
        s.audit(actor="cli", action="release", now=3.0, channel="beta")
        rows = s.history()
        assert [r.action for r in rows] == ["release", "stop", "release"]
        assert rows[1].before == {"status": "LIVE"} and rows[1].after == {"status": "INACTIVE"}
        assert [r.at for r in s.history(limit=2)] == [2.0, 3.0]
        assert [r.channel for r in s.history(channel="beta")] == ["beta"]


def test_config_warnings(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        s.set_config_warning("releases.yaml", 4, "bad percent", now=1.0)
        assert s.config_warnings()[0].line == 4
        s.clear_config_warnings()
        assert s.config_warnings() == []


def test_two_connections_write_concurrently(tmp_path: Path) -> None:
    """Two writers (as daemon and CLI would be) interleave without 'database is locked'."""
    Store.open(tmp_path).close()
    errors: list[BaseException] = []

    def writer(actor: str) -> None:
        try:
            with Store.open(tmp_path) as s:
                for i in range(200):
                    s.audit(actor=actor, action="tick", now=float(i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store.open(tmp_path) as s:
        assert len(s.history()) == 400


_WRITER = """
import sys
from pathlib import Path
from matter_ota.store import Store
s = Store.open(Path(sys.argv[1]))
i = 0
while True:
    s.record_query(compressed_fabric_id="2906C908D115D362", node_id=i, vendor_id=1,
                   product_id=2, software_version=i, hardware_version=None,
                   channel="production", result="x", now=float(i))
    row = s.audit(actor="crash", action="tick", now=float(i), after={"i": i})
    print(i, row, flush=True)
    i += 1
"""


@pytest.mark.parametrize("kill_after", [0.05, 0.3, 0.8])
def test_sigkill_loses_no_acknowledged_write(tmp_path: Path, kill_after: float) -> None:
    """Kill a writer at an arbitrary instant: every write it acknowledged is still there."""
    env = {**os.environ, "PYTHONPATH": str(DAEMON_DIR)}
    Store.open(tmp_path).close()  # schema exists before the kill window
    acked: list[tuple[int, int]] = []
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)],
        stdout=subprocess.PIPE, env=env, text=True,
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # wait until it is really writing
        acked.append(tuple(map(int, first.split())))  # type: ignore[arg-type]
        time.sleep(kill_after)
        os.kill(proc.pid, signal.SIGKILL)
        for line in proc.stdout:
            if line.endswith("\n"):  # a line cut by the kill is no acknowledgement
                acked.append(tuple(map(int, line.split())))  # type: ignore[arg-type]
    assert proc.returncode == -signal.SIGKILL
    with Store.open(tmp_path) as s:
        assert s.integrity_check() == []
        audit_ids = {r.id for r in s.history()}
        nodes = {d.node_id for d in s.devices()}
        for i, row in acked:
            assert row in audit_ids
            assert i in nodes
        # nothing beyond one in-flight write either way
        assert len(nodes) - len(acked) in (0, 1)


def test_outcome_counts_any_version_and_since(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        for node, version, at in ((1, 2, 10.0), (2, 3, 20.0), (3, 3, 30.0)):
            s.set_outcome(channel="production", vendor_id=1, product_id=2,
                          software_version=version, compressed_fabric_id=CFID, node_id=node,
                          state="offered", now=at)
        assert s.outcome_counts("production", 1, 2).offered == 3
        assert s.outcome_counts("production", 1, 2, 3).offered == 2
        assert s.outcome_counts("production", 1, 2, since=20.0).offered == 2
        assert s.outcome_counts("beta", 1, 2).offered == 0


def test_last_valid_config(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        assert s.last_valid_config("releases.yaml") is None
        s.save_valid_config("releases.yaml", "releases: []\n", now=1.0)
        s.save_valid_config("releases.yaml", "releases: [] # v2\n", now=2.0)
        assert s.last_valid_config("releases.yaml") == "releases: [] # v2\n"


def test_cohort_devices_and_offers(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        for node in (1, 2, 3):
            _seen(s, node)
        s.record_query(compressed_fabric_id=CFID, node_id=4, vendor_id=0xFFF1,
                       product_id=0x8001, software_version=1, hardware_version=None,
                       channel="beta", result="", now=1.0)
        offer = {"channel": "production", "vendor_id": 0xFFF1, "product_id": 0x8001,
                 "compressed_fabric_id": CFID, "now": 5.0}
        s.mark_offered(**offer, cohort_seed="AA" * 16, node_id=2)  # type: ignore[arg-type]
        s.mark_offered(**offer, cohort_seed="aa" * 16, node_id=2)  # type: ignore[arg-type]
        s.mark_offered(**offer, cohort_seed="bb" * 16, node_id=3)  # type: ignore[arg-type]
        known, offered = s.cohort_devices("production", 0xFFF1, 0x8001, "aa" * 16)
        assert sorted(known) == [(CFID, 1), (CFID, 2), (CFID, 3)]
        assert offered == [(CFID, 2)]
        t = s.start_transfer(channel="production", vendor_id=0xFFF1, product_id=0x8001,
                             software_version=2, compressed_fabric_id=CFID, node_id=1,
                             total_bytes=10, now=6.0)
        assert s.active_transfer_devices() == [(CFID, 1)]
        s.end_transfer(t, "completed", now=7.0)
        assert s.active_transfer_devices() == []


def test_import_devices_in_one_transaction(tmp_path: Path) -> None:
    from matter_ota.store import DeviceRecord

    with Store.open(tmp_path) as s:
        n = s.import_devices(
            DeviceRecord(CFID, node, 1, 2, 3, None, "production", 1.0, 2.0, "")
            for node in range(1000))
        assert n == 1000 and len(s.devices(vendor_id=1, product_id=2)) == 1000


def test_hardware_versions(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        _seen(s, 1)
        s.record_query(compressed_fabric_id=CFID, node_id=2, vendor_id=1, product_id=2,
                       software_version=1, hardware_version=7, channel=None, result="", now=1.0)
        assert s.hardware_versions() == {(CFID, 2): 7}


def test_failed_write_rolls_back_and_is_a_store_error(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        with pytest.raises(StoreError, match="write failed"), s._write() as c:
            c.execute("INSERT INTO audit (at, actor, action) VALUES (1, 'a', 'b')")
            c.execute("INSERT INTO no_such_table VALUES (1)")
        assert s.history() == []  # the first insert was rolled back
        s.audit(actor="a", action="after", now=2.0)  # and the connection still works
        assert [e.action for e in s.history()] == ["after"]


def test_upgrade_from_schema_1_keeps_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """A database written by the first schema is upgraded in place, rows intact."""
    with monkeypatch.context() as m:
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        m.setattr(schema, "SCHEMA_VERSION", 1)
        with Store.open(tmp_path) as s:
            assert s.schema_version() == 1
            s._conn.execute("INSERT INTO fabrics (fabric_index, compressed_fabric_id, label,"
                            " node_id, added_at) VALUES (1, ?, 'home', 5, 1.0)", (CFID,))
            _seen(s, 9)
    with Store.open(tmp_path) as s:
        assert s.schema_version() == schema.SCHEMA_VERSION >= 2
        [fabric] = s.fabrics()
        assert (fabric.label, fabric.node_id, fabric.record) == ("home", 5, None)
        assert s.device(CFID, 9) is not None
        s.put_fabric(Fabric(1, CFID, "home", None, 5, {"noc": "15", "fabric_index": 1}), 2.0)
        assert s.fabrics()[0].record == {"noc": "15", "fabric_index": 1}
        assert s.integrity_check() == []


def test_database_file_is_private(tmp_path: Path) -> None:
    Store.open(tmp_path / "state").close()
    assert (tmp_path / "state" / store_mod.DB_NAME).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


def test_durable_writes_fsync_and_ledger_writes_do_not(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        def level() -> int:
            return int(s._conn.execute("PRAGMA synchronous").fetchone()[0])

        assert level() == 1  # NORMAL between writes
        with s._write(durable=True):
            assert level() == 2  # FULL for this commit
        assert level() == 1
        with pytest.raises(StoreError), s._write(durable=True) as c:
            c.execute("INSERT INTO no_such_table VALUES (1)")
        assert level() == 1
