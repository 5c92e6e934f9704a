"""Who reaches what: session kinds, ACL privileges, fabric isolation, BDX file designators.

Every path that serves a device needs a secure session (IM) or a CASE session (BDX); a CASE peer
gets what its own fabric's ACL grants and sees nothing of another fabric; a BDX file designator
is only a key into the released images, never a path.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from adversary import ATTACKER_ADDR, CLIENT_NODE, IMAGE, NOW, SERVER_NODE, World
from im_client import Conversation, values
from msg_pair import SERVER_ADDR

from matter_ota.bdx.client import DownloadCompleted, DownloadFailed, start_download
from matter_ota.bdx.image_source import ReleasedImages
from matter_ota.bdx.messages import DriveMode, StatusCode, TransferInit
from matter_ota.bdx.messages import Opcode as BdxOpcode
from matter_ota.bdx.receiver import ReceiverTransfer
from matter_ota.clusters.ota_provider import QueryImage
from matter_ota.fabrics import CertificateAuthority
from matter_ota.im.acl import AccessControlEntry, AuthMode, Privilege
from matter_ota.im.messages import (
    AttributePathIB,
    CommandDataIB,
    CommandPathIB,
    InvokeRequest,
    InvokeResponse,
    Opcode,
    ReadRequest,
    Status,
)
from matter_ota.messaging.header import MessageHeader, ProtocolHeader
from matter_ota.messaging.session import SecureSession, SessionKind
from matter_ota.messaging.status import GeneralCode, Protocol
from matter_ota.secure_channel.case_server import CaseConnection

IM = Protocol.INTERACTION_MODEL
OTA, BASIC, ACL_CLUSTER = 0x0029, 0x0028, 0x001F
FABRIC_A, FABRIC_B = 1, 2


def query_image() -> dict[int, object]:
    return QueryImage(vendor_id=0xFFF1, product_id=0x8001, software_version=1,
                      protocols_supported=[0]).to_value()


def invoke(world: World, session: SecureSession, cluster: int, command: int,
           fields: object) -> int:
    """The status of one invoke (SUCCESS when a response command came back)."""
    conv = Conversation()
    request = InvokeRequest(suppress_response=False, timed_request=False, invoke_requests=[
        CommandDataIB(path=CommandPathIB(endpoint=0, cluster=cluster, command=command),
                      fields=fields)])
    world.client.new_exchange(session, conv, world.now).send(IM, Opcode.INVOKE_REQUEST,
                                                             request.encode())
    world.advance(2.0)
    assert conv.opcodes() == [Opcode.INVOKE_RESPONSE], conv.opcodes()
    (ib,) = InvokeResponse.decode(conv.last().payload).invoke_responses
    return Status.SUCCESS if ib.command is not None else ib.status.status.status  # type: ignore[union-attr]


def read(world: World, session: SecureSession, path: AttributePathIB,
         fabric_filtered: bool = True) -> dict[tuple[int, int, int], object]:
    conv = Conversation()
    request = ReadRequest(attribute_requests=[path], fabric_filtered=fabric_filtered)
    world.client.new_exchange(session, conv, world.now).send(IM, Opcode.READ_REQUEST,
                                                             request.encode())
    world.advance(2.0)
    assert conv.reports(), conv.opcodes()
    return values(conv.attribute_reports())


def grant(world: World, fabric: int, privilege: Privilege, node: int = CLIENT_NODE) -> None:
    world.acl.set_entries(fabric, [AccessControlEntry(fabric, privilege, AuthMode.CASE,
                                                      (node,))])


# -- ACL -----------------------------------------------------------------------------------------


def test_view_cannot_invoke_operate_commands_and_operate_can() -> None:
    world = World()
    session = world.case_session()
    grant(world, FABRIC_A, Privilege.VIEW)
    assert read(world, session, AttributePathIB(endpoint=0, cluster=BASIC, attribute=2))
    for command in (0x00, 0x02, 0x04):  # QueryImage, ApplyUpdateRequest, NotifyUpdateApplied
        assert invoke(world, session, OTA, command, query_image()) == Status.UNSUPPORTED_ACCESS
    grant(world, FABRIC_A, Privilege.OPERATE)
    assert invoke(world, session, OTA, 0x00, query_image()) == Status.SUCCESS


def test_no_entry_no_access() -> None:
    world = World()
    session = world.case_session()
    world.acl.set_entries(FABRIC_A, [])
    got = read(world, session, AttributePathIB(endpoint=0, cluster=BASIC, attribute=2))
    assert got == {(0, BASIC, 2): ("status", Status.UNSUPPORTED_ACCESS)}
    assert read(world, session, AttributePathIB()) == {}  # a wildcard read: nothing at all
    assert invoke(world, session, OTA, 0x00, query_image()) == Status.UNSUPPORTED_ACCESS


def test_a_peer_of_fabric_b_sees_nothing_of_fabric_a() -> None:
    """The provider is on fabrics A and B; B's administrator reads and invokes under B's ACL
    only: A's entries never show, A's grants never apply."""
    ca_b = CertificateAuthority(fabric_id=0xB0B, now=NOW, with_icac=False)
    world = World()
    world.case.fabrics.add(ca_b.issue(SERVER_NODE, fabric_index=FABRIC_B))
    a_session = world.case_session()
    grant(world, FABRIC_A, Privilege.ADMINISTER)
    conn: CaseConnection = world.case_client.connect(
        ca_b.issue(CLIENT_NODE, fabric_index=2), SERVER_NODE, SERVER_ADDR, world.now,
        resume=False)
    world.advance(5.0)
    b_session = conn.session
    assert b_session is not None and b_session.kind is SessionKind.CASE
    # Same node id on both fabrics: only the fabric tells them apart.
    acl_path = AttributePathIB(endpoint=0, cluster=ACL_CLUSTER, attribute=0)
    assert read(world, b_session, acl_path) == {(0, ACL_CLUSTER, 0): (
        "status", Status.UNSUPPORTED_ACCESS)}
    assert invoke(world, b_session, OTA, 0x00, query_image()) == Status.UNSUPPORTED_ACCESS
    grant(world, FABRIC_B, Privilege.ADMINISTER)
    for filtered in (True, False):
        (entries,) = read(world, b_session, acl_path, fabric_filtered=filtered).values()
        assert [e[0xFE] for e in entries] == [FABRIC_B], entries  # type: ignore[attr-defined]
        (entries,) = read(world, a_session, acl_path, fabric_filtered=filtered).values()
        assert [e[0xFE] for e in entries] == [FABRIC_A], entries  # type: ignore[attr-defined]


# -- session kinds -------------------------------------------------------------------------------


def _unsecured(opcode: int, protocol: int, payload: bytes) -> bytes:
    header = MessageHeader(0, 77, source_node_id=0xA77AC4E5)
    proto = ProtocolHeader(protocol_id=protocol, opcode=opcode, exchange_id=9, initiator=True,
                           requires_ack=True)
    return header.encode() + proto.encode() + payload


def test_interaction_model_and_bdx_refuse_unsecured_sessions() -> None:
    world = World()
    read_all = ReadRequest(attribute_requests=[AttributePathIB()], fabric_filtered=False)
    init = TransferInit(modes=DriveMode.RECEIVER_DRIVE, max_block_size=1024,
                        file_designator=b"fff1-8001-2").encode()
    invoke_qi = InvokeRequest(suppress_response=False, timed_request=False, invoke_requests=[
        CommandDataIB(path=CommandPathIB(endpoint=0, cluster=OTA, command=0),
                      fields=query_image())]).encode()
    for opcode, protocol, payload in ((Opcode.READ_REQUEST, IM, read_all.encode()),
                                      (Opcode.INVOKE_REQUEST, IM, invoke_qi),
                                      (Opcode.SUBSCRIBE_REQUEST, IM, read_all.encode()),
                                      (BdxOpcode.RECEIVE_INIT, Protocol.BDX, init)):
        world.to_server(_unsecured(opcode, protocol, payload), ATTACKER_ADDR)
    world.quiesce()
    world.assert_bounded()  # among others: nothing but session establishment went out
    assert world.unsecured_replies() == [(Protocol.SECURE_CHANNEL, 0x10)] * 4  # acks only
    assert not world.server._unsecured  # and no session was kept for them


def test_bdx_needs_case_pase_is_refused() -> None:
    """The provider's BDX serves CASE sessions only: a commissioning (PASE) session cannot
    download, a CASE session of the same client can."""
    world = World()
    pase = world.pase_session()
    case = world.case_session()
    sink = io.BytesIO()
    download = start_download(world.client, pase,
                              ReceiverTransfer(b"fff1-8001-2", sink), world.now)
    world.advance(30.0)
    assert sink.getvalue() == b"" and len(world.bdx.table) == 0
    events = world._events(world.client)
    assert not [e for e in events if isinstance(e, DownloadCompleted)]
    del download
    world.download(case)
    assert [e for e in world._events(world.client) if isinstance(e, DownloadCompleted)]


# -- BDX file designators ------------------------------------------------------------------------


@pytest.fixture
def released(tmp_path: Path) -> tuple[World, Path]:
    image = tmp_path / "images" / "fw.ota"
    image.parent.mkdir()
    image.write_bytes(IMAGE)
    (tmp_path / "secret").write_bytes(b"private key material")
    world = World(bdx_lookup=ReleasedImages({"fff1-8001-2": image}))
    return world, tmp_path


def _fetch(world: World, session: SecureSession, designator: bytes) -> object:
    sink = io.BytesIO()
    start_download(world.client, session, ReceiverTransfer(designator, sink), world.now)
    world.advance(30.0)
    events = [e for e in world._events(world.client)
              if isinstance(e, DownloadCompleted | DownloadFailed)]
    assert len(events) == 1, events
    return events[0]


def test_path_like_designators_are_unknown(released: tuple[World, Path]) -> None:
    world, root = released
    session = world.case_session()
    designators = [
        b"../secret", b"fff1-8001-2/../../secret", b"/etc/passwd", str(root / "secret").encode(),
        str(root / "images" / "fw.ota").encode(), b"fw.ota", b"images/fw.ota",
        b"fff1-8001-2\x00", b"\x00", b"fff1-8001-2/", b"./fff1-8001-2", b"FFF1-8001-2",
        b"..", b"%2e%2e/secret", b"file:///etc/passwd", b"\xff\xfe", b"x" * 1000,
    ]
    for designator in designators:
        outcome = _fetch(world, session, designator)
        assert isinstance(outcome, DownloadFailed), designator
        report = outcome.report
        assert report is not None and report.general_code == GeneralCode.FAILURE
        assert report.protocol_id == Protocol.BDX
        assert report.protocol_code == StatusCode.FILE_DESIGNATOR_UNKNOWN, designator
    done = _fetch(world, session, b"fff1-8001-2")  # the released designator still works
    assert isinstance(done, DownloadCompleted)
    world.quiesce()
    world.assert_bounded()
