"""General Diagnostics (minimal) over the IM server in memory: attributes, TimeSnapshot,
TestEventTrigger refused."""

from __future__ import annotations

from typing import Any

from im_client import Client, path, values
from msg_pair import make_node, secure_pair

from matter_ota import tlv
from matter_ota.clusters.basic_information import BasicInfo
from matter_ota.clusters.general_diagnostics import (
    GeneralDiagnosticsCluster,
    InterfaceType,
    NetworkInterface,
)
from matter_ota.clusters.ota_provider import NothingAvailable
from matter_ota.clusters.root import build_root_node
from matter_ota.im.acl import AccessControl
from matter_ota.im.messages import (
    CommandDataIB,
    CommandPathIB,
    InvokeRequest,
    InvokeResponse,
    Opcode,
    ReadRequest,
    Status,
)
from matter_ota.im.server import InteractionServer
from matter_ota.messaging.session import SessionKind

GD = 0x0033
ETH0 = NetworkInterface(name="eth0", is_operational=True,
                        off_premise_services_reachable_ipv4=None,
                        off_premise_services_reachable_ipv6=None,
                        hardware_address=bytes.fromhex("020000000001"),
                        ipv4_addresses=[bytes([10, 0, 0, 1])],
                        ipv6_addresses=[bytes.fromhex("fd00" + "00" * 13 + "01")],
                        type=InterfaceType.ETHERNET)


def setup() -> Client:
    client_node, server_node = make_node(), make_node()
    c, _ = secure_pair(client_node, server_node, kind=SessionKind.PASE)
    access = AccessControl()
    info = BasicInfo(vendor_name="v", vendor_id=0xFFF1, product_name="p", product_id=0x8000,
                     unique_id="U")
    model = build_root_node(info, access, NothingAvailable())
    model.endpoints[0].add(GeneralDiagnosticsCluster(
        reboot_count=3, started_at=100.0, interfaces=lambda: [ETH0],
        posix_ms=lambda now: 1_700_000_000_000 + int(now * 1000)))
    InteractionServer(server_node, model, access)
    client = Client(client_node, server_node, c)
    client.now = 100.0
    return client


def invoke(client: Client, command: int, fields: dict[int, Any]) -> Any:
    request = InvokeRequest(suppress_response=False, timed_request=False, invoke_requests=[
        CommandDataIB(path=CommandPathIB(endpoint=0, cluster=GD, command=command),
                      fields=fields)])
    conv = client.send(Opcode.INVOKE_REQUEST, request.encode())
    return InvokeResponse.decode(conv.last().payload).invoke_responses[0]


def test_attributes() -> None:
    client = setup()
    client.advance(42.5)
    conv = client.send(Opcode.READ_REQUEST, ReadRequest(
        attribute_requests=[path(0, GD)], fabric_filtered=True).encode())
    got = values(conv.attribute_reports())
    assert got[(0, GD, 0x0001)] == 3
    assert got[(0, GD, 0x0002)] == 42  # UpTime, seconds since start
    assert got[(0, GD, 0x0008)] is False
    [iface] = got[(0, GD, 0x0000)]
    assert NetworkInterface.from_value(iface) == ETH0
    assert got[(0, GD, 0xFFF9)] == [0, 1] and got[(0, GD, 0xFFF8)] == [2]


def test_time_snapshot_and_refused_trigger() -> None:
    client = setup()
    client.advance(1.25)
    ib = invoke(client, 0x01, {})
    assert ib.command is not None and ib.command.path.command == 0x02
    assert ib.command.fields[0] == 1250
    assert ib.command.fields[1] == 1_700_000_000_000 + 101_250
    for key in (bytes(16), b"\x01" * 16, b"\x01" * 3):
        ib = invoke(client, 0x00, {0: key, 1: tlv.uint(0xFFFF_FFFF_0000_0001)})
        assert ib.status is not None and ib.status.status.status == Status.CONSTRAINT_ERROR
