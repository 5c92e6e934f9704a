"""Interaction Model server over an in-memory node pair with stepped time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from im_client import Client, Conversation, path, status_of, values
from msg_pair import CLIENT_ADDR, SERVER_ADDR, deliver, make_node, secure_pair

from matter_ota import tlv
from matter_ota.clusters.basic_information import BasicInfo
from matter_ota.clusters.ota_provider import NothingAvailable, QueryImage, QueryImageResponse
from matter_ota.clusters.root import build_root_node
from matter_ota.im.acl import AccessControl, AccessControlEntry, AuthMode, Privilege, Target
from matter_ota.im.messages import (
    AttributeDataIB,
    AttributePathIB,
    ClusterPathIB,
    CommandDataIB,
    CommandPathIB,
    DataVersionFilterIB,
    EventPathIB,
    InvokeRequest,
    InvokeResponse,
    Opcode,
    ReadRequest,
    ReportData,
    Status,
    StatusResponse,
    SubscribeRequest,
    SubscribeResponse,
    TimedRequest,
    WriteRequest,
    WriteResponse,
)
from matter_ota.im.model import Attribute, Cluster, Context, DataModel, command
from matter_ota.im.reporting import MAX_REPORT_BLOCK
from matter_ota.im.server import InteractionServer
from matter_ota.messaging.exchange import Exchange, Message
from matter_ota.messaging.header import MAX_SECURE_PAYLOAD
from matter_ota.messaging.session import SECURE_SESSIONS, SessionKind
from matter_ota.messaging.status import Protocol
from matter_ota.node import Node

IM = Protocol.INTERACTION_MODEL
CLIENT_NODE_ID = 0x0000_0000_0001_B669
FABRIC = 1
BASIC, DESCRIPTOR, ACL_CLUSTER, OTA = 0x0028, 0x001D, 0x001F, 0x0029


@dataclass(kw_only=True)
class Echo(tlv.Struct):
    value: int = tlv.field(0, tlv.U32)


class VendorCluster(Cluster):
    """A vendor cluster with large attributes and a timed command."""

    ID = 0xFFF1FC01
    REVISION = 1

    def __init__(self, items: int = 0) -> None:
        super().__init__()
        self.items = [f"item-{i:03d}-" + "x" * 30 for i in range(items)]

    def _broken(self, _ctx: Context) -> int:
        raise RuntimeError("a bug in a cluster")

    def attributes(self) -> Sequence[Attribute]:
        big = [Attribute(0x10 + i, tlv.Str(), lambda _c, i=i: chr(0x61 + i) * 300)
               for i in range(8)]
        return [*big, Attribute(0x0001, tlv.ArrayOf(tlv.Str()), lambda _c: self.items,
                                self._write_items),
                Attribute(0x0002, tlv.U8, self._broken, lambda _c, _v: self._broken(_c))]

    def _write_items(self, _ctx: Context, value: list[str]) -> None:
        self.items = value

    @command(0x00, Echo, privilege=Privilege.OPERATE, timed=True, response_id=0x01)
    def timed_echo(self, ctx: Context, request: Echo) -> Echo:
        return Echo(value=request.value + 1)


@dataclass
class Setup:
    client: Client
    server_node: Node
    server: InteractionServer
    model: DataModel
    acl: AccessControl
    info: BasicInfo


def make_setup(kind: SessionKind = SessionKind.CASE, privilege: Privilege | None = None,
               fabric_index: int = FABRIC, extra: Cluster | None = None) -> Setup:
    client_node, server_node = make_node(), make_node()
    c, s = secure_pair(client_node, server_node, kind=kind, client_node_id=CLIENT_NODE_ID)
    s.fabric_index = fabric_index
    if kind is SessionKind.PASE:
        s.peer_node_id = 0
    acl = AccessControl()
    if privilege is not None:
        acl.set_entries(FABRIC, [AccessControlEntry(FABRIC, privilege, AuthMode.CASE,
                                                    (CLIENT_NODE_ID,))])
    info = BasicInfo(vendor_name="matter-ota", vendor_id=0xFFF1, product_name="OTA Provider",
                     product_id=0x8000, unique_id="0123456789ABCDEF")
    model = build_root_node(info, acl, NothingAvailable())
    if extra is not None:
        model.endpoints[0].add(extra)
    server = InteractionServer(server_node, model, acl)
    return Setup(Client(client_node, server_node, c), server_node, server, model, acl, info)


def read(setup: Setup, *paths: AttributePathIB, **kw: object) -> Conversation:
    request = ReadRequest(attribute_requests=list(paths), fabric_filtered=True, **kw)  # type: ignore[arg-type]
    return setup.client.send(Opcode.READ_REQUEST, request.encode())


def invoke(setup: Setup, endpoint: int, cluster: int, cmd: int, fields: object,
           *, timed: bool = False) -> Conversation:
    request = InvokeRequest(suppress_response=False, timed_request=timed, invoke_requests=[
        CommandDataIB(path=CommandPathIB(endpoint=endpoint, cluster=cluster, command=cmd),
                      fields=fields)])
    return setup.client.send(Opcode.INVOKE_REQUEST, request.encode())


def invoke_status(conv: Conversation) -> int:
    response = InvokeResponse.decode(conv.last().payload)
    ib = response.invoke_responses[0]
    assert ib.status is not None, ib
    return ib.status.status.status


def write(setup: Setup, *data: AttributeDataIB, timed: bool = False) -> list[int]:
    request = WriteRequest(timed_request=timed, write_requests=list(data))
    conv = setup.client.send(Opcode.WRITE_REQUEST, request.encode())
    assert conv.opcodes() == [Opcode.WRITE_RESPONSE], conv.opcodes()
    response = WriteResponse.decode(conv.last().payload)
    return [s.status.status for s in response.write_responses]


# -- read ------------------------------------------------------------------------------------


def test_read_concrete_basic_information() -> None:
    setup = make_setup(privilege=Privilege.VIEW)
    conv = read(setup, path(0, BASIC, 0x0002), path(0, BASIC, 0x0003), path(0, BASIC, 0x0013))
    [report] = conv.reports()
    assert report.suppress_response is True and report.more_chunked_messages is None
    got = values(conv.attribute_reports())
    assert got[(0, BASIC, 2)] == 0xFFF1 and isinstance(got[(0, BASIC, 2)], tlv.uint)
    assert got[(0, BASIC, 3)] == "OTA Provider"
    assert got[(0, BASIC, 0x13)] == {0: 3, 1: 3}
    data = conv.attribute_reports()[0].attribute_data
    assert data is not None
    assert data.data_version == setup.model.cluster(0, BASIC).data_version  # type: ignore[union-attr]


def test_wildcard_read_expands_everything_with_global_attributes() -> None:
    setup = make_setup(privilege=Privilege.ADMINISTER)
    conv = read(setup, path())
    got = values(conv.attribute_reports())
    clusters = {k[1] for k in got}
    assert clusters == {BASIC, DESCRIPTOR, ACL_CLUSTER, OTA}
    for cl in clusters:
        attribute_list = got[(0, cl, 0xFFFB)]
        assert attribute_list == sorted(attribute_list)
        assert {0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD} <= set(attribute_list)
        assert 0xFFFA not in attribute_list  # EventList is gone since Matter 1.3
        assert {(0, cl, a) for a in attribute_list} <= set(got)
    assert got[(0, OTA, 0xFFF9)] == [0, 2, 4] and got[(0, OTA, 0xFFF8)] == [1, 3]
    assert got[(0, DESCRIPTOR, 0)] == [{0: 0x16, 1: 3}, {0: 0x14, 1: 1}]
    assert got[(0, DESCRIPTOR, 1)] == [DESCRIPTOR, ACL_CLUSTER, BASIC, OTA]
    assert got[(0, DESCRIPTOR, 3)] == []
    # Statuses never appear for wildcard expansions.
    assert all(r.attribute_status is None for r in conv.attribute_reports())


def test_read_statuses_for_concrete_paths() -> None:
    setup = make_setup(privilege=Privilege.VIEW)
    conv = read(setup, path(7, BASIC, 2), path(0, 0x0006, 0), path(0, BASIC, 0x99),
                path(0, ACL_CLUSTER, 0))
    got = values(conv.attribute_reports())
    assert got[(7, BASIC, 2)] == ("status", Status.UNSUPPORTED_ENDPOINT)
    assert got[(0, 0x0006, 0)] == ("status", Status.UNSUPPORTED_CLUSTER)
    assert got[(0, BASIC, 0x99)] == ("status", Status.UNSUPPORTED_ATTRIBUTE)
    assert got[(0, ACL_CLUSTER, 0)] == ("status", Status.UNSUPPORTED_ACCESS)  # Administer


def test_data_version_filter_skips_unchanged_cluster() -> None:
    setup = make_setup(privilege=Privilege.VIEW)
    version = setup.model.cluster(0, BASIC).data_version  # type: ignore[union-attr]
    filters = [DataVersionFilterIB(path=ClusterPathIB(endpoint=0, cluster=BASIC),
                                   data_version=version)]
    conv = read(setup, path(0, BASIC), path(0, DESCRIPTOR, 0), data_version_filters=filters)
    assert {k[1] for k in values(conv.attribute_reports())} == {DESCRIPTOR}


def test_events_are_unsupported() -> None:
    setup = make_setup(privilege=Privilege.VIEW)
    request = ReadRequest(event_requests=[EventPathIB(endpoint=0, cluster=BASIC, event=0)],
                          fabric_filtered=True)
    conv = setup.client.send(Opcode.READ_REQUEST, request.encode())
    [report] = conv.reports()
    assert report.event_reports is not None
    status = report.event_reports[0].event_status
    assert status is not None and status.status.status == Status.UNSUPPORTED_EVENT


def test_chunked_report_over_several_messages() -> None:
    setup = make_setup(privilege=Privilege.VIEW, extra=VendorCluster(items=100))
    conv = read(setup, path(0, VendorCluster.ID))
    reports = conv.reports()
    assert len(reports) >= 4
    assert all(len(m.payload) <= MAX_SECURE_PAYLOAD for m in conv.messages)
    assert [r.more_chunked_messages for r in reports] == [True] * (len(reports) - 1) + [None]
    assert reports[-1].suppress_response is True
    got = values(conv.attribute_reports())
    cluster = setup.model.cluster(0, VendorCluster.ID)
    assert isinstance(cluster, VendorCluster)
    assert got[(0, VendorCluster.ID, 1)] == cluster.items  # the split list reassembles
    assert got[(0, VendorCluster.ID, 0x10)] == "a" * 300
    # The 4 KB list went as "replace with []" then appended items.
    appended = [r for r in conv.attribute_reports()
                if r.attribute_data is not None and r.attribute_data.path.list_append]
    assert len(appended) == 100 and MAX_REPORT_BLOCK < 100 * 45


def test_chunked_read_stops_when_client_refuses() -> None:
    setup = make_setup(privilege=Privilege.VIEW, extra=VendorCluster(items=100))
    conv = Conversation(answer_status=Status.BUSY)
    request = ReadRequest(attribute_requests=[path(0, VendorCluster.ID)], fabric_filtered=True)
    setup.client.send(Opcode.READ_REQUEST, request.encode(), conv)
    assert len(conv.reports()) == 1
    assert len(setup.server_node.exchanges) == 0


def test_failing_attribute_fails_only_its_path(caplog: pytest.LogCaptureFixture) -> None:
    setup = make_setup(privilege=Privilege.OPERATE, extra=VendorCluster())
    got = values(read(setup, path(0, VendorCluster.ID, 2), path(0, BASIC, 2))
                  .attribute_reports())
    assert got == {(0, VendorCluster.ID, 2): ("status", Status.FAILURE), (0, BASIC, 2): 0xFFF1}
    assert write(setup, AttributeDataIB(path=path(0, VendorCluster.ID, 2), data=tlv.uint(1))) \
        == [Status.FAILURE]
    assert "event=read_error" in caplog.text and "event=write_error" in caplog.text


def test_too_many_paths_is_resource_exhausted() -> None:
    setup = make_setup(privilege=Privilege.VIEW)
    conv = read(setup, *[path()] * 33)
    assert status_of(conv.last()) == Status.RESOURCE_EXHAUSTED
    assert len(values(read(setup, *[path(0, BASIC, 2)] * 32).attribute_reports())) == 1


def test_malformed_request_gets_invalid_action() -> None:
    setup = make_setup(privilege=Privilege.VIEW)
    conv = setup.client.send(Opcode.READ_REQUEST, b"\x15\x18\x18")
    assert status_of(conv.last()) == Status.INVALID_ACTION
    conv = setup.client.send(Opcode.READ_REQUEST, ReadRequest(fabric_filtered=True).encode())
    assert status_of(conv.last()) == Status.INVALID_ACTION


# -- invoke and access control ---------------------------------------------------------------

QUERY = QueryImage(vendor_id=0xFFF1, product_id=0x8001, software_version=1,
                   protocols_supported=[0]).to_value()


@pytest.mark.parametrize("privilege", [None, Privilege.VIEW])
def test_invoke_denied_below_operate(privilege: Privilege | None) -> None:
    setup = make_setup(privilege=privilege)
    assert invoke_status(invoke(setup, 0, OTA, 0x00, QUERY)) == Status.UNSUPPORTED_ACCESS


@pytest.mark.parametrize("privilege", [Privilege.OPERATE, Privilege.MANAGE,
                                       Privilege.ADMINISTER])
def test_query_image_answers_not_available(privilege: Privilege) -> None:
    setup = make_setup(privilege=privilege)
    conv = invoke(setup, 0, OTA, 0x00, QUERY)
    response = InvokeResponse.decode(conv.last().payload)
    command = response.invoke_responses[0].command
    assert command is not None
    assert (command.path.cluster, command.path.command) == (OTA, 0x01)
    assert QueryImageResponse.from_value(command.fields).status == 2  # NotAvailable


def test_acl_target_restricts_to_cluster() -> None:
    setup = make_setup()
    setup.acl.set_entries(FABRIC, [AccessControlEntry(
        FABRIC, Privilege.OPERATE, AuthMode.CASE, (CLIENT_NODE_ID,), (Target(cluster=OTA),))])
    assert InvokeResponse.decode(invoke(setup, 0, OTA, 0, QUERY).last().payload) \
        .invoke_responses[0].command is not None
    got = values(read(setup, path(0, BASIC, 2)).attribute_reports())
    assert got[(0, BASIC, 2)] == ("status", Status.UNSUPPORTED_ACCESS)
    # Another fabric's entries grant nothing.
    setup.acl.set_entries(FABRIC, [])
    setup.acl.set_entries(2, [AccessControlEntry(2, Privilege.ADMINISTER, AuthMode.CASE)])
    assert invoke_status(invoke(setup, 0, OTA, 0, QUERY)) == Status.UNSUPPORTED_ACCESS


def test_cat_subject_grants() -> None:
    setup = make_setup()
    setup.client.session  # noqa: B018 - the server side session carries the CATs
    server_session = next(iter(setup.server_node.sessions))
    server_session.peer_cats = (0xABCD_0002,)
    cat_v2, cat_v3 = 0xFFFF_FFFD_ABCD_0002, 0xFFFF_FFFD_ABCD_0003
    setup.acl.set_entries(FABRIC, [AccessControlEntry(FABRIC, Privilege.OPERATE, AuthMode.CASE,
                                                      (cat_v3,))])
    assert invoke_status(invoke(setup, 0, OTA, 0, QUERY)) == Status.UNSUPPORTED_ACCESS
    setup.acl.set_entries(FABRIC, [AccessControlEntry(FABRIC, Privilege.OPERATE, AuthMode.CASE,
                                                      (cat_v2,))])
    assert invoke(setup, 0, OTA, 0, QUERY).opcodes() == [Opcode.INVOKE_RESPONSE]
    assert InvokeResponse.decode(invoke(setup, 0, OTA, 0, QUERY).last().payload) \
        .invoke_responses[0].command is not None


def test_pase_commissioning_session_is_administer() -> None:
    setup = make_setup(kind=SessionKind.PASE, fabric_index=0)
    got = values(read(setup, path(0, ACL_CLUSTER, 0), path(0, BASIC, 4)).attribute_reports())
    assert got[(0, ACL_CLUSTER, 0)] == []  # no fabric yet: nothing of its own to see
    assert got[(0, BASIC, 4)] == 0x8000
    assert InvokeResponse.decode(invoke(setup, 0, OTA, 0, QUERY).last().payload) \
        .invoke_responses[0].command is not None
    # Without a fabric there is no ACL of its own to write.
    acl_data = AttributeDataIB(path=path(0, ACL_CLUSTER, 0), data=[])
    assert write(setup, acl_data) == [Status.UNSUPPORTED_ACCESS]


def test_invoke_path_statuses() -> None:
    setup = make_setup(privilege=Privilege.OPERATE)
    assert invoke_status(invoke(setup, 3, OTA, 0, QUERY)) == Status.UNSUPPORTED_ENDPOINT
    assert invoke_status(invoke(setup, 0, 0x0006, 0, {})) == Status.UNSUPPORTED_CLUSTER
    assert invoke_status(invoke(setup, 0, OTA, 0x01, {})) == Status.UNSUPPORTED_COMMAND
    assert invoke_status(invoke(setup, 0, OTA, 0x00, {0: 1})) == Status.INVALID_COMMAND
    notify = {0: b"12345678", 1: tlv.uint(2)}
    assert invoke_status(invoke(setup, 0, OTA, 0x04, notify)) == Status.SUCCESS


def test_two_commands_in_one_invoke_is_invalid_action() -> None:
    setup = make_setup(privilege=Privilege.OPERATE)
    data = CommandDataIB(path=CommandPathIB(endpoint=0, cluster=OTA, command=0), fields=QUERY)
    request = InvokeRequest(suppress_response=False, timed_request=False,
                            invoke_requests=[data, data])
    conv = setup.client.send(Opcode.INVOKE_REQUEST, request.encode())
    assert status_of(conv.last()) == Status.INVALID_ACTION


# -- timed interactions ----------------------------------------------------------------------


def timed_invoke(setup: Setup, timeout_ms: int, delay: float, flag: bool = True
                 ) -> Conversation:
    client = setup.client
    conv = Conversation(keep_open=True)
    exchange = client.node.new_exchange(client.session, conv, client.now)
    exchange.send(IM, Opcode.TIMED_REQUEST, TimedRequest(timeout=timeout_ms).encode())
    client.pump()
    assert status_of(conv.last()) == Status.SUCCESS
    client.now += delay
    request = InvokeRequest(suppress_response=False, timed_request=flag, invoke_requests=[
        CommandDataIB(path=CommandPathIB(endpoint=0, cluster=VendorCluster.ID, command=0),
                      fields={0: tlv.uint(41)})])
    exchange.send(IM, Opcode.INVOKE_REQUEST, request.encode())
    client.pump()
    return conv


def test_timed_command_needs_timed_interaction() -> None:
    setup = make_setup(privilege=Privilege.OPERATE, extra=VendorCluster())
    conv = invoke(setup, 0, VendorCluster.ID, 0, {0: tlv.uint(41)})
    assert invoke_status(conv) == Status.NEEDS_TIMED_INTERACTION


def test_timed_invoke_within_window() -> None:
    setup = make_setup(privilege=Privilege.OPERATE, extra=VendorCluster())
    conv = timed_invoke(setup, 500, 0.2)
    command = InvokeResponse.decode(conv.last().payload).invoke_responses[0].command
    assert command is not None and command.fields == {0: 42}


def test_timed_invoke_after_window_times_out() -> None:
    setup = make_setup(privilege=Privilege.OPERATE, extra=VendorCluster())
    # The invoke arrives 0.5 s into a 100 ms window (before the server ran its timers).
    conv = timed_invoke(setup, 100, 0.5)
    assert status_of(conv.last()) == Status.TIMEOUT
    cluster = setup.model.cluster(0, VendorCluster.ID)
    assert cluster is not None


def test_timed_window_closes_its_exchange() -> None:
    setup = make_setup(privilege=Privilege.OPERATE, extra=VendorCluster())
    client = setup.client
    conv = Conversation(keep_open=True)
    exchange = client.node.new_exchange(client.session, conv, client.now)
    exchange.send(IM, Opcode.TIMED_REQUEST, TimedRequest(timeout=100).encode())
    client.pump()
    assert len(setup.server_node.exchanges) == 1
    client.advance(3.0)  # past the window: a late invoke is still told TIMEOUT...
    request = InvokeRequest(suppress_response=False, timed_request=True, invoke_requests=[
        CommandDataIB(path=CommandPathIB(endpoint=0, cluster=VendorCluster.ID, command=0),
                      fields={0: tlv.uint(41)})])
    exchange.send(IM, Opcode.INVOKE_REQUEST, request.encode())
    client.pump()
    assert status_of(conv.last()) == Status.TIMEOUT
    client.advance(0.5)  # the client's standalone ack
    assert len(setup.server_node.exchanges) == 0  # ...and the exchange is done


def test_silent_timed_request_expires() -> None:
    setup = make_setup(privilege=Privilege.OPERATE, extra=VendorCluster())
    client = setup.client
    exchange = client.node.new_exchange(client.session, Conversation(keep_open=True),
                                        client.now)
    exchange.send(IM, Opcode.TIMED_REQUEST, TimedRequest(timeout=100).encode())
    client.pump()
    client.advance(6.0)
    assert len(setup.server_node.exchanges) == 0


def test_timed_flag_mismatch() -> None:
    setup = make_setup(privilege=Privilege.OPERATE, extra=VendorCluster())
    conv = timed_invoke(setup, 500, 0.0, flag=False)
    assert status_of(conv.last()) == Status.TIMED_REQUEST_MISMATCH
    conv = invoke(setup, 0, VendorCluster.ID, 0, {0: tlv.uint(41)}, timed=True)
    assert status_of(conv.last()) == Status.TIMED_REQUEST_MISMATCH


# -- write -----------------------------------------------------------------------------------


def test_write_node_label_needs_manage() -> None:
    setup = make_setup(privilege=Privilege.OPERATE)
    label = AttributeDataIB(path=path(0, BASIC, 5), data="kitchen")
    assert write(setup, label) == [Status.UNSUPPORTED_ACCESS]
    setup.acl.set_entries(FABRIC, [AccessControlEntry(FABRIC, Privilege.MANAGE, AuthMode.CASE,
                                                      (CLIENT_NODE_ID,))])
    before = setup.model.cluster(0, BASIC).data_version  # type: ignore[union-attr]
    assert write(setup, label) == [Status.SUCCESS]
    assert setup.info.node_label == "kitchen"
    got = values(read(setup, path(0, BASIC, 5)).attribute_reports())
    assert got[(0, BASIC, 5)] == "kitchen"
    assert setup.model.cluster(0, BASIC).data_version == before + 1  # type: ignore[union-attr]


def test_write_statuses() -> None:
    setup = make_setup(privilege=Privilege.ADMINISTER)
    version = setup.model.cluster(0, BASIC).data_version  # type: ignore[union-attr]
    results = write(
        setup,
        AttributeDataIB(path=path(0, BASIC, 5), data="x" * 33),
        AttributeDataIB(path=path(0, BASIC, 2), data=tlv.uint(1)),
        AttributeDataIB(path=path(0, BASIC, 0x99), data=tlv.uint(1)),
        AttributeDataIB(path=path(0, BASIC, 6), data="de"),
        AttributeDataIB(path=path(0, BASIC, 5), data="stale", data_version=version + 7),
        AttributeDataIB(path=path(0, BASIC, 6), data="DE", data_version=version),
    )
    assert results == [Status.CONSTRAINT_ERROR, Status.UNSUPPORTED_WRITE,
                       Status.UNSUPPORTED_ATTRIBUTE, Status.CONSTRAINT_ERROR,
                       Status.DATA_VERSION_MISMATCH, Status.SUCCESS]
    assert setup.info.location == "DE"


def test_acl_write_and_read_back_per_fabric() -> None:
    setup = make_setup(privilege=Privilege.ADMINISTER)
    admin = {1: tlv.uint(5), 2: tlv.uint(2), 3: [tlv.uint(CLIENT_NODE_ID)], 4: None}
    operate = {1: tlv.uint(3), 2: tlv.uint(2), 3: None,
               4: [{0: tlv.uint(OTA), 1: None, 2: None}], 0xFE: tlv.uint(9)}
    assert write(setup, AttributeDataIB(path=path(0, ACL_CLUSTER, 0),
                                        data=[admin, operate])) == [Status.SUCCESS]
    entries = setup.acl.entries(FABRIC)
    assert [e.privilege for e in entries] == [Privilege.ADMINISTER, Privilege.OPERATE]
    assert all(e.fabric_index == FABRIC for e in entries)  # the writer's FabricIndex is ignored
    got = values(read(setup, path(0, ACL_CLUSTER, 0)).attribute_reports())
    assert got[(0, ACL_CLUSTER, 0)][1] == {1: 3, 2: 2, 3: None,
                                           4: [{0: OTA, 1: None, 2: None}], 0xFE: FABRIC}
    # A PASE auth mode entry is a constraint error and changes nothing.
    pase = {1: tlv.uint(5), 2: tlv.uint(1), 3: None, 4: None}
    assert write(setup, AttributeDataIB(path=path(0, ACL_CLUSTER, 0), data=[admin, pase])) \
        == [Status.CONSTRAINT_ERROR]
    assert len(setup.acl.entries(FABRIC)) == 2


def test_chunked_list_write_appends() -> None:
    setup = make_setup(privilege=Privilege.ADMINISTER, extra=VendorCluster(items=2))
    cl = VendorCluster.ID
    first = WriteRequest(timed_request=False, more_chunked_messages=True, write_requests=[
        AttributeDataIB(path=path(0, cl, 1), data=[]),
        AttributeDataIB(path=AttributePathIB(endpoint=0, cluster=cl, attribute=1,
                                             list_append=True), data="a")])
    second = WriteRequest(timed_request=False, write_requests=[
        AttributeDataIB(path=AttributePathIB(endpoint=0, cluster=cl, attribute=1,
                                             list_append=True), data="b")])
    client = setup.client
    conv = Conversation(keep_open=True)
    exchange = client.node.new_exchange(client.session, conv, client.now)
    exchange.send(IM, Opcode.WRITE_REQUEST, first.encode())
    client.pump()
    exchange.send(IM, Opcode.WRITE_REQUEST, second.encode())
    client.pump()
    assert conv.opcodes() == [Opcode.WRITE_RESPONSE, Opcode.WRITE_RESPONSE]
    cluster = setup.model.cluster(0, cl)
    assert isinstance(cluster, VendorCluster) and cluster.items == ["a", "b"]


# -- subscribe -------------------------------------------------------------------------------


class ReportInbox:
    """Client-side route for the server's subscription reports."""

    def __init__(self, node: Node, answer: int = Status.SUCCESS) -> None:
        self.reports: list[tuple[float, ReportData]] = []
        self.answer = answer
        node.register(IM, Opcode.REPORT_DATA, self._on_report, SECURE_SESSIONS)

    def _on_report(self, exchange: Exchange, message: Message) -> None:
        report = ReportData.decode(message.payload)
        self.reports.append((message.received_at, report))
        if not report.suppress_response:
            exchange.send(IM, Opcode.STATUS_RESPONSE, StatusResponse(status=self.answer).encode())


def subscribe(setup: Setup, min_s: int, max_s: int, *paths: AttributePathIB,
              keep: bool = True) -> tuple[Conversation, SubscribeResponse]:
    request = SubscribeRequest(keep_subscriptions=keep, min_interval_floor=min_s,
                               max_interval_ceiling=max_s, attribute_requests=list(paths),
                               fabric_filtered=True)
    conv = setup.client.send(Opcode.SUBSCRIBE_REQUEST, request.encode())
    assert conv.opcodes()[-1] == Opcode.SUBSCRIBE_RESPONSE, conv.opcodes()
    return conv, SubscribeResponse.decode(conv.last().payload)


def test_subscribe_priming_keepalive_and_change_schedule() -> None:
    setup = make_setup(privilege=Privilege.MANAGE)
    inbox = ReportInbox(setup.client.node)
    conv, response = subscribe(setup, 2, 10, path(0, BASIC))
    assert response.max_interval == 10
    [priming] = conv.reports()
    assert priming.subscription_id == response.subscription_id
    assert not priming.suppress_response
    assert values(priming.attribute_reports or [])[(0, BASIC, 3)] == "OTA Provider"
    assert setup.server_node.next_deadline() == 10.0
    setup.client.advance(20.5)
    # Keep-alives: empty reports every max interval.
    assert [(t, r.attribute_reports) for t, r in inbox.reports] == [(10.0, None), (20.0, None)]
    assert all(r.subscription_id == response.subscription_id for _, r in inbox.reports)
    # A change at 23 (the min interval since 20 has passed) is reported at once...
    setup.client.now = 23.0
    assert write(setup, AttributeDataIB(path=path(0, BASIC, 5), data="hall")) == [Status.SUCCESS]
    setup.client.advance(0.5)
    at, change = inbox.reports[-1]
    assert at == 23.0
    assert values(change.attribute_reports or []) == {(0, BASIC, 5): "hall"}
    # ...a second one waits for the min interval, and the keep-alive restarts after it.
    write(setup, AttributeDataIB(path=path(0, BASIC, 5), data="attic"))
    setup.client.advance(1.0)
    assert inbox.reports[-1][0] == 23.0
    setup.client.advance(1.0)
    assert inbox.reports[-1][0] == 25.0
    assert values(inbox.reports[-1][1].attribute_reports or []) == {(0, BASIC, 5): "attic"}
    assert setup.server_node.next_deadline() == 35.0
    assert len(inbox.reports) == 4


def test_subscription_ends_when_client_refuses_report() -> None:
    setup = make_setup(privilege=Privilege.VIEW)
    inbox = ReportInbox(setup.client.node, answer=Status.INVALID_SUBSCRIPTION)
    subscribe(setup, 0, 5, path(0, BASIC, 2))
    assert len(setup.server.subscriptions) == 1
    setup.client.advance(6)
    assert len(inbox.reports) == 1
    assert len(setup.server.subscriptions) == 0
    assert setup.server_node.next_deadline() is None


def test_subscription_ends_with_its_session() -> None:
    setup = make_setup(privilege=Privilege.VIEW)
    ReportInbox(setup.client.node)
    subscribe(setup, 0, 5, path(0, BASIC, 2))
    session = next(iter(setup.server_node.sessions))
    setup.server_node.remove_session(session)
    setup.client.advance(6)
    assert len(setup.server.subscriptions) == 0


def test_subscribe_replaces_unless_keep() -> None:
    setup = make_setup(privilege=Privilege.VIEW)
    ReportInbox(setup.client.node)
    subscribe(setup, 0, 60, path(0, BASIC, 2))
    subscribe(setup, 0, 60, path(0, BASIC, 3), keep=True)
    assert len(setup.server.subscriptions) == 2
    subscribe(setup, 0, 60, path(0, BASIC, 4), keep=False)
    assert len(setup.server.subscriptions) == 1


def test_subscribe_invalid_intervals() -> None:
    setup = make_setup(privilege=Privilege.VIEW)
    request = SubscribeRequest(keep_subscriptions=True, min_interval_floor=10,
                               max_interval_ceiling=5, attribute_requests=[path(0, BASIC, 2)],
                               fabric_filtered=True)
    conv = setup.client.send(Opcode.SUBSCRIBE_REQUEST, request.encode())
    assert status_of(conv.last()) == Status.INVALID_ACTION
    assert len(setup.server.subscriptions) == 0


def test_change_during_priming_is_reported_after_min_interval() -> None:
    setup = make_setup(privilege=Privilege.MANAGE, extra=VendorCluster(items=100))
    inbox = ReportInbox(setup.client.node)
    client = setup.client
    request = SubscribeRequest(keep_subscriptions=True, min_interval_floor=1,
                               max_interval_ceiling=30, fabric_filtered=True,
                               attribute_requests=[path(0, VendorCluster.ID), path(0, BASIC, 5)])
    conv = client.send(Opcode.SUBSCRIBE_REQUEST, request.encode(), pump=False)
    # Move only the request and the first chunk, then change NodeLabel mid-priming.
    deliver(client.node, setup.server_node, client.now, CLIENT_ADDR)
    deliver(setup.server_node, client.node, client.now, SERVER_ADDR)
    cluster = setup.model.cluster(0, BASIC)
    assert cluster is not None
    setup.info.node_label = "moved"
    cluster.changed(5)
    client.pump()
    assert conv.opcodes()[-1] == Opcode.SUBSCRIBE_RESPONSE
    assert len(conv.reports()) > 1
    assert values(conv.attribute_reports())[(0, BASIC, 5)] == ""  # read when priming began
    client.advance(1.5)
    at, change = inbox.reports[-1]
    assert at == 1.0 and values(change.attribute_reports or []) == {(0, BASIC, 5): "moved"}


def test_unanswered_report_ends_subscription_after_mrp_gives_up() -> None:
    setup = make_setup(privilege=Privilege.VIEW)
    subscribe(setup, 0, 5, path(0, BASIC, 2))
    # The client vanishes: nothing it would send arrives any more.
    setup.client.node.datagram_received = lambda *a, **k: None  # type: ignore[method-assign]
    setup.client.advance(5.0)
    assert len(setup.server.subscriptions) == 1  # the keep-alive is being retransmitted
    setup.client.advance(30.0)
    assert len(setup.server.subscriptions) == 0


def test_acl_change_outside_im_is_a_data_change() -> None:
    setup = make_setup(privilege=Privilege.ADMINISTER)
    inbox = ReportInbox(setup.client.node)
    subscribe(setup, 0, 60, path(0, ACL_CLUSTER, 0))
    cluster = setup.model.cluster(0, ACL_CLUSTER)
    assert cluster is not None
    before = cluster.data_version
    entries = [*setup.acl.entries(FABRIC), AccessControlEntry(FABRIC, Privilege.VIEW,
                                                              AuthMode.CASE)]
    setup.acl.set_entries(FABRIC, entries)
    assert cluster.data_version != before
    setup.client.advance(0.1)
    [(_, report)] = inbox.reports
    assert len(values(report.attribute_reports or [])[(0, ACL_CLUSTER, 0)]) == 2


def test_full_subscription_table_evicts_the_largest_fabrics_oldest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from matter_ota.im import subscriptions
    monkeypatch.setattr(subscriptions, "MAX_SUBSCRIPTIONS", 5)
    setup = make_setup(privilege=Privilege.VIEW)
    ReportInbox(setup.client.node)
    ids = [subscribe(setup, 0, 60, path(0, BASIC, 2))[1].subscription_id for _ in range(5)]
    _, newest = subscribe(setup, 0, 60, path(0, BASIC, 3))
    assert set(setup.server.subscriptions.active) == {*ids[1:], newest.subscription_id}
    monkeypatch.setattr(subscriptions, "MAX_SUBSCRIPTIONS", 3)
    for sub in list(setup.server.subscriptions.active.values())[:2]:
        setup.server.subscriptions.drop(sub, "test")
    request = SubscribeRequest(keep_subscriptions=True, min_interval_floor=0,
                               max_interval_ceiling=60, attribute_requests=[path(0, BASIC, 2)],
                               fabric_filtered=True)
    conv = setup.client.send(Opcode.SUBSCRIBE_REQUEST, request.encode())
    assert status_of(conv.last()) == Status.RESOURCE_EXHAUSTED  # 3 is the fabric's minimum
