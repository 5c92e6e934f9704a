"""Our DNS-SD advertisement against browsers we did not write, inside a network namespace.

- connectedhomeip's controller (``DiscoverCommissionableNodes``) finds `matter-ota serve` by
  long discriminator, short discriminator, vendor id and commissioning mode (each a subtype PTR
  query), with the TXT values and addresses we advertise, and does not find it for another
  discriminator;
- the controller opens PASE from the manual pairing code and from the QR payload
  (``EstablishPASESession(setupCode)``): discovery by subtype, SRV/TXT/AAAA resolution, then
  PASE to the resolved address, end to end;
- the SDK's setup payload parser reads our manual codes and QR payloads, and its generator
  produces the same strings as ours;
- a python-zeroconf browser (another process) resolves the operational record of a fabric,
  through its ``_I`` subtype, and sees the goodbye when the node shuts down;
- `serve` says goodbye on SIGTERM, and with ``--no-mdns`` nothing is found;
- an update that drops ``_CM`` sends its goodbye and re-announces the TXT; an address change on
  the interface is re-announced;
- a name conflict renames a commissionable instance and is refused for an operational one.

All multicast stays inside the namespace (veth pair with both ends in it, see ``netns.py``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from matter_ota.setup_payload import Capability, CommissioningFlow, SetupPayload

from .chip_controller import run_controller
from .daemon import serve
from .netns import Namespace

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
PASSCODE = 20202021
DISCRIMINATOR = 3840
VENDOR_ID = 0xFFF1
PRODUCT_ID = 0x8001
DEVICE_NAME = "OTA provider test"


def daemon_args(discriminator: int = DISCRIMINATOR) -> tuple[str, ...]:
    return ("--passcode", str(PASSCODE), "--discriminator", str(discriminator),
            "--vendor-id", str(VENDOR_ID), "--product-id", str(PRODUCT_ID),
            "--device-name", DEVICE_NAME, "--mdns-interface", "dev0")


def discover(ns: Namespace, scratch: Path, query: str) -> list[dict[str, Any]]:
    """One fresh controller per query: the SDK keeps earlier results in its list."""
    outcome = run_controller(ns, scratch, "discover", "--query", query, "--timeout", "3")
    assert outcome.ok, outcome.log[-4000:]
    results = outcome.result["results"]
    assert [r["query"] for r in results] == [query]
    nodes: list[dict[str, Any]] = results[0]["nodes"]
    return nodes


def test_chip_controller_discovers_daemon_by_subtypes(ns: Namespace, tmp_path: Path) -> None:
    with serve(ns, tmp_path / "daemon", *daemon_args()) as daemon:
        assert daemon.wait_for("event=mdns_published"), daemon.log()
        published = re.search(r"event=mdns_published instance=([0-9A-F]{16})\._matterc",
                              daemon.log())
        assert published is not None, daemon.log()
        instance = published.group(1)
        host = re.search(r"event=mdns_started host=([0-9A-F]+)\.local\.", daemon.log())
        assert host is not None
        mac = ns.run(["cat", "/sys/class/net/dev0/address"]).stdout.strip()

        for i, query in enumerate([f"LONG_DISCRIMINATOR={DISCRIMINATOR}",
                                   f"SHORT_DISCRIMINATOR={DISCRIMINATOR >> 8}",
                                   f"VENDOR_ID={VENDOR_ID}", "COMMISSIONING_MODE"]):
            nodes = discover(ns, tmp_path / f"controller{i}", query)
            assert [n["instanceName"] for n in nodes] == [instance], (query, nodes)
            node = nodes[0]
            assert node["longDiscriminator"] == DISCRIMINATOR
            assert (node["vendorId"], node["productId"]) == (VENDOR_ID, PRODUCT_ID)
            assert node["commissioningMode"] == 1
            assert node["deviceType"] == 0x0014  # OTA Provider
            assert node["deviceName"] == DEVICE_NAME
            assert node["port"] == 5540
            assert (node["mrpRetryIntervalIdle"], node["mrpRetryIntervalActive"],
                    node["mrpRetryActiveThreshold"]) == (500, 300, 4000)
            assert node["supportsTcpClient"] is False and node["supportsTcpServer"] is False
            # Host name from dev0's MAC, as the SDK names its own hosts (12 hex digits).
            assert node["hostName"] == mac.replace(":", "").upper() == host.group(1)
            # Only dev0's addresses (ctl0's are in the same namespace, and not ours).
            assert ns.device_v6 in node["addresses"] and ns.device_v4 in node["addresses"]
            assert ns.controller_v6 not in node["addresses"]
            assert ns.controller_v4 not in node["addresses"]

        # Negative control: another discriminator's subtype has no answer.
        assert discover(ns, tmp_path / "other", f"LONG_DISCRIMINATOR={DISCRIMINATOR + 1}") == []


def test_serve_says_goodbye_on_sigterm_and_no_mdns_means_silence(ns: Namespace,
                                                                   tmp_path: Path) -> None:
    with serve(ns, tmp_path / "daemon", *daemon_args()) as daemon:
        assert daemon.wait_for("event=mdns_published"), daemon.log()
        browser = Peer(ns, "browse", "--type", f"_L{DISCRIMINATOR}._sub._matterc._udp.local.",
                       "--seconds", "4")
        try:
            assert browser.next_event()["event"] == "browsing"
            assert browser.next_event()["event"] == "added"
            daemon.proc.terminate()
            daemon.proc.wait(timeout=15)
            assert [e["event"] for e in browser.wait()] == ["removed"]
        finally:
            browser.stop()
        assert "event=mdns_stopped" in daemon.log()
    with serve(ns, tmp_path / "quiet", *daemon_args(), "--no-mdns") as daemon:
        assert daemon.wait_for("event=mdns_disabled reason=no_mdns"), daemon.log()
        assert discover(ns, tmp_path / "controller", f"LONG_DISCRIMINATOR={DISCRIMINATOR}") == []


@pytest.mark.parametrize("kind", ["manual", "qr"])
def test_chip_controller_opens_pase_from_setup_code(ns: Namespace, tmp_path: Path,
                                                    kind: str) -> None:
    payload = SetupPayload(PASSCODE, DISCRIMINATOR, VENDOR_ID, PRODUCT_ID)
    code = payload.manual_code() if kind == "manual" else payload.qr_code()
    with serve(ns, tmp_path / "daemon", *daemon_args()) as daemon:
        assert daemon.wait_for("event=mdns_published"), daemon.log()
        # serve logs the same codes for the operator.
        assert f"manual={payload.manual_code()} qr={payload.qr_code()}" in daemon.log()
        outcome = run_controller(ns, tmp_path / "controller", "pase-code", "--code", code)
        assert outcome.ok, f"{outcome.result}\n{outcome.log[-4000:]}\ndaemon:\n{daemon.log()}"
        assert daemon.wait_for("event=session_established kind=pase"), daemon.log()


def test_chip_controller_ignores_other_discriminator(ns: Namespace, tmp_path: Path) -> None:
    """A code for another discriminator finds nothing: discovery really filters."""
    other = SetupPayload(PASSCODE, 0x100, VENDOR_ID, PRODUCT_ID)  # short discriminator 1
    with serve(ns, tmp_path / "daemon", *daemon_args()) as daemon:
        assert daemon.wait_for("event=mdns_published"), daemon.log()
        outcome = run_controller(ns, tmp_path / "controller", "pase-code", "--code",
                                 other.manual_code(), "--timeout", "8")
        assert not outcome.ok
        assert "kind=pase" not in daemon.log()


def test_sdk_setup_payload_reads_and_writes_our_codes(ns: Namespace, tmp_path: Path) -> None:
    cases = []
    for passcode, discriminator, vid, pid, flow, caps in [
        (20202021, 3840, 0xFFF1, 0x8001, 0, 4), (1, 0, 0, 0, 0, 2),
        (99999998, 0xFFF, 0xFFF4, 0xFFFF, 2, 7), (34567890, 0xA5C, 0x1234, 0x5678, 1, 4),
        (12348765, 0x123, 0xFFF2, 0x0001, 2, 1),
    ]:
        ours = SetupPayload(passcode, discriminator, vid, pid, CommissioningFlow(flow),
                            Capability(caps))
        cases.append({"passcode": passcode, "discriminator": discriminator, "vendor_id": vid,
                      "product_id": pid, "flow": flow, "capabilities": caps,
                      "qr": ours.qr_code(), "manual": ours.manual_code()})
    scratch = tmp_path / "controller"
    (scratch / "data").mkdir(parents=True)
    (scratch / "data" / "cases.json").write_text(json.dumps(cases))
    outcome = run_controller(ns, scratch, "payload", "--cases", "/data/cases.json")
    assert outcome.ok, outcome.log[-4000:]
    for entry in outcome.result["results"]:
        case = entry["case"]
        assert entry["sdk_qr"] == case["qr"], entry
        assert entry["sdk_manual"] == case["manual"], entry
        qr = entry["qr_parsed"]
        assert int(qr["SetUpPINCode"]) == case["passcode"]
        assert int(qr["Long discriminator"]) == case["discriminator"]
        assert (int(qr["VendorID"]), int(qr["ProductID"])) == (case["vendor_id"],
                                                                case["product_id"])
        assert int(qr["CommissioningFlow"]) == case["flow"]
        assert int(qr["RendezvousInformation"]) == case["capabilities"]
        manual = entry["manual_parsed"]
        assert int(manual["SetUpPINCode"]) == case["passcode"]
        assert int(manual["Short discriminator"]) == case["discriminator"] >> 8


# ----------------------------------------------------------------------------- zeroconf peers


class Peer:
    """A `mdns_peer.py` process in the namespace; ``events()`` reads its JSON lines."""

    def __init__(self, ns: Namespace, *args: str) -> None:
        command = [sys.executable, str(HERE / "mdns_peer.py"), *args]
        self.proc = subprocess.Popen(ns.wrap(command), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._rest: list[dict[str, Any]] | None = None
        self.err = ""

    def next_event(self, timeout: float = 15.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line:
                event: dict[str, Any] = json.loads(line)
                return event
            if self.proc.poll() is not None:
                break
        raise AssertionError(f"no event; stderr:\n{self.stderr()}")

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def wait(self) -> list[dict[str, Any]]:
        """Let the process finish on its own (a browser's --seconds); the remaining events."""
        if self._rest is None:
            self.proc.wait(timeout=30)
        return self.stop()

    def stop(self) -> list[dict[str, Any]]:
        """SIGTERM (by PID), then the remaining events (idempotent)."""
        if self._rest is None:
            if self.proc.poll() is None:
                self.proc.terminate()
            out, self.err = self.proc.communicate(timeout=20)
            self._rest = [json.loads(line) for line in out.splitlines() if line.strip()]
        return self._rest


def test_zeroconf_browser_resolves_operational_record(ns: Namespace) -> None:
    node = Peer(ns, "fabric", "--node-id", "0x1122334455667788", "--fabric-id", "0xFAB1",
                "--interface", "dev0")
    browser = None
    try:
        published = node.next_event()
        assert published["event"] == "published", published
        cfid = published["compressed_fabric_id"]
        assert re.fullmatch(r"[0-9A-F]{16}", cfid)
        assert published["instance"] == f"{cfid}-1122334455667788"
        assert published["subtypes"] == [f"_I{cfid}"]
        browser = Peer(ns, "browse", "--type", f"_I{cfid}._sub._matter._tcp.local.",
                       "--type", "_matter._tcp.local.", "--seconds", "5")
        assert browser.next_event()["event"] == "browsing"
        wanted = {f"_I{cfid}._sub._matter._tcp.local.", "_matter._tcp.local."}
        added: list[dict[str, Any]] = []
        # python-zeroconf may report one type twice (an answer seen on IPv4 and IPv6).
        while {a["type"] for a in added} != wanted:
            added.append(browser.next_event())
            assert len(added) <= 6, added
        for event in added:
            assert event["event"] == "added" and event["resolved"], event
            assert event["name"] == f"{cfid}-1122334455667788._matter._tcp.local."
            assert event["port"] == 5540
            assert event["server"] == published["host"]
            assert ns.device_v6 in event["addresses"] and ns.device_v4 in event["addresses"]
            assert event["txt"] == {"SII": "500", "SAI": "300", "SAT": "4000", "T": "0"}
        # Shutdown sends goodbyes: the browser sees the instance leave, well before its TTL.
        assert node.stop()[-1]["event"] == "closed"
        removed = [e for e in browser.wait() if e["event"] == "removed"]
        assert {e["type"] for e in removed} == {f"_I{cfid}._sub._matter._tcp.local.",
                                                "_matter._tcp.local."}, removed
    finally:
        node.stop()
        if browser is not None:
            browser.stop()


def test_address_change_is_re_announced(ns: Namespace) -> None:
    node = Peer(ns, "fabric", "--node-id", "0x77", "--fabric-id", "0x5", "--interface", "dev0",
                "--refresh-every", "0.5")
    try:
        published = node.next_event()
        assert published["event"] == "published"
        assert ns.device_v6 in published["addresses"]
        new_v6 = "fd00:6d61::99"
        ns.run(["ip", "addr", "add", f"{new_v6}/64", "dev", "dev0", "nodad"])
        ns.run(["ip", "addr", "del", f"{ns.device_v6}/64", "dev", "dev0"])
        changed = node.next_event()
        assert changed["event"] == "addresses", changed
        assert new_v6 in changed["addresses"] and ns.device_v6 not in changed["addresses"]
        browser = Peer(ns, "browse", "--type", "_matter._tcp.local.", "--seconds", "3")
        events = [e for e in browser.wait() if e["event"] == "added"]
        assert events and events[0]["resolved"], events
        assert new_v6 in events[0]["addresses"] and ns.device_v6 not in events[0]["addresses"]
        assert ns.device_v4 in events[0]["addresses"]
    finally:
        node.stop()


def test_update_withdraws_dropped_subtype_and_changes_txt(ns: Namespace) -> None:
    """Closing the window (CM=0): a `_CM` browser sees the goodbye; a browser started after
    that finds the instance with CM=0 under `_matterc` and nothing under `_CM`.

    (python-zeroconf's browser also counts a subtype PTR toward its parent type, so a goodbye
    for `_CM` reads as a removal to a browser of `_matterc._udp`: hence separate browsers.)
    """
    node = Peer(ns, "window", "--close-after", "2.5", "--interface", "dev0")
    browsers: list[Peer] = []
    try:
        published = node.next_event()
        assert published["event"] == "published" and "_CM" in published["subtypes"]
        name = f"{published['instance']}._matterc._udp.local."
        cm = Peer(ns, "browse", "--type", "_CM._sub._matterc._udp.local.", "--seconds", "5")
        browsers.append(cm)
        assert cm.next_event()["event"] == "browsing"
        added = cm.next_event()
        assert (added["event"], added["name"], added["txt"]["CM"]) == ("added", name, "1")
        updated = node.next_event()
        assert updated["event"] == "updated" and "_CM" not in updated["subtypes"]
        removed = [e for e in cm.wait() if e["event"] == "removed"]
        assert [e["name"] for e in removed] == [name], removed
        assert removed[0]["at"] >= updated["at"] - 0.1

        after = Peer(ns, "browse", "--type", "_CM._sub._matterc._udp.local.",
                     "--type", "_matterc._udp.local.", "--seconds", "3")
        browsers.append(after)
        events = after.wait()
        found = {(e["type"], e["name"]) for e in events if e["event"] == "added"}
        assert found == {("_matterc._udp.local.", name)}, events
        assert all(e["txt"]["CM"] == "0" for e in events if e["event"] == "added"), events
    finally:
        node.stop()
        for browser in browsers:
            browser.stop()


def test_commissionable_instance_renamed_on_conflict(ns: Namespace) -> None:
    squatter = Peer(ns, "squat", "--type", "_matterc._udp.local.", "--instance",
                    "0123456789ABCDEF")
    try:
        assert squatter.next_event()["event"] == "published"
        ours = Peer(ns, "commissionable", "--instance", "0123456789ABCDEF", "--interface", "dev0")
        try:
            event = ours.next_event()
            assert event["event"] == "published"
            assert event["instance"] != "0123456789ABCDEF"
            assert re.fullmatch(r"[0-9A-F]{16}", event["instance"])
        finally:
            ours.stop()
    finally:
        squatter.stop()


def test_operational_conflict_is_reported_not_renamed(ns: Namespace) -> None:
    """An operational name is the node's identity: on conflict we say so, never rename."""
    squatter = Peer(ns, "squat", "--type", "_matter._tcp.local.", "--instance",
                    "1122334455667788-0000000000000042")
    try:
        assert squatter.next_event()["event"] == "published"
        ours = Peer(ns, "operational", "--compressed-fabric-id", "0x1122334455667788",
                    "--node-id", "0x42", "--interface", "dev0")
        try:
            event = ours.next_event()
            assert event["event"] == "conflict", event
            assert "1122334455667788-0000000000000042._matter._tcp.local." in event["error"]
        finally:
            ours.stop()
    finally:
        squatter.stop()
