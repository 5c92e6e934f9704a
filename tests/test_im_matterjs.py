"""Our IM messages against matter.js's schemas (@matter/types, from npm): what we encode,
matter.js decodes to the intended fields, and what matter.js encodes, we decode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from matterjs_support import matterjs_dir, results, run_node

from matter_ota import tlv
from matter_ota.im.messages import (
    IM_REVISION,
    AttributeDataIB,
    AttributePathIB,
    AttributeReportIB,
    AttributeStatusIB,
    ClusterPathIB,
    CommandDataIB,
    CommandPathIB,
    CommandStatusIB,
    DataVersionFilterIB,
    InvokeRequest,
    InvokeResponse,
    InvokeResponseIB,
    ReadRequest,
    ReportData,
    StatusIB,
    StatusResponse,
    SubscribeRequest,
    SubscribeResponse,
    TimedRequest,
    WriteResponse,
)

HARNESS = "im_messages.cjs"


@pytest.fixture(scope="module")
def matterjs() -> Path:
    return matterjs_dir()


def run(matterjs: Path, *requests: dict[str, Any]) -> list[Any]:
    stdin = "".join(json.dumps(r) + "\n" for r in requests)
    out = results(run_node(HARNESS, matterjs, stdin=stdin))
    assert len(out) == len(requests), out
    return out


def decode(matterjs: Path, kind: str, message: tlv.Struct) -> Any:
    [out] = run(matterjs, {"op": "decode", "kind": kind, "hex": message.encode().hex()})
    assert "value" in out, out
    return out["value"]


def test_matterjs_decodes_our_responses(matterjs: Path) -> None:
    path = AttributePathIB(endpoint=0, cluster=0x28, attribute=5)
    report = ReportData(subscription_id=0xDEADBEEF, more_chunked_messages=True, attribute_reports=[
        AttributeReportIB(attribute_data=AttributeDataIB(data_version=7, path=path, data="x")),
        AttributeReportIB(attribute_data=AttributeDataIB(
            data_version=7, path=AttributePathIB(endpoint=0, cluster=0x1F, attribute=0,
                                                 list_append=True), data={1: tlv.uint(5)})),
        AttributeReportIB(attribute_status=AttributeStatusIB(
            path=AttributePathIB(endpoint=3, cluster=0x28, attribute=5),
            status=StatusIB(status=0x7F))),
    ])
    got = decode(matterjs, "DataReport", report)
    assert got["subscriptionId"] == 0xDEADBEEF and got["moreChunkedMessages"] is True
    assert got["interactionModelRevision"] == IM_REVISION
    first, appended, status = got["attributeReports"]
    assert first["attributeData"]["path"] == {"endpointId": 0, "clusterId": 0x28,
                                              "attributeId": 5}
    assert first["attributeData"]["dataVersion"] == 7
    assert appended["attributeData"]["path"]["listIndex"] is None  # null: append
    assert status["attributeStatus"] == {
        "path": {"endpointId": 3, "clusterId": 0x28, "attributeId": 5}, "status": {"status": 0x7F}}

    invoke = InvokeResponse(suppress_response=False, invoke_responses=[
        InvokeResponseIB(command=CommandDataIB(
            path=CommandPathIB(endpoint=0, cluster=0x29, command=1),
            fields={0: tlv.uint(2)})),
        InvokeResponseIB(status=CommandStatusIB(
            path=CommandPathIB(endpoint=0, cluster=0x29, command=4),
            status=StatusIB(status=0, cluster_status=3), command_ref=1)),
    ])
    got = decode(matterjs, "InvokeResponse", invoke)
    command, status = got["invokeResponses"]
    assert command["command"]["commandPath"] == {"endpointId": 0, "clusterId": 0x29,
                                                 "commandId": 1}
    assert status["status"] == {"commandPath": {"endpointId": 0, "clusterId": 0x29,
                                                "commandId": 4},
                                "status": {"status": 0, "clusterStatus": 3}, "commandRef": 1}
    assert decode(matterjs, "SubscribeResponse",
                  SubscribeResponse(subscription_id=9, max_interval=60)) == {
        "subscriptionId": 9, "maxInterval": 60, "interactionModelRevision": IM_REVISION}
    assert decode(matterjs, "StatusResponse", StatusResponse(status=0xC6)) == {
        "status": 0xC6, "interactionModelRevision": IM_REVISION}
    assert decode(matterjs, "WriteResponse", WriteResponse(write_responses=[
        AttributeStatusIB(path=path, status=StatusIB(status=0x88))]))["writeResponses"] == [
        {"path": {"endpointId": 0, "clusterId": 0x28, "attributeId": 5},
         "status": {"status": 0x88}}]


def test_we_decode_matterjs_requests(matterjs: Path) -> None:
    read = {"attributeRequests": [{}, {"endpointId": 0, "clusterId": 0x28, "attributeId": 2}],
            "isFabricFiltered": False,
            "dataVersionFilters": [{"path": {"endpointId": 0, "clusterId": 0x28},
                                    "dataVersion": 77}],
            "interactionModelRevision": 12}
    subscribe = {"keepSubscriptions": True, "minIntervalFloorSeconds": 1,
                 "maxIntervalCeilingSeconds": 30, "attributeRequests": [{"clusterId": 0x29}],
                 "isFabricFiltered": True}
    encoded = run(matterjs,
                  {"op": "encode", "kind": "ReadRequest", "value": read},
                  {"op": "encode", "kind": "SubscribeRequest", "value": subscribe},
                  {"op": "encode", "kind": "TimedRequest", "value": {"timeout": 500}},
                  {"op": "encode", "kind": "StatusResponse", "value": {"status": 0}})
    assert all("hex" in e for e in encoded), encoded
    r = ReadRequest.decode(bytes.fromhex(encoded[0]["hex"]))
    assert r.attribute_requests == [AttributePathIB(), AttributePathIB(endpoint=0, cluster=0x28,
                                                                       attribute=2)]
    assert r.fabric_filtered is False and r.revision == 12
    assert r.data_version_filters == [DataVersionFilterIB(
        path=ClusterPathIB(endpoint=0, cluster=0x28), data_version=77)]
    s = SubscribeRequest.decode(bytes.fromhex(encoded[1]["hex"]))
    assert (s.keep_subscriptions, s.min_interval_floor, s.max_interval_ceiling,
            s.fabric_filtered) == (True, 1, 30, True)
    assert s.attribute_requests == [AttributePathIB(cluster=0x29)]
    assert TimedRequest.decode(bytes.fromhex(encoded[2]["hex"])).timeout == 500
    assert StatusResponse.decode(bytes.fromhex(encoded[3]["hex"])).status == 0


def test_matterjs_decodes_our_requests(matterjs: Path) -> None:
    invoke = InvokeRequest(suppress_response=False, timed_request=True, invoke_requests=[
        CommandDataIB(path=CommandPathIB(endpoint=0, cluster=0x29, command=0),
                      fields={0: tlv.uint(0xFFF1)})])
    got = decode(matterjs, "InvokeRequest", invoke)
    assert got["timedRequest"] is True and got["suppressResponse"] is False
    assert got["invokeRequests"][0]["commandPath"] == {"endpointId": 0, "clusterId": 0x29,
                                                       "commandId": 0}
    subscribe = SubscribeRequest(keep_subscriptions=False, min_interval_floor=2,
                                 max_interval_ceiling=10, fabric_filtered=True,
                                 attribute_requests=[AttributePathIB(endpoint=0)])
    assert decode(matterjs, "SubscribeRequest", subscribe) == {
        "keepSubscriptions": False, "minIntervalFloorSeconds": 2,
        "maxIntervalCeilingSeconds": 10, "attributeRequests": [{"endpointId": 0}],
        "isFabricFiltered": True, "interactionModelRevision": IM_REVISION}
