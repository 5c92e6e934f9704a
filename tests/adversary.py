"""A provider node with every protocol installed, a legitimate client, and an attacker between.

Used by the robustness tests (``tests/test_robust_*.py``)::

    world = World()
    world.legit_conversation(inject)   # PASE, CASE, IM read, BDX download; ``inject(world)``
                                       # runs before each datagram the server receives
    world.quiesce()                    # run every timer out

Everything is in memory with time stepped by hand. Datagrams the client sends are recorded in
``world.history`` so an attacker can replay or mutate them; everything the server sends is kept
in ``world.server_out`` for the "nothing secure on an unsecured session" check.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from msg_pair import CLIENT_ADDR, SERVER_ADDR

from matter_ota.bdx.client import Download, DownloadCompleted, start_download
from matter_ota.bdx.image_source import BytesImage
from matter_ota.bdx.receiver import ReceiverTransfer
from matter_ota.bdx.sender import Lookup
from matter_ota.bdx.server import BdxServer
from matter_ota.clusters.basic_information import BasicInfo
from matter_ota.clusters.ota_provider import NothingAvailable
from matter_ota.clusters.root import build_root_node
from matter_ota.fabrics import CertificateAuthority, FabricInfo, FabricTable
from matter_ota.im.acl import AccessControl, AccessControlEntry, AuthMode, Privilege
from matter_ota.im.messages import AttributePathIB, Opcode, ReadRequest
from matter_ota.im.server import InteractionServer
from matter_ota.messaging.errors import MessageError
from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.header import MessageHeader, ProtocolHeader
from matter_ota.messaging.session import Address, SecureSession, SessionKind
from matter_ota.messaging.status import Protocol
from matter_ota.messaging.status import SecureChannelOpcode as Op
from matter_ota.node import Node, SessionEstablished
from matter_ota.ota_image import build_image
from matter_ota.secure_channel.case_server import CaseClient, CaseConnection, CaseServer
from matter_ota.secure_channel.pase_node import PaseCommissioning, start_pase

NOW = 1_764_000_000
SERVER_NODE, CLIENT_NODE = 0x0000_0000_0000_0055, 0x0000_0000_0000_00AA
PASSCODE, SALT = 20202021, b"SPAKE2P Key Salt"
ATTACKER_ADDR: Address = ("fe80::bad", 6666)
FABRIC = 1
DESIGNATOR = "fff1-8001-2"
IMAGE = build_image(random.Random(3).randbytes(20_000), vendor_id=0xFFF1, product_id=0x8001,
                    software_version=2, software_version_string="2.0")

#: What a node may send on an unsecured session: session establishment, nothing else.
UNSECURED_OPCODES = frozenset({Op.STANDALONE_ACK, Op.PBKDF_PARAM_RESPONSE, Op.PASE_PAKE2,
                               Op.CASE_SIGMA2, Op.CASE_SIGMA2_RESUME, Op.STATUS_REPORT})

Inject = Callable[["World"], None]

_CA: CertificateAuthority | None = None


def authority() -> CertificateAuthority:
    """One fabric for the whole test session (key generation is the slow part)."""
    global _CA
    if _CA is None:
        _CA = CertificateAuthority(fabric_id=0xFAB1, now=NOW, with_icac=False)
    return _CA


def lookup(designator: str) -> BytesImage | None:
    return BytesImage(IMAGE) if designator == DESIGNATOR else None


@dataclass
class Reads(ExchangeDelegate):
    """The legitimate client's read: done when the (unchunked) report arrived."""

    reports: list[Message] = field(default_factory=list)
    closed: list[CloseReason] = field(default_factory=list)

    def on_message(self, exchange: Exchange, message: Message) -> None:
        if message.protocol_id == Protocol.INTERACTION_MODEL:
            self.reports.append(message)
        exchange.close()

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        self.closed.append(reason)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class World:
    """The provider (``server``) and one legitimate client, paired in memory."""

    def __init__(self, *, server_fabric: FabricInfo | None = None,
                 client_fabric: FabricInfo | None = None, bdx_lookup: Lookup = lookup,
                 **node_kwargs: int) -> None:
        ca = authority()
        self.server_fabric = server_fabric or ca.issue(SERVER_NODE)
        self.client_fabric = client_fabric or ca.issue(CLIENT_NODE)
        self.now = float(NOW)
        self.server = Node(jitter=lambda: 0.0, **node_kwargs)  # type: ignore[arg-type]
        self.pase = PaseCommissioning.from_passcode(self.server, PASSCODE, SALT, 1000)
        self.case = CaseServer(self.server, FabricTable([self.server_fabric]),
                               cert_time=lambda now: int(now))
        self.case.register()
        self.acl = AccessControl()
        self.acl.set_entries(FABRIC, [AccessControlEntry(FABRIC, Privilege.OPERATE,
                                                         AuthMode.CASE, (CLIENT_NODE,))])
        info = BasicInfo(vendor_name="matter-ota", vendor_id=0xFFF1, product_name="OTA Provider",
                         product_id=0x8000, unique_id="0123456789ABCDEF")
        self.model = build_root_node(info, self.acl, NothingAvailable())
        self.im = InteractionServer(self.server, self.model, self.acl)
        self.bdx = BdxServer(self.server, bdx_lookup)
        self.client = Node(jitter=lambda: 0.0)
        self.case_client = CaseClient(self.client, cert_time=lambda now: int(now))
        self.history: list[bytes] = []  # what the legitimate client sent, in order
        self.server_out: list[tuple[bytes, Address]] = []
        self.handled = 0  # datagrams the server was given (legitimate and injected)
        self.net: random.Random | None = None  # set: each round is shuffled and lossy
        self.loss = 0.0
        self.errors = _Errors()  # a handler_error / delegate_error is a bug a peer can trigger
        logging.getLogger("matter_ota").addHandler(self.errors)

    # -- moving datagrams ----------------------------------------------------------------------

    def to_server(self, data: bytes, addr: Address) -> None:
        """Hand the server one datagram; anything escaping ``datagram_received`` fails the test."""
        self.handled += 1
        self.server.datagram_received(data, addr, self.now)

    def _collect_server(self) -> list[tuple[bytes, Address]]:
        out = self.server.datagrams_to_send()
        self.server_out += out
        return out

    def pump(self, inject: Inject | None = None) -> None:
        """Deliver until both sides are quiet; ``inject`` runs before each legitimate delivery."""
        while True:
            moved = 0
            for data, _ in self._network(self.client.datagrams_to_send()):
                if inject is not None:  # the attacker knows what the server already got
                    inject(self)
                self.history.append(data)
                self.to_server(data, CLIENT_ADDR)
                moved += 1
            for data, addr in self._network(self._collect_server()):
                if addr == CLIENT_ADDR:
                    self.client.datagram_received(data, SERVER_ADDR, self.now)
                    moved += 1
            if not moved:
                return

    def _network(self, batch: list[tuple[bytes, Address]]) -> list[tuple[bytes, Address]]:
        """What of ``batch`` arrives, in what order (all, in order, unless :attr:`net`)."""
        if self.net is None:
            return batch
        self.net.shuffle(batch)
        return [item for item in batch if self.net.random() >= self.loss]

    def advance(self, seconds: float, inject: Inject | None = None) -> None:
        """Step time to each due timer of either node in turn, delivering as we go."""
        end = self.now + seconds
        while True:
            self.pump(inject)
            due = [d for d in (self.client.next_deadline(), self.server.next_deadline())
                   if d is not None and d <= end]
            if not due:
                break
            self.now = max(self.now, min(due))
            self.server.handle_timer(self.now)
            self.client.handle_timer(self.now)
        self.now = end
        self.pump(inject)

    def quiesce(self) -> None:
        """Run every timer out (BDX idle timeouts are 5 minutes, PASE's window 60 s)."""
        self.advance(900.0)

    # -- the legitimate conversation -----------------------------------------------------------

    def pase_session(self, inject: Inject | None = None) -> SecureSession:
        start_pase(self.client, SERVER_ADDR, PASSCODE, self.now)
        self.advance(5.0, inject)
        return self._established(SessionKind.PASE)

    def case_session(self, inject: Inject | None = None) -> SecureSession:
        conn: CaseConnection = self.case_client.connect(
            self.client_fabric, SERVER_NODE, SERVER_ADDR, self.now)
        self.advance(5.0, inject)
        assert conn.session is not None, conn.error
        return conn.session

    def _established(self, kind: SessionKind) -> SecureSession:
        found = None
        while (event := self.client.next_event()) is not None:
            if isinstance(event, SessionEstablished) and event.session.kind is kind:
                found = event.session
        assert found is not None, f"no {kind.value} session"
        return found

    def read(self, session: SecureSession, inject: Inject | None = None) -> Reads:
        reads = Reads()
        request = ReadRequest(attribute_requests=[AttributePathIB(endpoint=0, cluster=0x0028,
                                                                  attribute=0x0002)],
                              fabric_filtered=True)
        self.client.new_exchange(session, reads, self.now).send(
            Protocol.INTERACTION_MODEL, Opcode.READ_REQUEST, request.encode())
        self.advance(5.0, inject)
        return reads

    def download(self, session: SecureSession, inject: Inject | None = None
                 ) -> tuple[Download, io.BytesIO]:
        sink = io.BytesIO()
        download = start_download(self.client, session,
                                  ReceiverTransfer(DESIGNATOR.encode(), sink), self.now)
        self.advance(30.0, inject)
        return download, sink

    def legit_conversation(self, inject: Inject | None = None) -> None:
        """PASE, CASE, an IM read and a BDX download; asserts that each one succeeded."""
        self.pase_session(inject)
        session = self.case_session(inject)
        reads = self.read(session, inject)
        assert len(reads.reports) == 1, reads
        assert reads.reports[0].opcode == Opcode.REPORT_DATA
        download, sink = self.download(session, inject)
        done = [e for e in self._events(self.client) if isinstance(e, DownloadCompleted)]
        assert done and sink.getvalue() == IMAGE, (done, len(sink.getvalue()))
        del download

    @staticmethod
    def _events(node: Node) -> list[object]:
        out = []
        while (e := node.next_event()) is not None:
            out.append(e)
        return out

    # -- checks --------------------------------------------------------------------------------

    def unsecured_replies(self) -> list[tuple[int, int]]:
        """(protocol id, opcode) of everything the server sent on an unsecured session."""
        out = []
        for data, _ in self.server_out:
            try:
                header, offset = MessageHeader.decode(data)
            except MessageError as exc:  # pragma: no cover - a failing test shows it
                raise AssertionError(f"server sent an undecodable datagram: {exc}") from exc
            if header.session_id == 0:
                proto, _ = ProtocolHeader.decode(data[offset:])
                out.append((proto.full_protocol_id, proto.opcode))
        return out

    def assert_bounded(self) -> None:
        """After :meth:`quiesce`: nothing of a finished or abandoned conversation is left."""
        logging.getLogger("matter_ota").removeHandler(self.errors)
        assert not self.errors.records, [r.getMessage() for r in self.errors.records]
        server = self.server
        assert len(server.exchanges) == 0, server.exchanges.exchanges()
        assert server.exchanges._responders == {}
        assert len(server._unsecured) <= server.max_unsecured_sessions
        assert len(server.sessions) <= server.sessions.max_sessions
        assert server.sessions._reserved == set(), server.sessions._reserved  # no id leaked
        assert self.case.pending == 0
        assert len(self.bdx.table) == 0 and not self.bdx._exchanges
        assert len(self.im.subscriptions) == 0
        assert server.next_deadline() is None
        assert len(server.exchanges._timers) <= 64
        for proto, opcode in self.unsecured_replies():
            assert proto == Protocol.SECURE_CHANNEL and opcode in UNSECURED_OPCODES, (
                hex(proto), hex(opcode))
