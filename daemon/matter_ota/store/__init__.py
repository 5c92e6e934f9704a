"""The runtime state store: SQLite in the state directory.

Runtime facts live here (the YAML files stay the source of truth for channels and releases):
the fabrics the node has joined, the device ledger, update tokens, BDX transfers, per-release
outcomes, and the audit log of every release transition.

Opening, migrating and the durability of each write are :mod:`matter_ota.store.database`'s
concern; :class:`Store` adds the operations on the tables, one short transaction each.

All times are POSIX seconds (``float``) passed in by the caller, so tests step time by hand.
"""
from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable
from typing import Any

from matter_ota.store.database import Database, StoreError
from matter_ota.store.records import (
    AuditEntry,
    ConfigWarning,
    DeviceRecord,
    Fabric,
    OutcomeCounts,
    TokenRecord,
    Transfer,
    format_cfid,
)
from matter_ota.store.schema import (
    DB_NAME,
    OUTCOME_STATES,
    SCHEMA_VERSION,
    TOKEN_BYTES,
    TRANSFER_ENDS,
)

__all__ = [
    "DB_NAME",
    "SCHEMA_VERSION",
    "AuditEntry",
    "ConfigWarning",
    "DeviceRecord",
    "Fabric",
    "OutcomeCounts",
    "Store",
    "StoreError",
    "TokenRecord",
    "Transfer",
    "format_cfid",
]


class Store(Database):
    """A connection to the state database; one per process (not shared across threads)."""

    # -- fabrics --------------------------------------------------------------------------

    def put_fabric(self, fabric: Fabric, now: float) -> None:
        """Insert or replace the fabric at its index (durable: it holds the node's keys)."""
        with self._write(durable=True) as c:
            c.execute(
                "INSERT INTO fabrics (fabric_index, compressed_fabric_id, label, root_public_key,"
                " node_id, added_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (fabric_index) DO UPDATE SET"
                " compressed_fabric_id = excluded.compressed_fabric_id, label = excluded.label,"
                " root_public_key = excluded.root_public_key, node_id = excluded.node_id,"
                " record = excluded.record",
                (
                    fabric.fabric_index,
                    fabric.compressed_fabric_id.upper(),
                    fabric.label,
                    fabric.root_public_key,
                    fabric.node_id,
                    now,
                    _json(fabric.record),
                ),
            )

    def remove_fabric(self, fabric_index: int) -> None:
        """Forget a fabric (RemoveFabric); its devices' ledger rows stay."""
        with self._write(durable=True) as c:
            c.execute("DELETE FROM fabrics WHERE fabric_index = ?", (fabric_index,))

    def fabrics(self) -> list[Fabric]:
        """Every fabric the node has joined, by fabric index."""
        return [
            Fabric(
                r["fabric_index"],
                r["compressed_fabric_id"],
                r["label"],
                r["root_public_key"],
                r["node_id"],
                _unjson(r["record"]),
            )
            for r in self._read("SELECT * FROM fabrics ORDER BY fabric_index")
        ]

    # -- device ledger --------------------------------------------------------------------

    def record_query(
        self,
        *,
        compressed_fabric_id: str,
        node_id: int,
        vendor_id: int,
        product_id: int,
        software_version: int,
        hardware_version: int | None,
        channel: str | None,
        result: str,
        now: float,
    ) -> None:
        """Upsert a device after a QueryImage: what it runs and what it was told."""
        with self._write() as c:
            c.execute(
                "INSERT INTO devices (compressed_fabric_id, node_id, vendor_id, product_id,"
                " software_version, hardware_version, channel, first_seen, last_seen,"
                " last_result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (compressed_fabric_id, node_id) DO UPDATE SET"
                " vendor_id = excluded.vendor_id, product_id = excluded.product_id,"
                " software_version = excluded.software_version,"
                " hardware_version = excluded.hardware_version, channel = excluded.channel,"
                " last_seen = excluded.last_seen, last_result = excluded.last_result",
                (
                    compressed_fabric_id.upper(),
                    node_id,
                    vendor_id,
                    product_id,
                    software_version,
                    hardware_version,
                    channel,
                    now,
                    now,
                    result,
                ),
            )

    def import_devices(self, records: Iterable[DeviceRecord]) -> int:
        """Insert or replace many ledger rows in one transaction (migration, fleet import,
        benchmarks); returns how many."""
        rows = [
            (d.compressed_fabric_id.upper(), d.node_id, d.vendor_id, d.product_id,
             d.software_version, d.hardware_version, d.channel, d.first_seen, d.last_seen,
             d.last_result)
            for d in records
        ]
        with self._write(durable=True) as c:
            c.executemany(
                "INSERT OR REPLACE INTO devices (compressed_fabric_id, node_id, vendor_id,"
                " product_id, software_version, hardware_version, channel, first_seen,"
                " last_seen, last_result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def hardware_versions(self) -> dict[tuple[str, int], int]:
        """The hardware version each device last reported, for those that did."""
        rows = self._read(
            "SELECT compressed_fabric_id, node_id, hardware_version FROM devices"
            " WHERE hardware_version IS NOT NULL"
        )
        return {(str(r[0]), int(r[1])): int(r[2]) for r in rows}

    def device(self, compressed_fabric_id: str, node_id: int) -> DeviceRecord | None:
        """The ledger row of one device, or None if it never queried."""
        rows = self._read(
            "SELECT * FROM devices WHERE compressed_fabric_id = ? AND node_id = ?",
            (compressed_fabric_id.upper(), node_id),
        )
        return _device(rows[0]) if rows else None

    def devices(
        self, *, vendor_id: int | None = None, product_id: int | None = None
    ) -> list[DeviceRecord]:
        """The ledger, all devices or those of one product, ordered by fabric and node."""
        sql = "SELECT * FROM devices"
        params: list[object] = []
        if vendor_id is not None and product_id is not None:
            sql += " WHERE vendor_id = ? AND product_id = ?"
            params = [vendor_id, product_id]
        sql += " ORDER BY compressed_fabric_id, node_id"
        return [_device(r) for r in self._read(sql, params)]

    # -- update tokens --------------------------------------------------------------------

    def issue_token(
        self,
        compressed_fabric_id: str,
        node_id: int,
        software_version: int,
        now: float,
        ttl: float,
    ) -> bytes:
        """A fresh unguessable token bound to a known device; expired tokens are purged."""
        token = secrets.token_bytes(TOKEN_BYTES)
        with self._write() as c:
            c.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,))
            try:
                c.execute(
                    "INSERT INTO tokens (token, compressed_fabric_id, node_id, software_version,"
                    " issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (token, compressed_fabric_id.upper(), node_id, software_version, now,
                     now + ttl),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(
                    f"token for unknown device {compressed_fabric_id}/{node_id:#x}: record the "
                    "query first"
                ) from exc
        return token

    def check_token(
        self, token: bytes, compressed_fabric_id: str, node_id: int, now: float
    ) -> TokenRecord | None:
        """The token's record if it exists, has not expired and belongs to this device."""
        rows = self._read(
            "SELECT * FROM tokens WHERE token = ? AND compressed_fabric_id = ? AND node_id = ?"
            " AND expires_at > ?",
            (token, compressed_fabric_id.upper(), node_id, now),
        )
        if not rows:
            return None
        r = rows[0]
        return TokenRecord(
            r["token"], r["compressed_fabric_id"], r["node_id"], r["software_version"],
            r["issued_at"], r["expires_at"],
        )

    # -- transfers ------------------------------------------------------------------------

    def start_transfer(
        self,
        *,
        compressed_fabric_id: str,
        node_id: int,
        channel: str,
        vendor_id: int,
        product_id: int,
        software_version: int,
        total_bytes: int,
        now: float,
    ) -> int:
        """Record a new transfer (and the device's outcome as downloading); returns its id."""
        cfid = compressed_fabric_id.upper()
        with self._write() as c:
            cur = c.execute(
                "INSERT INTO transfers (compressed_fabric_id, node_id, channel, vendor_id,"
                " product_id, software_version, state, total_bytes, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?)",
                (cfid, node_id, channel, vendor_id, product_id, software_version, total_bytes,
                 now),
            )
            _set_outcome(c, channel, vendor_id, product_id, software_version, cfid, node_id,
                         "downloading", now, "")
        return int(cur.lastrowid or 0)

    def progress_transfer(self, transfer_id: int, offset_bytes: int) -> None:
        """Record how far an active transfer has got (ignored once it ended)."""
        with self._write() as c:
            c.execute(
                "UPDATE transfers SET offset_bytes = ? WHERE id = ? AND state = 'active'",
                (offset_bytes, transfer_id),
            )

    def end_transfer(self, transfer_id: int, state: str, now: float, reason: str = "") -> None:
        """Close a transfer: completed, aborted or failed (a failure marks the outcome).
        Only an active transfer ends, once (:data:`schema.TRANSFER_ENDS`)."""
        with self._write() as c:
            row = c.execute("SELECT * FROM transfers WHERE id = ?", (transfer_id,)).fetchone()
            if row is None:
                raise StoreError(f"no transfer {transfer_id}")
            if state not in TRANSFER_ENDS.get(row[7], ()):
                raise StoreError(f"transfer {transfer_id} is {row[7]}: it cannot end as {state!r}")
            c.execute(
                "UPDATE transfers SET state = ?, ended_at = ?, reason = ? WHERE id = ?",
                (state, now, reason, transfer_id),
            )
            if state == "failed":
                # row: id, cfid, node, channel, vid, pid, sv, ...
                _set_outcome(c, row[3], row[4], row[5], row[6], row[1], row[2], "failed", now,
                             reason)

    def transfer(self, transfer_id: int) -> Transfer | None:
        """One transfer by id, or None."""
        rows = self._read("SELECT * FROM transfers WHERE id = ?", (transfer_id,))
        return Transfer(*rows[0]) if rows else None

    def active_transfers(self) -> int:
        """How many transfers are in progress (the concurrency cap counts these)."""
        return int(self._read("SELECT count(*) FROM transfers WHERE state = 'active'")[0][0])

    # -- outcomes -------------------------------------------------------------------------

    def set_outcome(
        self,
        *,
        channel: str,
        vendor_id: int,
        product_id: int,
        software_version: int,
        compressed_fabric_id: str,
        node_id: int,
        state: str,
        now: float,
        reason: str = "",
    ) -> None:
        """Move one device's outcome for one release (offered/downloading/applied/failed)."""
        if state not in OUTCOME_STATES:
            raise StoreError(f"unknown outcome {state!r}")
        with self._write() as c:
            _set_outcome(c, channel, vendor_id, product_id, software_version,
                         compressed_fabric_id.upper(), node_id, state, now, reason)

    def outcome_counts(
        self,
        channel: str,
        vendor_id: int,
        product_id: int,
        software_version: int | None = None,
        *,
        since: float | None = None,
    ) -> OutcomeCounts:
        """Devices per outcome for one release's image (``None``: any version, as for a DCL
        release that follows the ledger), optionally only those updated since ``since``."""
        sql = ("SELECT state, count(*) FROM outcomes WHERE channel = ? AND vendor_id = ? AND"
               " product_id = ?")
        params: list[object] = [channel, vendor_id, product_id]
        if software_version is not None:
            sql += " AND software_version = ?"
            params.append(software_version)
        if since is not None:
            sql += " AND updated_at >= ?"
            params.append(since)
        rows = self._read(sql + " GROUP BY state", params)
        counts = {str(r[0]): int(r[1]) for r in rows}
        return OutcomeCounts(**{s: counts.get(s, 0) for s in OUTCOME_STATES})

    # -- cohorts -------------------------------------------------------------------------

    def mark_offered(
        self,
        *,
        channel: str,
        vendor_id: int,
        product_id: int,
        cohort_seed: str,
        compressed_fabric_id: str,
        node_id: int,
        now: float,
    ) -> None:
        """Remember that a cohort (seed) offered its release to a device: the device stays
        selected for that seed whatever arrives later (stickiness survives restarts)."""
        with self._write() as c:
            c.execute(
                "INSERT OR IGNORE INTO cohort_offers (channel, vendor_id, product_id,"
                " cohort_seed, compressed_fabric_id, node_id, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (channel, vendor_id, product_id, cohort_seed.lower(),
                 compressed_fabric_id.upper(), node_id, now),
            )

    def cohort_devices(
        self, channel: str, vendor_id: int, product_id: int, cohort_seed: str
    ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """The (compressed fabric id, node id) of the devices known on a channel and
        product, and of those the cohort with ``cohort_seed`` has offered its release."""
        known = self._read(
            "SELECT compressed_fabric_id, node_id FROM devices WHERE channel = ? AND"
            " vendor_id = ? AND product_id = ?",
            (channel, vendor_id, product_id),
        )
        offered = self._read(
            "SELECT compressed_fabric_id, node_id FROM cohort_offers WHERE channel = ? AND"
            " vendor_id = ? AND product_id = ? AND cohort_seed = ?",
            (channel, vendor_id, product_id, cohort_seed.lower()),
        )
        return ([(str(r[0]), int(r[1])) for r in known],
                [(str(r[0]), int(r[1])) for r in offered])

    def active_transfer_devices(self) -> list[tuple[str, int]]:
        """The (compressed fabric id, node id) of every device with a transfer in progress."""
        rows = self._read(
            "SELECT DISTINCT compressed_fabric_id, node_id FROM transfers WHERE state = 'active'"
        )
        return [(str(r[0]), int(r[1])) for r in rows]

    # -- audit log ------------------------------------------------------------------------

    def audit(
        self,
        *,
        actor: str,
        action: str,
        now: float,
        channel: str = "",
        product: str = "",
        before: Any = None,
        after: Any = None,
        reason: str = "",
    ) -> int:
        """Append one audit row; ``before``/``after`` are JSON-serialisable snapshots."""
        with self._write(durable=True) as c:
            cur = c.execute(
                "INSERT INTO audit (at, actor, action, channel, product, before_json,"
                " after_json, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (now, actor, action, channel, product, _json(before), _json(after), reason),
            )
        return int(cur.lastrowid or 0)

    def record_transition(
        self,
        *,
        file: str,
        text: str,
        actor: str,
        action: str,
        now: float,
        channel: str,
        product: str,
        before: Any,
        after: Any,
        reason: str = "",
    ) -> int:
        """A release transition just written to ``file``: its audit row and the file's new
        text as the last valid config, in one transaction."""
        with self._write(durable=True) as c:
            c.execute(
                "INSERT OR REPLACE INTO last_valid_config (file, at, text) VALUES (?, ?, ?)",
                (file, now, text),
            )
            cur = c.execute(
                "INSERT INTO audit (at, actor, action, channel, product, before_json,"
                " after_json, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (now, actor, action, channel, product, _json(before), _json(after), reason),
            )
        return int(cur.lastrowid or 0)

    def history(
        self, *, channel: str | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """Audit rows, oldest first (the newest ``limit`` when a limit is given)."""
        sql = "SELECT * FROM audit"
        params: list[object] = []
        if channel is not None:
            sql += " WHERE channel = ?"
            params.append(channel)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = self._read(sql, params)
        return [
            AuditEntry(
                r["id"], r["at"], r["actor"], r["action"], r["channel"], r["product"],
                _unjson(r["before_json"]), _unjson(r["after_json"]), r["reason"],
            )
            for r in reversed(rows)
        ]

    # -- config warnings ------------------------------------------------------------------

    def set_config_warning(self, file: str, line: int | None, reason: str, now: float) -> None:
        """Record why ``file`` was refused (shown by the CLI until the file loads again)."""
        with self._write() as c:
            c.execute(
                "INSERT OR REPLACE INTO config_status (file, at, line, reason)"
                " VALUES (?, ?, ?, ?)",
                (file, now, line, reason),
            )

    def clear_config_warnings(self) -> None:
        """Forget every refusal: the config loaded."""
        with self._write() as c:
            c.execute("DELETE FROM config_status")

    def save_valid_config(self, file: str, text: str, now: float) -> None:
        """Remember the text of a config file that loaded, so a later invalid edit can still
        be shown against what is serving."""
        with self._write(durable=True) as c:
            c.execute(
                "INSERT OR REPLACE INTO last_valid_config (file, at, text) VALUES (?, ?, ?)",
                (file, now, text),
            )

    def last_valid_config(self, file: str) -> str | None:
        rows = self._read("SELECT text FROM last_valid_config WHERE file = ?", (file,))
        return str(rows[0][0]) if rows else None

    def config_warnings(self) -> list[ConfigWarning]:
        return [
            ConfigWarning(r["file"], r["at"], r["line"], r["reason"])
            for r in self._read("SELECT * FROM config_status ORDER BY file")
        ]


def _set_outcome(
    c: sqlite3.Connection,
    channel: str,
    vendor_id: int,
    product_id: int,
    software_version: int,
    cfid: str,
    node_id: int,
    state: str,
    now: float,
    reason: str,
) -> None:
    c.execute(
        "INSERT INTO outcomes (channel, vendor_id, product_id, software_version,"
        " compressed_fabric_id, node_id, state, updated_at, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (channel, vendor_id, product_id, software_version, compressed_fabric_id,"
        " node_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at,"
        " reason = excluded.reason",
        (channel, vendor_id, product_id, software_version, cfid, node_id, state, now, reason),
    )


def _device(r: sqlite3.Row) -> DeviceRecord:
    return DeviceRecord(
        r["compressed_fabric_id"], r["node_id"], r["vendor_id"], r["product_id"],
        r["software_version"], r["hardware_version"], r["channel"], r["first_seen"],
        r["last_seen"], r["last_result"],
    )


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _unjson(text: str | None) -> Any:
    return None if text is None else json.loads(text)
