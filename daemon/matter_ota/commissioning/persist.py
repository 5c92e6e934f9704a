"""Committed fabrics in the state store: the fabric record, its keys and its ACL.

One row per fabric in the store's ``fabrics`` table; its ``record`` column holds
:meth:`FabricInfo.to_dict` (certificates, operational key, IPK epoch key) plus the fabric's ACL
entries under ``"acl"``, so that a restart brings back the fabric, CASE and access control.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from matter_ota.crypto.certs import CertificateError
from matter_ota.fabrics import FabricInfo
from matter_ota.im.acl import AccessControlEntry, AuthMode, Privilege, Target
from matter_ota.store import Store
from matter_ota.store.records import Fabric

log = logging.getLogger("matter_ota.commissioning")


def _entry_to_dict(e: AccessControlEntry) -> dict[str, Any]:
    return {"privilege": int(e.privilege), "auth_mode": int(e.auth_mode),
            "subjects": list(e.subjects),
            "targets": [[t.cluster, t.endpoint, t.device_type] for t in e.targets]}


def _entry_from_dict(fabric_index: int, d: dict[str, Any]) -> AccessControlEntry:
    return AccessControlEntry(
        fabric_index, Privilege(int(d["privilege"])), AuthMode(int(d["auth_mode"])),
        tuple(int(s) for s in d.get("subjects", ())),
        tuple(Target(*t) for t in d.get("targets", ())))


class StoreFabrics:
    """The :class:`~.commissionee.FabricStore` of the daemon, on the SQLite state store."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def save_fabric(self, fabric: FabricInfo, acl: Sequence[AccessControlEntry]) -> None:
        record = fabric.to_dict()
        record["acl"] = [_entry_to_dict(e) for e in acl]
        self.store.put_fabric(Fabric(
            fabric_index=fabric.fabric_index,
            compressed_fabric_id=fabric.compressed_fabric_id.hex().upper(),
            label=fabric.label, root_public_key=fabric.root_public_key,
            node_id=fabric.node_id, record=record), self.clock())

    def remove_fabric(self, fabric_index: int) -> None:
        self.store.remove_fabric(fabric_index)

    def load(self) -> list[tuple[FabricInfo, list[AccessControlEntry]]]:
        """Every stored fabric with its ACL; a row that no longer loads is logged and skipped."""
        out = []
        for row in self.store.fabrics():
            if row.record is None:
                continue
            try:
                fabric = FabricInfo.from_dict(row.record)
                acl = [_entry_from_dict(fabric.fabric_index, d)
                       for d in row.record.get("acl", ())]
            except (CertificateError, ValueError, KeyError, TypeError) as exc:
                log.error("event=fabric_unreadable fabric=%d error=%s", row.fabric_index, exc)
                continue
            out.append((fabric, acl))
        return out
