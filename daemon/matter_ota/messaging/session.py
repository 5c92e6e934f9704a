"""Sessions, Matter Core spec 4.13 (unsecured), 4.13.2 / 4.14 (PASE / CASE secure sessions).

A session turns (protocol header, payload) into a datagram and back:

- :class:`UnsecuredSession`: session id 0, plaintext; used for PASE / CASE establishment. The
  initiator picks a random ephemeral node id and sends it as source node id; the responder
  answers with it as destination node id (4.13.2.1).
- :class:`SecureSession`: AES-CCM with the session keys (see :mod:`.crypto`), addressed by the
  receiver's local session id, with its own counter and duplicate window.

:class:`SessionTable` owns the secure sessions of a node: local session id allocation and a
bounded size with least-recently-used eviction.
"""

from __future__ import annotations

import enum
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from matter_ota.messaging.counters import MessageCounter, ReceptionState
from matter_ota.messaging.crypto import MIC_LENGTH, MessageCipher, SessionKeys, build_nonce
from matter_ota.messaging.errors import MessageError
from matter_ota.messaging.header import MessageHeader, ProtocolHeader

Address = tuple[str, int]

_SECURE_HEADER = struct.Struct("<BHBI")

UNSPECIFIED_NODE_ID = 0


class SessionKind(enum.Enum):
    """What kind of session a message arrived on; dispatch entries list the kinds they accept."""

    UNSECURED = "unsecured"
    PASE = "pase"
    CASE = "case"


ANY_SESSION = frozenset(SessionKind)
SECURE_SESSIONS = frozenset({SessionKind.PASE, SessionKind.CASE})


@dataclass(frozen=True, slots=True)
class SessionParameters:
    """A node's MRP parameters (4.12.8, 2.5.6.1 SII/SAI/SAT), in seconds.

    Learned from the peer during PASE/CASE (``session-parameters`` struct) or mDNS; the defaults
    apply until then.
    """

    idle_interval: float = 0.500  # SESSION_IDLE_INTERVAL
    active_interval: float = 0.300  # SESSION_ACTIVE_INTERVAL
    active_threshold: float = 4.000  # SESSION_ACTIVE_THRESHOLD


DEFAULT_PARAMETERS = SessionParameters()


class _SessionBase:
    """What the exchange layer needs from any session."""

    kind: SessionKind
    key: object
    """A hashable identity used to key exchanges (fixed for the session's life)."""
    peer_addr: Address | None
    peer_params: SessionParameters
    last_peer_activity: float | None
    last_activity: float

    def mrp_base_interval(self, now: float) -> float:
        """The retransmission base interval for the next message to this peer (4.12.2.1): the
        active interval while the peer sent something within its active threshold."""
        params = self.peer_params
        last = self.last_peer_activity
        if last is not None and now - last < params.active_threshold:
            return params.active_interval
        return params.idle_interval

    def mark_peer_activity(self, now: float, addr: Address) -> None:
        self.last_peer_activity = now
        self.last_activity = now
        self.peer_addr = addr

    def encode(self, protocol_header: ProtocolHeader, payload: bytes) -> tuple[bytes, int]:
        """The datagram and the message counter it carries."""
        return self.encode_payload(protocol_header.encode() + payload)

    def encode_payload(self, message_payload: bytes) -> tuple[bytes, int]:
        """:meth:`encode` for an encoded protocol header followed by the application payload."""
        raise NotImplementedError


class UnsecuredSession(_SessionBase):
    """The plaintext session with one peer during session establishment (4.13.2.1)."""

    kind = SessionKind.UNSECURED

    def __init__(
        self,
        *,
        ephemeral_node_id: int,
        is_initiator: bool,
        counter: MessageCounter,
        peer_addr: Address | None,
        now: float,
        peer_params: SessionParameters = DEFAULT_PARAMETERS,
    ) -> None:
        self.ephemeral_node_id = ephemeral_node_id
        self.is_initiator = is_initiator
        self.key = ("unsecured", is_initiator, ephemeral_node_id)
        self.counter = counter  # the node's global unencrypted counter (4.6.1.1)
        self.peer_addr = peer_addr
        self.peer_params = peer_params
        self.reception = ReceptionState(encrypted_unicast=False)
        self.last_peer_activity = None
        self.last_activity = now
        # False when the node's pool had no place for it (every one mid-handshake): a handshake
        # must not start on it, its opener is answered BUSY (see Node._remember_unsecured).
        self.pooled = True

    def encode_payload(self, message_payload: bytes) -> tuple[bytes, int]:
        counter = self.counter.next()
        if self.is_initiator:
            header = MessageHeader(0, counter, source_node_id=self.ephemeral_node_id)
        else:
            header = MessageHeader(0, counter, dest_node_id=self.ephemeral_node_id)
        return header.encode() + message_payload, counter

    def __repr__(self) -> str:
        role = "initiator" if self.is_initiator else "responder"
        return f"<UnsecuredSession {role} node=0x{self.ephemeral_node_id:016X}>"


class SecureSession(_SessionBase):
    """One established PASE or CASE session."""

    def __init__(
        self,
        *,
        kind: SessionKind,
        local_session_id: int,
        peer_session_id: int,
        keys: SessionKeys,
        is_initiator: bool,
        local_node_id: int = UNSPECIFIED_NODE_ID,
        peer_node_id: int = UNSPECIFIED_NODE_ID,
        fabric_index: int = 0,
        peer_params: SessionParameters = DEFAULT_PARAMETERS,
        peer_addr: Address | None = None,
        now: float = 0.0,
        counter_start: int | None = None,
        peer_cats: tuple[int, ...] = (),
    ) -> None:
        if kind is SessionKind.UNSECURED:
            raise ValueError("a secure session is PASE or CASE")
        if not 1 <= local_session_id <= 0xFFFF or not 0 <= peer_session_id <= 0xFFFF:
            raise ValueError("session ids are u16 and the local one is not 0")
        self.kind = kind
        self.local_session_id = local_session_id
        self.key = ("secure", local_session_id)
        self.peer_session_id = peer_session_id
        self.keys = keys
        self.is_initiator = is_initiator
        self.local_node_id = local_node_id
        self.peer_node_id = peer_node_id
        self.fabric_index = fabric_index
        self.peer_cats = peer_cats
        self.peer_params = peer_params
        self.peer_addr = peer_addr
        self.last_peer_activity = now
        self.last_activity = now
        self.created_at = now
        self.counter = MessageCounter(counter_start, wraps=False)
        self.reception = ReceptionState(encrypted_unicast=True)
        send_key, receive_key = (
            (keys.i2r_key, keys.r2i_key) if is_initiator else (keys.r2i_key, keys.i2r_key)
        )
        self._tx = MessageCipher(send_key)
        self._rx = MessageCipher(receive_key)
        # 4.7.2.1: CASE nonces carry the sender's operational node id, PASE nonces 0.
        is_case = kind is SessionKind.CASE
        self._tx_nonce_node = local_node_id if is_case else UNSPECIFIED_NODE_ID
        self._rx_nonce_node = peer_node_id if is_case else UNSPECIFIED_NODE_ID

    @classmethod
    def from_keys(
        cls,
        keys: SessionKeys,
        *,
        kind: SessionKind,
        local_session_id: int,
        peer_session_id: int,
        is_initiator: bool,
        now: float,
        local_node_id: int = UNSPECIFIED_NODE_ID,
        peer_node_id: int = UNSPECIFIED_NODE_ID,
        fabric_index: int = 0,
        peer_params: SessionParameters = DEFAULT_PARAMETERS,
        peer_addr: Address | None = None,
        peer_cats: tuple[int, ...] = (),
    ) -> SecureSession:
        """The session PASE / CASE create once their handshake succeeds."""
        return cls(
            kind=kind,
            local_session_id=local_session_id,
            peer_session_id=peer_session_id,
            keys=keys,
            is_initiator=is_initiator,
            local_node_id=local_node_id,
            peer_node_id=peer_node_id,
            fabric_index=fabric_index,
            peer_params=peer_params,
            peer_addr=peer_addr,
            now=now,
            peer_cats=peer_cats,
        )

    def encode_payload(self, message_payload: bytes) -> tuple[bytes, int]:
        counter = self.counter.next()
        # Secure unicast: no node ids, no extensions, security flags 0 (4.4.1, 4.7.2.1).
        aad = _SECURE_HEADER.pack(0, self.peer_session_id, 0, counter)
        nonce = build_nonce(0, counter, self._tx_nonce_node)
        return aad + self._tx.seal(nonce, message_payload, aad), counter

    def decrypt(self, header: MessageHeader, data: bytes, payload_offset: int) -> bytes:
        """Authenticate and decrypt a received message; :class:`MessageError` on failure.

        Does not touch the duplicate window: the caller commits the counter afterwards.
        """
        if header.privacy:
            raise MessageError("privacy-obfuscated messages are not supported")
        if len(data) - payload_offset < MIC_LENGTH:
            raise MessageError("secured message shorter than its MIC")
        nonce = build_nonce(header.security_flags, header.message_counter, self._rx_nonce_node)
        # The header as received is the additional data; the ciphertext is read in place.
        return self._rx.open(nonce, memoryview(data)[payload_offset:], data[:payload_offset])

    def __repr__(self) -> str:
        return (
            f"<SecureSession {self.kind.value} local={self.local_session_id} "
            f"peer={self.peer_session_id} node=0x{self.peer_node_id:016X}>"
        )


Session = UnsecuredSession | SecureSession


class SessionTable:
    """The secure sessions of a node, keyed by local session id, bounded with LRU eviction.

    Ids are allocated before a handshake completes (PASE and CASE announce their local session
    id in their first response) and either consumed by :meth:`add` or given back by
    :meth:`release_id`.
    """

    def __init__(
        self,
        max_sessions: int = 64,
        randbits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[int, SecureSession] = OrderedDict()
        self._reserved: set[int] = set()
        self._next_id = (randbits(16) % 0xFFFF) + 1

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[SecureSession]:
        return iter(list(self._sessions.values()))

    def allocate_id(self) -> int:
        """Reserve a free local session id (1..65535)."""
        for _ in range(0xFFFF):
            candidate = self._next_id
            self._next_id = candidate % 0xFFFF + 1
            if candidate not in self._sessions and candidate not in self._reserved:
                self._reserved.add(candidate)
                return candidate
        raise MessageError("no free session id")

    def release_id(self, session_id: int) -> None:
        """Give back an id reserved by :meth:`allocate_id` that no session will use."""
        self._reserved.discard(session_id)

    def get(self, session_id: int) -> SecureSession | None:
        """The session with this local id (no LRU update: call :meth:`touch` when used)."""
        return self._sessions.get(session_id)

    def touch(self, session: SecureSession) -> None:
        """Mark ``session`` as most recently used."""
        if session.local_session_id in self._sessions:
            self._sessions.move_to_end(session.local_session_id)

    def add(
        self, session: SecureSession, in_use: Callable[[SecureSession], bool] | None = None
    ) -> list[SecureSession]:
        """Insert ``session``; returns the sessions evicted to make room (least recent first).

        With ``in_use``, the least recently used session it calls idle goes first: a device
        between two messages of a transfer keeps its session while idle ones exist.
        """
        if session.local_session_id in self._sessions:
            raise ValueError(f"session id {session.local_session_id} already in use")
        self._reserved.discard(session.local_session_id)
        evicted: list[SecureSession] = []
        while len(self._sessions) >= self.max_sessions:
            victim = None
            if in_use is not None:
                victim = next((s for s in self._sessions.values() if not in_use(s)), None)
            if victim is None:
                _, victim = self._sessions.popitem(last=False)
            else:
                del self._sessions[victim.local_session_id]
            evicted.append(victim)
        self._sessions[session.local_session_id] = session
        return evicted

    def remove(self, session: SecureSession) -> bool:
        """Remove ``session``; False if it was not in the table."""
        return self._sessions.pop(session.local_session_id, None) is not None

    def find(self, predicate: Callable[[SecureSession], bool]) -> list[SecureSession]:
        """Sessions matching ``predicate`` (e.g. all CASE sessions of one fabric)."""
        return [s for s in self._sessions.values() if predicate(s)]
