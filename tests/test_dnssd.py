"""DNS-SD record computation (spec 4.3) against connectedhomeip's ``src/lib/dnssd`` facts.

Names and subtype vectors are TestServiceNaming.cpp's; the TXT keys and value formats are what
Advertiser_ImplMinimalMdns.cpp writes (``VP=%d+%d``, ``D=%d``, ``CM=%d``, ``SII=%u``...). The
runtime (python-zeroconf) and real browsers are in ``tests/interop/test_mdns.py``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from matter_ota import dnssd
from matter_ota.cli import main
from matter_ota.commands import serve
from matter_ota.dnssd import (
    Commissionable,
    CommissioningMode,
    DnssdError,
    TcpSupport,
    operational_record,
)
from matter_ota.fabrics import CertificateAuthority
from matter_ota.messaging.session import SessionParameters
from matter_ota.setup_payload import SetupPayload, parse_qr_code

NOW = 1_764_000_000


def test_sdk_instance_name_vectors() -> None:
    assert dnssd.operational_instance_name(0x1234, 0x5678) == "0000000000001234-0000000000005678"
    assert (dnssd.operational_instance_name(0x1122334455667788, 0x123456789ABCDEF)
            == "1122334455667788-0123456789ABCDEF")


def test_sdk_subtype_vectors() -> None:
    assert dnssd.long_discriminator_subtype(3) == "_L3"
    assert dnssd.long_discriminator_subtype(4095) == "_L4095"
    assert dnssd.short_discriminator_subtype(3) == "_S3"
    assert dnssd.short_discriminator_subtype(15) == "_S15"
    assert dnssd.vendor_subtype(3) == "_V3"
    assert dnssd.vendor_subtype(0xFFFF) == "_V65535"
    assert dnssd.device_type_subtype(3) == "_T3"
    assert dnssd.COMMISSIONING_MODE_SUBTYPE == "_CM"
    assert dnssd.compressed_fabric_subtype(0xABCD12341111BBBB) == "_IABCD12341111BBBB"
    for bad in (lambda: dnssd.long_discriminator_subtype(1 << 12),
                lambda: dnssd.short_discriminator_subtype(1 << 4),
                lambda: dnssd.vendor_subtype(1 << 16)):
        with pytest.raises(DnssdError):
            bad()


def test_sdk_service_type_names() -> None:
    record = Commissionable(discriminator=3).record("1234567890123456", 5540)
    assert record.service_type == "_matterc._udp.local."
    assert "_L3._sub._matterc._udp.local." in record.subtype_types()
    op = operational_record(0x1234ABCD0000AAAA, 1, 5540)
    assert op.service_type == "_matter._tcp.local."
    assert op.subtype_types() == ["_I1234ABCD0000AAAA._sub._matter._tcp.local."]


def test_commissionable_record() -> None:
    params = Commissionable(discriminator=3840, vendor_id=0xFFF1, product_id=0x8001,
                            device_type=0x0014, device_name="Provider", pairing_hint=33,
                            pairing_instruction="Press", rotating_id="0a1b")
    record = params.record("A1B2C3D4E5F60718", 5540)
    assert record.fqdn == "A1B2C3D4E5F60718._matterc._udp.local."
    assert record.port == 5540
    assert record.subtypes == ("_L3840", "_S15", "_V65521", "_T20", "_CM")
    assert record.txt == {
        "D": "3840", "CM": "1", "VP": "65521+32769", "DT": "20", "DN": "Provider",
        "RI": "0A1B", "PH": "33", "PI": "Press",
        "SII": "500", "SAI": "300", "SAT": "4000", "T": "0",
    }
    assert record.txt_bytes()[:2] == [b"D=3840", b"CM=1"]
    assert dnssd.parse_txt(record.txt_bytes()) == record.txt


def test_commissionable_minimal_and_modes() -> None:
    record = Commissionable(discriminator=0, mrp=None, tcp=None).record("0" * 16, 5540)
    assert record.subtypes == ("_L0", "_S0", "_CM")
    assert record.txt == {"D": "0", "CM": "1"}
    enhanced = Commissionable(discriminator=0xABC, mode=CommissioningMode.ENHANCED)
    assert enhanced.txt()["CM"] == "2" and "_CM" in enhanced.subtypes()
    assert enhanced.short_discriminator == 0xA
    closed = Commissionable(discriminator=0xABC, mode=CommissioningMode.DISABLED)
    assert closed.txt()["CM"] == "0" and "_CM" not in closed.subtypes()
    assert Commissionable(discriminator=1, vendor_id=7).txt()["VP"] == "7"


def test_commissionable_limits() -> None:
    with pytest.raises(DnssdError):
        Commissionable(discriminator=0x1000).record("0" * 16, 5540)
    with pytest.raises(DnssdError, match="DN"):
        Commissionable(discriminator=1, device_name="x" * 33).txt()
    Commissionable(discriminator=1, device_name="é" * 16).txt()  # 32 bytes of UTF-8
    with pytest.raises(DnssdError, match="DN"):
        Commissionable(discriminator=1, device_name="é" * 17).txt()
    with pytest.raises(DnssdError, match="PI"):
        Commissionable(discriminator=1, pairing_instruction="p" * 129).txt()
    with pytest.raises(DnssdError, match="RI"):
        Commissionable(discriminator=1, rotating_id="zz").txt()
    with pytest.raises(DnssdError, match="product id only"):
        Commissionable(discriminator=1, product_id=5).txt()
    with pytest.raises(DnssdError):
        Commissionable(discriminator=1).record("0" * 16, 0)


def test_common_txt_clamps_like_the_sdk() -> None:
    slow = SessionParameters(idle_interval=7200.0, active_interval=0.3, active_threshold=100.0)
    assert dnssd.common_txt(slow, TcpSupport.CLIENT | TcpSupport.SERVER) == {
        "SII": "3600000", "SAI": "300", "SAT": "65535", "T": "6"}
    assert dnssd.common_txt(None, None) == {}


def test_operational_record_for_a_fabric() -> None:
    fabric = CertificateAuthority(fabric_id=0xFAB1, now=NOW).issue(0x0123456789ABCDEF)
    record = operational_record(fabric.compressed_fabric_id, fabric.node_id, 5540)
    cfid = fabric.compressed_fabric_id.hex().upper()
    assert record.instance == f"{cfid}-0123456789ABCDEF" == fabric.operational_instance_name()
    assert record.fqdn == f"{cfid}-0123456789ABCDEF._matter._tcp.local."
    assert record.subtypes == (f"_I{cfid}",)
    assert record.txt == {"SII": "500", "SAI": "300", "SAT": "4000", "T": "0"}
    with pytest.raises(DnssdError):
        operational_record(b"\x01\x02", 1, 5540)


def test_instance_and_host_names() -> None:
    names = {dnssd.random_instance_name() for _ in range(50)}
    assert len(names) == 50 and all(re.fullmatch(r"[0-9A-F]{16}", n) for n in names)
    assert dnssd.host_name_from_mac(bytes.fromhex("0a1b2c3d4e5f")) == "0A1B2C3D4E5F"
    assert dnssd.host_name_from_mac(bytes(range(8))) == "0001020304050607"
    assert re.fullmatch(r"[0-9A-F]{16}", dnssd.random_host_name())
    with pytest.raises(DnssdError):
        dnssd.host_name_from_mac(b"\x00" * 7)
    record = Commissionable(discriminator=1).record("AAAA", 5540).with_instance("BBBB")
    assert record.fqdn == "BBBB._matterc._udp.local."


def test_setup_code_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup-code", "--passcode", "20202021", "--discriminator", "3840",
                 "--product-id", "0x8001"]) == 0
    out = capsys.readouterr().out
    assert "3497-011-2332" in out and "MT:-24J0AFN00KA0648G00" in out
    assert main(["setup-code", "--passcode", "20202021", "--discriminator", "3840",
                 "--product-id", "0x8001", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["manual_code"] == "34970112332" and data["qr_code"] == "MT:-24J0AFN00KA0648G00"
    assert main(["setup-code", "MT:-24J0AFN00KA0648G00", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["discriminator"] == 3840
    assert main(["setup-code", "3497-011-2333"]) == 2
    assert "check digit" in capsys.readouterr().err
    assert main(["setup-code", "--passcode", "12345678", "--discriminator", "1"]) == 2


def test_setup_code_from_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "provider.yaml"
    config.write_text("node:\n  vendor_id: 0xFFF2\n  product_id: 0x1234\n"
                      "  discriminator: 2652\n  passcode: 34567890\n")
    assert main(["setup-code", "--config", str(config), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["passcode"], data["discriminator"]) == (34567890, 2652)
    assert (data["vendor_id"], data["product_id"]) == (0xFFF2, 0x1234)
    assert parse_qr_code(data["qr_code"]) == SetupPayload(34567890, 2652, 0xFFF2, 0x1234)
    # command-line values win over the config's
    assert main(["setup-code", "--config", str(config), "--json", "--discriminator", "7",
                 "--vendor-id", "0xFFF1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["discriminator"], data["vendor_id"], data["product_id"]) == (7, 0xFFF1, 0x1234)
    assert main(["setup-code", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_serve_advertises_the_config_identity(tmp_path: Path) -> None:
    config = tmp_path / "provider.yaml"
    config.write_text("node:\n  vendor_id: 0xFFF2\n  product_id: 0x1234\n"
                      "  device_name: lab provider\n")
    args = argparse.Namespace(config=config, passcode=20202021, discriminator=3840,
                              vendor_id=None, product_id=0x4321, device_name=None)
    params = serve.commissionable_params(args)
    assert params is not None
    assert params.txt()["VP"] == "65522+17185" and params.txt()["DN"] == "lab provider"
    assert params.txt()["DT"] == "20" and params.mode == CommissioningMode.BASIC
    args.discriminator = None
    assert serve.commissionable_params(args) is None


def test_serve_refuses_unknown_mdns_interface(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "--mdns-interface", "no-such-if0"]) == 2
    assert "no-such-if0" in capsys.readouterr().err


# ----------------------------------------------------------------------------- runtime helpers
# (no sockets: the advertiser itself runs only inside network namespaces, tests/interop)


def test_interfaces_and_host_name() -> None:
    from matter_ota.runtime import mdns

    chosen = mdns.discover_interfaces()
    assert all(i.name != "lo" for i in chosen)
    assert [i.name for i in mdns.discover_interfaces(["lo"])] == ["lo"]
    with pytest.raises(mdns.MdnsError, match="no-such-if0"):
        mdns.discover_interfaces(["no-such-if0"])
    with_mac = mdns.Interface("eth0", 2, mac=bytes.fromhex("020000abcdef"))
    without = mdns.Interface("wg0", 3)
    assert mdns.default_host_name([without, with_mac]) == "020000ABCDEF.local."
    assert re.fullmatch(r"[0-9A-F]{16}\.local\.", mdns.default_host_name([without]))


def test_advertised_address_order() -> None:
    from matter_ota.runtime import mdns

    a = mdns.Interface("a", 1, ipv4=["10.0.0.1"], ipv6=["fe80::1", "fd00::1"])
    b = mdns.Interface("b", 2, ipv4=["10.0.0.1", "192.0.2.7"], ipv6=["2001:db8::5"])
    assert mdns.ordered_addresses([a, b]) == [
        "fd00::1", "2001:db8::5", "fe80::1", "10.0.0.1", "192.0.2.7"]
