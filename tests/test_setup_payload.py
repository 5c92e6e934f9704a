"""Onboarding payloads (spec 5.1.3 QR, 5.1.4 manual code) against connectedhomeip's vectors.

Vectors from connectedhomeip ``src/setup_payload/tests`` (TestManualCode.cpp, TestHelpers.h,
TestQRCode.cpp) and the SDK examples' default commissioning data (passcode 20202021,
discriminator 3840, VID 0xFFF1, PID 0x8001: ``MT:-24J0AFN00KA0648G00`` / ``34970112332``).
``tests/interop/test_mdns.py`` also has the SDK's own parser and generator check our codes.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matter_ota.setup_payload import (
    BASE38_ALPHABET,
    INVALID_PASSCODES,
    Capability,
    CommissioningFlow,
    ManualCode,
    SetupPayload,
    SetupPayloadError,
    base38_decode,
    base38_encode,
    format_manual_code,
    parse_manual_code,
    parse_qr_code,
    verhoeff_check_digit,
    verhoeff_valid,
)


def test_sdk_example_device_codes() -> None:
    payload = SetupPayload(20202021, 3840, 0xFFF1, 0x8001)
    assert payload.qr_code() == "MT:-24J0AFN00KA0648G00"
    assert payload.manual_code() == "34970112332"
    assert format_manual_code(payload.manual_code()) == "3497-011-2332"


def test_sdk_default_qr_payload() -> None:
    # TestHelpers.h GetDefaultPayload(): vid 12, pid 1, SoftAP, discriminator 128, pin 2048.
    payload = SetupPayload(2048, 128, 12, 1, capabilities=Capability.SOFT_AP)
    assert payload.qr_code() == "MT:M5L90MP500K64J00000"
    assert parse_qr_code("MT:M5L90MP500K64J00000") == payload


@pytest.mark.parametrize(
    ("passcode", "discriminator", "flow", "vid", "pid", "digits"),
    [
        # TestManualCode.cpp (expected strings before their Verhoeff digit)
        (123456780, 2560, CommissioningFlow.STANDARD, 0, 0, "2361087535"),
        (123456780, 2560, CommissioningFlow.CUSTOM, 0, 0, "63610875350000000000"),
        (123456780, 2560, CommissioningFlow.CUSTOM, 1, 1, "63610875350000100001"),
        (123456780, 2560, CommissioningFlow.CUSTOM, 45367, 14526, "63610875354536714526"),
        (123456780, 2560, CommissioningFlow.STANDARD, 45367, 14526, "2361087535"),
    ],
)
def test_manual_code_layout_matches_sdk_vectors(passcode: int, discriminator: int,
                                                flow: CommissioningFlow, vid: int, pid: int,
                                                digits: str) -> None:
    # The SDK's vector uses a passcode above today's 99999998 limit: build the digits the
    # same way from the fields, bypassing the range check only.
    payload = object.__new__(SetupPayload)
    for name, value in (("passcode", passcode), ("discriminator", discriminator),
                        ("vendor_id", vid), ("product_id", pid), ("flow", flow),
                        ("capabilities", Capability.ON_NETWORK), ("version", 0)):
        object.__setattr__(payload, name, value)
    assert payload.manual_code() == digits + verhoeff_check_digit(digits)


def test_sdk_manual_parse_vectors() -> None:
    # TestPayloadParser_FullPayload / _PartialPayload
    code = "52927623630456200032"
    assert parse_manual_code(code + verhoeff_check_digit(code)) == ManualCode(38728284, 5, 4562,
                                                                              32)
    code = "0000010000"
    assert parse_manual_code(code + verhoeff_check_digit(code)) == ManualCode(1, 0)


def test_manual_code_rejects_wrong_check_digit_and_lengths() -> None:
    with pytest.raises(SetupPayloadError, match="check digit"):
        parse_manual_code("34970112333")
    for bad in ("", "2456", "349701123321", "12749875380" + "0", "3497O112332"):
        with pytest.raises(SetupPayloadError):
            parse_manual_code(bad)
    # no passcode (= 0), SDK "2327680000"
    with pytest.raises(SetupPayloadError):
        parse_manual_code("2327680000" + verhoeff_check_digit("2327680000"))


def test_verhoeff_known_values() -> None:
    # The classic Verhoeff example: 236 -> check digit 3.
    assert verhoeff_check_digit("236") == "3"
    assert verhoeff_valid("2363")
    assert not verhoeff_valid("2364")


def test_base38_chunks() -> None:
    assert base38_encode(b"") == ""
    assert base38_encode(b"\x00") == "00"
    # 65535 = 23 + 14*38 + 7*38^2 + 1*38^3, least significant digit first: N E 7 1
    assert base38_encode(b"\xff\xff") == "NE71"
    assert base38_decode("NE71") == b"\xff\xff"
    # 16777215 = 25 + 21*38 + 28*38^2 + 1*38^3 + 8*38^4: P L S 1 8
    assert base38_encode(b"\xff\xff\xff") == "PLS18"
    for bad in ("A", "ABC", "abcd", "....."):
        with pytest.raises(SetupPayloadError):
            base38_decode(bad)


@pytest.mark.parametrize("passcode", sorted(INVALID_PASSCODES | {99_999_999, 100_000_000}))
def test_invalid_passcodes_refused(passcode: int) -> None:
    with pytest.raises(SetupPayloadError):
        SetupPayload(passcode, 3840)


def test_vendor_and_product_constraints() -> None:
    with pytest.raises(SetupPayloadError, match="reserved"):
        SetupPayload(20202021, 3840, 0xFFFF, 1)
    with pytest.raises(SetupPayloadError, match="product id 0"):
        SetupPayload(20202021, 3840, 0xFFF1, 0)
    SetupPayload(20202021, 3840, 0, 0)  # neither given: allowed
    with pytest.raises(SetupPayloadError):
        SetupPayload(20202021, 0x1000)


payloads = st.builds(
    SetupPayload,
    passcode=st.integers(1, 99_999_998).filter(lambda p: p not in INVALID_PASSCODES),
    discriminator=st.integers(0, 0xFFF),
    vendor_id=st.integers(1, 0xFFF4),
    product_id=st.integers(1, 0xFFFF),
    flow=st.sampled_from(list(CommissioningFlow)),
    capabilities=st.sampled_from([Capability(c) for c in range(8)]),
)


@given(payloads)
def test_round_trips(payload: SetupPayload) -> None:
    assert parse_qr_code(payload.qr_code()) == payload
    manual = parse_manual_code(payload.manual_code())
    assert manual.passcode == payload.passcode
    assert manual.short_discriminator == payload.short_discriminator
    if payload.flow == CommissioningFlow.STANDARD:
        assert len(payload.manual_code()) == 11 and manual.vendor_id is None
    else:
        assert (manual.vendor_id, manual.product_id) == (payload.vendor_id, payload.product_id)


@given(st.one_of(st.text(max_size=40), st.text(alphabet=BASE38_ALPHABET, max_size=25),
                 st.text(alphabet="0123456789- ", min_size=9, max_size=24)))
def test_parsers_raise_only_their_error(text: str) -> None:
    """Any input: a payload, or SetupPayloadError; nothing else escapes."""
    for parse in (parse_qr_code, parse_manual_code, lambda t: parse_qr_code("MT:" + t)):
        with contextlib.suppress(SetupPayloadError):
            parse(text)


@given(st.binary(max_size=30))
def test_base38_round_trip(data: bytes) -> None:
    assert base38_decode(base38_encode(data)) == data
