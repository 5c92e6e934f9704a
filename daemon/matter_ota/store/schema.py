"""The state database's schema: constants and the migration steps (``PRAGMA user_version``)."""

from __future__ import annotations

DB_NAME = "state.sqlite3"
BUSY_TIMEOUT_MS = 10_000

# UpdateToken length: the spec allows 8..32 bytes (11.20.6.5.1); 16 random bytes are
# unguessable (128 bits) and leave room in the response.
TOKEN_BYTES = 16

OUTCOME_STATES = ("offered", "downloading", "applied", "failed")
TRANSFER_STATES = ("active", "completed", "aborted", "failed")
# The transfer state machine: state -> the states it may end in. Ended transfers are final.
TRANSFER_ENDS: dict[str, frozenset[str]] = {
    "active": frozenset({"completed", "aborted", "failed"}),
}

# Each migration is a list of statements run in one transaction; index i upgrades the schema
# from user_version i to i + 1. Never edit a released step: append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE fabrics (
            fabric_index INTEGER PRIMARY KEY CHECK (fabric_index BETWEEN 1 AND 254),
            compressed_fabric_id TEXT NOT NULL UNIQUE
                CHECK (length(compressed_fabric_id) = 16),
            label TEXT NOT NULL DEFAULT '',
            root_public_key BLOB,
            node_id INTEGER NOT NULL,
            added_at REAL NOT NULL
        )""",
        """CREATE TABLE devices (
            compressed_fabric_id TEXT NOT NULL CHECK (length(compressed_fabric_id) = 16),
            node_id INTEGER NOT NULL,
            vendor_id INTEGER NOT NULL,
            product_id INTEGER NOT NULL,
            software_version INTEGER NOT NULL,
            hardware_version INTEGER,
            channel TEXT,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            last_result TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (compressed_fabric_id, node_id)
        )""",
        "CREATE INDEX devices_by_product ON devices (vendor_id, product_id, channel)",
        """CREATE TABLE tokens (
            token BLOB PRIMARY KEY,
            compressed_fabric_id TEXT NOT NULL,
            node_id INTEGER NOT NULL,
            software_version INTEGER NOT NULL,
            issued_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            FOREIGN KEY (compressed_fabric_id, node_id)
                REFERENCES devices (compressed_fabric_id, node_id) ON DELETE CASCADE
        )""",
        "CREATE INDEX tokens_by_expiry ON tokens (expires_at)",
        """CREATE TABLE transfers (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            compressed_fabric_id TEXT NOT NULL,
            node_id INTEGER NOT NULL,
            channel TEXT NOT NULL,
            vendor_id INTEGER NOT NULL,
            product_id INTEGER NOT NULL,
            software_version INTEGER NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('active', 'completed', 'aborted', 'failed')),
            offset_bytes INTEGER NOT NULL DEFAULT 0,
            total_bytes INTEGER NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            reason TEXT NOT NULL DEFAULT '',
            FOREIGN KEY (compressed_fabric_id, node_id)
                REFERENCES devices (compressed_fabric_id, node_id) ON DELETE CASCADE
        )""",
        "CREATE INDEX transfers_active ON transfers (state)",
        """CREATE TABLE outcomes (
            channel TEXT NOT NULL,
            vendor_id INTEGER NOT NULL,
            product_id INTEGER NOT NULL,
            software_version INTEGER NOT NULL,
            compressed_fabric_id TEXT NOT NULL,
            node_id INTEGER NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('offered', 'downloading', 'applied', 'failed')),
            updated_at REAL NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (channel, vendor_id, product_id, software_version,
                         compressed_fabric_id, node_id)
        )""",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            channel TEXT NOT NULL DEFAULT '',
            product TEXT NOT NULL DEFAULT '',
            before_json TEXT,
            after_json TEXT,
            reason TEXT NOT NULL DEFAULT ''
        )""",
        """CREATE TABLE config_status (
            file TEXT PRIMARY KEY,
            at REAL NOT NULL,
            line INTEGER,
            reason TEXT NOT NULL
        )""",
        """CREATE TABLE cohort_offers (
            channel TEXT NOT NULL,
            vendor_id INTEGER NOT NULL,
            product_id INTEGER NOT NULL,
            cohort_seed TEXT NOT NULL,
            compressed_fabric_id TEXT NOT NULL,
            node_id INTEGER NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (channel, vendor_id, product_id, cohort_seed, compressed_fabric_id,
                         node_id)
        )""",
        """CREATE TABLE last_valid_config (
            file TEXT PRIMARY KEY,
            at REAL NOT NULL,
            text TEXT NOT NULL
        )""",
    ),
    # 2: the node's full fabric row (certificates and keys) beside the indexed columns.
    ("ALTER TABLE fabrics ADD COLUMN record TEXT",),
    # 3: what the running daemon serves (one row, written by `serve`, read by `status`).
    (
        """CREATE TABLE daemon_status (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pid INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('starting', 'running', 'stopped')),
            address TEXT NOT NULL DEFAULT '',
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL,
            config_generation INTEGER NOT NULL DEFAULT 0,
            config_digest TEXT NOT NULL DEFAULT '',
            config_applied_at REAL,
            config_files TEXT NOT NULL DEFAULT ''
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
