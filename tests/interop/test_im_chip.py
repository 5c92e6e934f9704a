"""connectedhomeip's controller uses our Interaction Model server over a PASE session.

It reads Basic Information and Descriptor with its generated cluster objects and must get
correctly typed values, decodes a wildcard read of every cluster (two chunked ReportData
messages) into its cluster dataclasses, writes NodeLabel, is refused QueryImage (the provider
answers CASE sessions of its fabrics only) and sees a subscription report of a change.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .chip_controller import run_controller
from .daemon import serve
from .netns import Namespace

pytestmark = pytest.mark.interop

PASSCODE = 20202021


def test_chip_controller_reads_writes_invokes_subscribes(ns: Namespace, tmp_path: Path) -> None:
    with serve(ns, tmp_path / "daemon", "--passcode", str(PASSCODE), "--discriminator",
               "3840", "--log-level", "DEBUG") as daemon:
        outcome = run_controller(ns, tmp_path / "controller", "pase-im", "--ip", ns.device_v6,
                                 "--passcode", str(PASSCODE), "--timeout", "30", timeout=120)
        log = daemon.log()
    assert outcome.ok, f"{outcome.result}\n{outcome.log[-6000:]}\ndaemon:\n{log}"
    steps = outcome.result["steps"]
    typed = steps["typed"]

    def value(name: str, type_name: str) -> object:
        got = typed[name]
        assert got["type"] == type_name, (name, got)
        return got["value"]

    assert value("BasicInformation.VendorID", "uint") == 0xFFF1
    assert value("BasicInformation.ProductID", "uint") == 0x8000
    assert value("BasicInformation.VendorName", "str") == "matter-ota"
    assert value("BasicInformation.ProductName", "str") == "OTA Provider"
    assert value("BasicInformation.DataModelRevision", "uint") == 18
    assert value("BasicInformation.SpecificationVersion", "uint") == 0x01040000
    assert value("BasicInformation.MaxPathsPerInvoke", "uint") == 1
    assert value("BasicInformation.Location", "str") == "XX"
    assert len(value("BasicInformation.UniqueID", "str")) == 32  # type: ignore[arg-type]
    assert value("BasicInformation.CapabilityMinima", "CapabilityMinimaStruct") == {
        "caseSessionsPerFabric": 3, "subscriptionsPerFabric": 3}
    assert value("Descriptor.DeviceTypeList", "list") == [
        {"deviceType": 0x16, "revision": 3}, {"deviceType": 0x14, "revision": 1}]
    # Root node clusters, OTA Provider, the commissioning clusters (0x30, 0x31, 0x3E, 0x3F) and
    # General Diagnostics (0x33).
    assert value("Descriptor.ServerList", "list") == [0x1D, 0x1F, 0x28, 0x29, 0x30, 0x31, 0x33,
                                                      0x3E, 0x3F]
    assert value("Descriptor.PartsList", "list") == []
    # Every cluster decodes whole into the SDK's dataclass (no ValueDecodeFailure anywhere).
    clusters = steps["clusters"]
    assert set(clusters) == {"Descriptor", "AccessControl", "BasicInformation",
                             "OtaSoftwareUpdateProvider", "GeneralCommissioning",
                             "NetworkCommissioning", "OperationalCredentials",
                             "GroupKeyManagement", "GeneralDiagnostics"}
    assert "ValueDecodeFailure" not in str(clusters), clusters
    diagnostics = clusters["GeneralDiagnostics"]["value"]
    assert diagnostics["rebootCount"] == 1 and diagnostics["testEventTriggersEnabled"] is False
    assert "dev0" in [i["name"] for i in diagnostics["networkInterfaces"]], diagnostics
    ota = clusters["OtaSoftwareUpdateProvider"]["value"]
    assert ota["acceptedCommandList"] == [0, 2, 4] and ota["generatedCommandList"] == [1, 3]
    # PASE is the commissioning window: implicit Administer, no fabric, so an empty ACL.
    assert clusters["AccessControl"]["value"]["acl"] == []
    assert steps["write"] == [0] and steps["label"] == "lab"
    # The OTA provider answers only CASE sessions of its fabrics (the requestor's identity is
    # the session's): over PASE, even with the commissioning window's implicit Administer,
    # QueryImage is UNSUPPORTED_ACCESS, plain or timed (TimedRequest, then the invoke in its
    # window). A positive QueryImage over CASE: test_commission_chip, test_ota_chip.
    assert steps["query"] == {"status": 0x7E}, steps["query"]
    assert steps["timed_query"] == {"status": 0x7E}, steps["timed_query"]
    assert "event=query " not in log  # refused before the provider recorded anything
    assert steps["bad_apply"] == 0x85  # a 5-byte UpdateToken: INVALID_COMMAND
    assert steps["subscription_saw"] == "sub"
    # The controller's liveness check was satisfied by our empty keep-alive reports: one
    # subscription, never re-established, at least two keep-alives acknowledged.
    assert log.count("event=subscribed") == 1, log
    keepalives = re.findall(r"event=subscription_report id=\S+ reports=0 chunks=1", log)
    assert len(keepalives) >= 2, log
    assert "reason=report_failed" not in log
    assert "event=subscribed" in log and "handler_error" not in log, log
    # The wildcard read did not fit one message: the controller stepped through the chunks.
    chunks = [int(n) for n in re.findall(r"event=read paths=1 reports=\d+ chunks=(\d+)", log)]
    assert max(chunks) >= 2, chunks
