"""CASE session resumption records (spec 4.14.2.2.1), bounded with least-recently-used eviction.

After a full CASE handshake both sides keep (resumption id -> shared secret, peer, fabric). A peer
that comes back presents the id in Sigma1 with a MIC proving it holds the secret, and both skip
the ECDH and the signatures. One record per (fabric, peer node): a newer handshake replaces the
older record, as connectedhomeip's SimpleSessionResumptionStorage does.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

#: Ours (the spec sets no size): a provider keeps one record per device that checks in.
DEFAULT_CAPACITY = 512


@dataclass(frozen=True, slots=True)
class ResumptionRecord:
    """What resuming a session with one peer needs."""

    resumption_id: bytes
    shared_secret: bytes
    fabric_index: int
    peer_node_id: int
    peer_cats: tuple[int, ...] = ()


class ResumptionStore:
    """Records by resumption id, at most ``capacity`` of them, least recently used dropped."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._by_id: OrderedDict[bytes, ResumptionRecord] = OrderedDict()
        self._by_peer: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, resumption_id: bytes) -> ResumptionRecord | None:
        """The record for ``resumption_id`` (marks it recently used)."""
        record = self._by_id.get(resumption_id)
        if record is not None:
            self._by_id.move_to_end(resumption_id)
        return record

    def for_peer(self, fabric_index: int, peer_node_id: int) -> ResumptionRecord | None:
        """The record an initiator offers when it reconnects to ``peer_node_id``."""
        rid = self._by_peer.get((fabric_index, peer_node_id))
        return None if rid is None else self.get(rid)

    def put(self, record: ResumptionRecord) -> list[ResumptionRecord]:
        """Store ``record``, replacing the peer's older one; returns the records evicted."""
        peer = (record.fabric_index, record.peer_node_id)
        old = self._by_peer.get(peer)
        if old is not None:
            self._by_id.pop(old, None)
        self._by_id.pop(record.resumption_id, None)
        self._by_id[record.resumption_id] = record
        self._by_peer[peer] = record.resumption_id
        evicted: list[ResumptionRecord] = []
        while len(self._by_id) > self.capacity:
            _, oldest = self._by_id.popitem(last=False)
            self._by_peer.pop((oldest.fabric_index, oldest.peer_node_id), None)
            evicted.append(oldest)
        return evicted

    def remove(self, resumption_id: bytes) -> None:
        """Forget the record with this id (no error when there is none)."""
        record = self._by_id.pop(resumption_id, None)
        if record is not None:
            self._by_peer.pop((record.fabric_index, record.peer_node_id), None)

    def remove_fabric(self, fabric_index: int) -> None:
        """Forget every record of a fabric (RemoveFabric)."""
        for rid, record in list(self._by_id.items()):
            if record.fabric_index == fabric_index:
                self.remove(rid)
