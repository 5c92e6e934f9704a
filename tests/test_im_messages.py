"""IM message schemas: round trips, wire details, and robustness (IMError and nothing else)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from im_client import Client, Conversation
from msg_pair import make_node, secure_pair

from matter_ota import tlv
from matter_ota.clusters.basic_information import BasicInfo
from matter_ota.clusters.ota_provider import NothingAvailable
from matter_ota.clusters.root import build_root_node
from matter_ota.im.acl import AccessControl
from matter_ota.im.messages import (
    IM_REVISION,
    AttributeDataIB,
    AttributePathIB,
    AttributeReportIB,
    CommandDataIB,
    CommandPathIB,
    IMError,
    InvokeRequest,
    InvokeResponse,
    Opcode,
    ReadRequest,
    ReportData,
    StatusResponse,
    SubscribeRequest,
    SubscribeResponse,
    TimedRequest,
    WriteRequest,
    WriteResponse,
)
from matter_ota.im.server import InteractionServer
from matter_ota.messaging.session import SessionKind

MESSAGES = [StatusResponse, ReadRequest, SubscribeRequest, SubscribeResponse, ReportData,
            WriteRequest, WriteResponse, InvokeRequest, InvokeResponse, TimedRequest]


def test_read_request_wire_format() -> None:
    request = ReadRequest(attribute_requests=[AttributePathIB(endpoint=0, cluster=0x28,
                                                              attribute=2)],
                          fabric_filtered=True)
    # struct { 0: [ list { 2: u8 0, 3: u8 0x28, 4: u8 2 } ], 3: true, 0xFF: u8 12 }
    assert request.encode().hex() == "1536001724020024032824040218182903" + "24ff0c" + "18"
    assert ReadRequest.decode(request.encode()) == request


def test_list_index_null_means_append() -> None:
    p = AttributePathIB(endpoint=1, cluster=2, attribute=3, list_append=True)
    assert tlv.decode(p.encode()) == tlv.TLVList([(2, 1), (3, 2), (4, 3), (5, None)])
    assert AttributePathIB.decode(p.encode()).list_append
    assert not AttributePathIB.decode(AttributePathIB(endpoint=1).encode()).list_append


def test_revision_is_sent_and_optional_on_receipt() -> None:
    assert tlv.decode(StatusResponse(status=0).encode())[0xFF] == IM_REVISION
    assert StatusResponse.decode(tlv.encode({0: tlv.uint(0x80)})).status == 0x80


def test_round_trips() -> None:
    report = ReportData(subscription_id=7, more_chunked_messages=True, attribute_reports=[
        AttributeReportIB(attribute_data=AttributeDataIB(
            data_version=1, path=AttributePathIB(endpoint=0, cluster=0x28, attribute=5),
            data="x"))])
    invoke = InvokeRequest(suppress_response=False, timed_request=True, invoke_requests=[
        CommandDataIB(path=CommandPathIB(endpoint=0, cluster=0x29, command=0),
                      fields={0: tlv.uint(1)}, command_ref=3)])
    subscribe = SubscribeRequest(keep_subscriptions=False, min_interval_floor=1,
                                 max_interval_ceiling=60, fabric_filtered=False,
                                 attribute_requests=[AttributePathIB()])
    write = WriteRequest(timed_request=False, write_requests=[AttributeDataIB(
        path=AttributePathIB(endpoint=0, cluster=0x28, attribute=5), data=None)])
    for message in (report, invoke, subscribe, write, TimedRequest(timeout=500),
                    SubscribeResponse(subscription_id=1, max_interval=60)):
        assert type(message).decode(message.encode()) == message
    # SubscribeRequest: IsFabricFiltered is tag 7 (tag 6 is reserved).
    assert 7 in tlv.decode(subscribe.encode()) and 6 not in tlv.decode(subscribe.encode())


@pytest.mark.parametrize("cls", MESSAGES)
@given(data=st.binary(max_size=80))
@settings(max_examples=80, deadline=None)
def test_random_bytes_raise_only_imerror(cls: Any, data: bytes) -> None:
    with contextlib.suppress(IMError):
        cls.decode(data)


scalars = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**64 - 1).map(tlv.uint),
                    st.booleans(), st.none(), st.text(max_size=4), st.binary(max_size=4))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.integers(0, 8) | st.just(0xFF), inner, max_size=4),
        st.lists(st.tuples(st.integers(0, 8) | st.none(), inner), max_size=4).map(tlv.TLVList),
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("cls", MESSAGES)
@given(value=st.dictionaries(st.integers(0, 8) | st.just(0xFF), values, max_size=5))
@settings(max_examples=80, deadline=None)
def test_random_structures_raise_only_imerror(cls: Any, value: dict[int, Any]) -> None:
    with contextlib.suppress(IMError):
        cls.decode(tlv.encode(value))


def _server_pair() -> Client:
    client, server = make_node(), make_node()
    c, _s = secure_pair(client, server, kind=SessionKind.PASE)
    info = BasicInfo(vendor_name="v", vendor_id=1, product_name="p", product_id=1,
                     unique_id="u")
    access = AccessControl()
    InteractionServer(server, build_root_node(info, access, NothingAvailable()), access)
    return Client(client, server, c)


PAIR = _server_pair()


@given(opcode=st.sampled_from([Opcode.READ_REQUEST, Opcode.SUBSCRIBE_REQUEST,
                               Opcode.WRITE_REQUEST, Opcode.INVOKE_REQUEST,
                               Opcode.TIMED_REQUEST]),
       value=st.dictionaries(st.integers(0, 8), values, max_size=5))
@settings(max_examples=300, deadline=None)
def test_server_answers_garbage_without_handler_errors(opcode: Opcode, value: dict[int, Any],
                                                       ) -> None:
    handler = _Errors()
    logging.getLogger("matter_ota").addHandler(handler)
    try:
        conv = PAIR.send(opcode, tlv.encode(value), Conversation(keep_open=False))
    finally:
        logging.getLogger("matter_ota").removeHandler(handler)
    assert not handler.records, handler.records[0].getMessage()
    assert conv.messages, "every request gets an answer"
    PAIR.advance(60)  # let timed windows and subscriptions run out


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


part = st.none() | st.sampled_from([0, 1, 0x28, 0x1D, 0x29, 0xFFFD, 0xFFFB, 7, 0x99])


@given(paths=st.lists(st.builds(AttributePathIB, endpoint=st.none() | st.sampled_from([0, 1]),
                                cluster=part, attribute=part), min_size=1, max_size=4))
@settings(max_examples=150, deadline=None)
def test_read_any_paths_reports_each_concrete_path_once(paths: list[AttributePathIB]) -> None:
    conv = PAIR.send(Opcode.READ_REQUEST,
                     ReadRequest(attribute_requests=paths, fabric_filtered=True).encode())
    reports = [r for rd in conv.reports() for r in rd.attribute_reports or ()]
    for p in paths:
        if p.is_wildcard:
            continue
        about = [r for r in reports
                 if (r.attribute_data and r.attribute_data.path == p)
                 or (r.attribute_status and r.attribute_status.path == p)]
        assert len(about) >= 1, p
    # Wildcards never produce statuses for what they expanded to.
    for r in reports:
        if r.attribute_status is not None:
            assert not r.attribute_status.path.is_wildcard
