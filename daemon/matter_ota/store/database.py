"""The state database's connection: opening, schema migration, transactions.

Durability and concurrency choices:

* ``journal_mode=WAL`` lets the daemon write while the CLI reads (and the other way round);
  readers never block the writer.
* Two kinds of commit. In WAL mode every commit is written to the WAL before it returns,
  so a commit survives a crash of the process at any instant (``tests/test_store.py`` kills
  a writer with SIGKILL to prove it). What differs is a power cut:

  - *durable* writes (fabrics and their keys, release transitions and the audit log, the
    last valid config) run with ``synchronous=FULL``: fsynced before the commit returns,
    they survive a power cut too;
  - *ledger* writes (device queries, tokens, transfers, outcomes, cohort offers) run with
    ``synchronous=NORMAL``: a power cut may lose the last second of them, which the devices
    repair by querying again. They are the high-rate writes, and an fsync each would cap
    the daemon at a few hundred queries a second (``scripts/bench.py store``). A durable
    commit also makes every earlier ledger commit durable (it fsyncs the same WAL).
* Writes run in short ``BEGIN IMMEDIATE`` transactions: the write lock is taken up front, so
  two processes never both hold a read snapshot and then fail to upgrade it (SQLITE_BUSY
  mid-transaction). ``busy_timeout`` lets a writer wait for the other one instead of failing.
* The schema is versioned with ``PRAGMA user_version`` and upgraded by
  :data:`schema.MIGRATIONS`, one transaction per step; a database newer than this code is
  refused, never touched.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from matter_ota.store import schema
from matter_ota.store.schema import BUSY_TIMEOUT_MS, DB_NAME


class StoreError(Exception):
    """The state store cannot be opened or used (corrupt, newer schema, locked too long)."""


class Database:
    """A connection to the state database: opening, migrating, transactions.

    :class:`matter_ota.store.Store` adds the operations on the tables.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, state_dir: Path, *, create: bool = True) -> Self:
        """Open (and create or migrate) ``state_dir/state.sqlite3``."""
        path = Path(state_dir) / DB_NAME
        if not create and not path.exists():
            raise StoreError(f"{path}: no state database (has the daemon run here?)")
        try:
            # Private: the database holds the node's operational keys (fabric records).
            Path(state_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (no implicit transactions).
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open state database: {exc}") from exc
        store = cls(conn, path)
        try:
            store._configure()
            store._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{path}: {exc}") from exc
        except StoreError:
            conn.close()
            raise
        return store

    def close(self) -> None:
        """Close the connection (uncommitted work is rolled back by SQLite)."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _configure(self) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch to WAL journal (got {mode})")
        c.execute("PRAGMA synchronous = NORMAL")  # per write, see _write(durable=...)
        c.execute("PRAGMA foreign_keys = ON")

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this program "
                f"({schema.SCHEMA_VERSION}); upgrade matter-ota"
            )
        while version < schema.SCHEMA_VERSION:
            with self._write(durable=True):
                # Re-read inside the write lock: another process may have migrated meanwhile.
                version = self.schema_version()
                if version >= schema.SCHEMA_VERSION:
                    break
                for statement in schema.MIGRATIONS[version]:
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {version + 1}")
            version = self.schema_version()

    def schema_version(self) -> int:
        """The schema step this database is at (``PRAGMA user_version``)."""
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def integrity_check(self) -> list[str]:
        """SQLite's own check plus foreign keys; an empty list means healthy."""
        rows = [str(r[0]) for r in self._conn.execute("PRAGMA integrity_check")]
        problems = [r for r in rows if r != "ok"]
        problems += [repr(tuple(r)) for r in self._conn.execute("PRAGMA foreign_key_check")]
        return problems

    @contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One short write transaction, holding the write lock from its first statement;
        ``durable``: fsynced before it returns (survives a power cut, not only a crash)."""
        if durable:
            self._conn.execute("PRAGMA synchronous = FULL")
        try:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"{self.path}: cannot start a write: {exc}") from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(f"{self.path}: write failed: {exc}") from exc
            except BaseException:
                self._rollback()
                raise
        finally:
            if durable:
                self._conn.execute("PRAGMA synchronous = NORMAL")

    def _rollback(self) -> None:
        # SQLite may have rolled back by itself (disk full, I/O error): then there is nothing
        # to undo, and ROLLBACK would raise and hide the first error.
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        try:
            cur = self._conn.execute(sql, params)
            cur.row_factory = sqlite3.Row
            return list(cur.fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
