"""``bench.py tlv``: TLV encode + decode of a QueryImage, ours against `chip.tlv`.

The message is the OTA Provider's QueryImage request (11.20.6.5.1) as a requestor sends it: all
eight fields, 52 bytes of TLV. Two depths, each against its connectedhomeip counterpart measured
in the same run:

- ``codec``: the value tree (``dict`` of context tags) to bytes and back: ``tlv.encode`` /
  ``tlv.decode`` vs ``chip.tlv.TLVWriter.put`` / ``TLVReader.get``;
- ``schema``: a typed object to bytes and back, with field checks: our declarative
  ``tlv.Struct`` vs the SDK's generated ``chip.clusters.Objects`` class (``ToTLV`` / ``FromTLV``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from benchlib import calls_per_second

from matter_ota import tlv


@dataclass(kw_only=True)
class QueryImage(tlv.Struct):
    """QueryImage command fields (11.20.6.5.1)."""

    vendor_id: int = tlv.field(0, tlv.U16)
    product_id: int = tlv.field(1, tlv.U16)
    software_version: int = tlv.field(2, tlv.U32)
    protocols_supported: list[int] = tlv.field(3, tlv.ArrayOf(tlv.U8))
    hardware_version: int | None = tlv.field(4, tlv.U16, optional=True)
    location: str | None = tlv.field(5, tlv.Str(max_len=2), optional=True)
    requestor_can_consent: bool | None = tlv.field(6, tlv.Bool, optional=True)
    metadata_for_provider: bytes | None = tlv.field(7, tlv.Bytes(max_len=512), optional=True)


FIELDS: dict[str, Any] = {
    "vendor_id": 0xFFF1,
    "product_id": 0x8000,
    "software_version": 0x0001_0002,
    "protocols_supported": [0, 1],
    "hardware_version": 3,
    "location": "US",
    "requestor_can_consent": False,
    "metadata_for_provider": bytes(16),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tlv", help="TLV encode+decode of a QueryImage vs chip.tlv")
    p.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    p.set_defaults(func=run)


_rate = calls_per_second


def run(args: argparse.Namespace) -> int:
    try:
        import chip.tlv as chip_tlv
        from chip.clusters import Objects
    except ImportError:
        print("bench tlv: chip.tlv (home-assistant-chip-clusters) is not installed")
        return 1

    ours = QueryImage(**FIELDS)
    value = ours.to_value()
    data = tlv.encode(value)
    chip_value = {
        0: chip_tlv.uint(FIELDS["vendor_id"]),
        1: chip_tlv.uint(FIELDS["product_id"]),
        2: chip_tlv.uint(FIELDS["software_version"]),
        3: [chip_tlv.uint(p) for p in FIELDS["protocols_supported"]],
        4: chip_tlv.uint(FIELDS["hardware_version"]),
        5: FIELDS["location"],
        6: FIELDS["requestor_can_consent"],
        7: FIELDS["metadata_for_provider"],
    }
    chip_class = Objects.OtaSoftwareUpdateProvider.Commands.QueryImage
    chip_object = chip_class(
        vendorID=FIELDS["vendor_id"],
        productID=FIELDS["product_id"],
        softwareVersion=FIELDS["software_version"],
        protocolsSupported=FIELDS["protocols_supported"],
        hardwareVersion=FIELDS["hardware_version"],
        location=FIELDS["location"],
        requestorCanConsent=FIELDS["requestor_can_consent"],
        metadataForProvider=FIELDS["metadata_for_provider"],
    )

    def chip_encode() -> bytes:
        writer = chip_tlv.TLVWriter()
        writer.put(None, chip_value)
        return bytes(writer.encoding)

    # Same message, same bytes, on all four paths: the comparison is like for like.
    assert chip_encode() == data == ours.encode() == bytes(chip_object.ToTLV())
    assert QueryImage.decode(data) == ours and chip_class.FromTLV(data) == chip_object
    assert (
        tlv.decode(data)
        == value
        == {k: v for k, v in chip_tlv.TLVReader(data).get()["Any"].items()}
    )

    def our_codec() -> None:
        tlv.decode(tlv.encode(value))

    def chip_codec() -> None:
        chip_tlv.TLVReader(chip_encode()).get()

    def our_schema() -> None:
        QueryImage.decode(ours.encode())

    def chip_schema() -> None:
        chip_class.FromTLV(chip_object.ToTLV())

    rows = [
        ("codec", "chip.tlv TLVWriter+TLVReader (baseline)", _rate(chip_codec, args.seconds)),
        ("codec", "matter_ota.tlv encode+decode", _rate(our_codec, args.seconds)),
        (
            "schema",
            "chip.clusters QueryImage ToTLV+FromTLV (baseline)",
            _rate(chip_schema, args.seconds),
        ),
        ("schema", "matter_ota.tlv.Struct encode+decode", _rate(our_schema, args.seconds)),
    ]
    print(f"QueryImage ({len(data)} bytes of TLV) encode+decode, {args.seconds:g} s per row")
    print(f"{'measurement':52} {'ops/s':>9} {'us/op':>7} {'vs chip':>8}")
    baseline = {depth: rate for depth, name, rate in rows if "baseline" in name}
    for depth, name, rate in rows:
        print(f"{name:52} {rate:9.0f} {1e6 / rate:7.1f} {rate / baseline[depth]:8.2f}")
    return 0
