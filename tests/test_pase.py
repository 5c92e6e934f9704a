"""PASE state machines paired in memory: our initiator against our responder."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matter_ota.crypto.spake2p import PaseVerifier
from matter_ota.messaging.crypto import derive_session_keys
from matter_ota.messaging.status import (
    GeneralCode,
    Protocol,
    SecureChannelCode,
    StatusReport,
)
from matter_ota.messaging.status import SecureChannelOpcode as Op
from matter_ota.secure_channel.common import Send
from matter_ota.secure_channel.pase import (
    PaseError,
    PaseInitiator,
    PaseResponder,
    PaseResult,
    PaseServer,
    PeerReportedFailure,
    State,
    UnexpectedMessage,
)
from matter_ota.secure_channel.pase_messages import (
    PBKDFParameters,
    PBKDFParamRequest,
    PBKDFParamResponse,
)

SALT = b"SPAKE2P Key Salt"
ITERATIONS = 1000
PASSCODE = 20202021
VERIFIER = PaseVerifier.from_passcode(PASSCODE, SALT, ITERATIONS)


def run(initiator: PaseInitiator, responder: PaseResponder) -> tuple[PaseResult, PaseResult]:
    msg = initiator.start()
    (msg,) = responder.receive(msg.opcode, msg.payload)  # PBKDFParamResponse
    (msg,) = initiator.receive(msg.opcode, msg.payload)  # Pake1
    (msg,) = responder.receive(msg.opcode, msg.payload)  # Pake2
    (msg,) = initiator.receive(msg.opcode, msg.payload)  # Pake3
    (msg,) = responder.receive(msg.opcode, msg.payload)  # StatusReport
    assert msg.opcode == Op.STATUS_REPORT
    i_result = initiator.receive_status(StatusReport.decode(msg.payload))
    assert responder.result is not None
    return i_result, responder.result


def test_handshake_establishes_matching_keys() -> None:
    initiator = PaseInitiator(PASSCODE, 0x1111)
    responder = PaseResponder(VERIFIER, SALT, ITERATIONS, 0x2222)
    i, r = run(initiator, responder)
    assert i.keys == r.keys
    assert (i.local_session_id, i.peer_session_id) == (0x1111, 0x2222)
    assert (r.local_session_id, r.peer_session_id) == (0x2222, 0x1111)
    assert i.is_initiator and not r.is_initiator
    assert len(i.keys.attestation_challenge) == 16
    assert initiator.state is responder.state is State.ESTABLISHED


def test_initiator_with_known_pbkdf_parameters() -> None:
    initiator = PaseInitiator(PASSCODE, 7, pbkdf=PBKDFParameters(iterations=ITERATIONS,
                                                                 salt=SALT))
    responder = PaseResponder(VERIFIER, SALT, ITERATIONS, 9)
    req = initiator.start()
    assert PBKDFParamRequest.decode(req.payload).has_pbkdf_parameters
    (resp,) = responder.receive(req.opcode, req.payload)
    assert PBKDFParamResponse.decode(resp.payload).pbkdf_parameters is None
    (pake1,) = initiator.receive(resp.opcode, resp.payload)
    (pake2,) = responder.receive(pake1.opcode, pake1.payload)
    (pake3,) = initiator.receive(pake2.opcode, pake2.payload)
    (status,) = responder.receive(pake3.opcode, pake3.payload)
    assert initiator.receive_status(StatusReport.decode(status.payload)).keys == (
        responder.result.keys if responder.result else None)


def test_response_carries_pbkdf_and_mrp_parameters() -> None:
    responder = PaseResponder(VERIFIER, SALT, ITERATIONS, 9)
    req = PaseInitiator(PASSCODE, 7).start()
    (resp,) = responder.receive(req.opcode, req.payload)
    decoded = PBKDFParamResponse.decode(resp.payload)
    assert decoded.pbkdf_parameters == PBKDFParameters(iterations=ITERATIONS, salt=SALT)
    assert decoded.responder_session_id == 9
    assert decoded.responder_session_params is not None
    assert decoded.responder_session_params.idle_interval_ms == 500


def test_wrong_passcode_is_caught_by_initiator() -> None:
    initiator = PaseInitiator(PASSCODE + 1, 1)
    responder = PaseResponder(VERIFIER, SALT, ITERATIONS, 2)
    msg = initiator.start()
    (msg,) = responder.receive(msg.opcode, msg.payload)
    (msg,) = initiator.receive(msg.opcode, msg.payload)
    (msg,) = responder.receive(msg.opcode, msg.payload)
    with pytest.raises(PaseError) as info:
        initiator.receive(msg.opcode, msg.payload)
    report = info.value.report
    assert report.general_code == GeneralCode.FAILURE
    assert report.protocol_id == Protocol.SECURE_CHANNEL
    assert report.protocol_code == SecureChannelCode.INVALID_PARAMETER
    assert initiator.state is State.FAILED
    # The responder hears the initiator's StatusReport and fails too.
    with pytest.raises(PeerReportedFailure):
        responder.receive_status(report)
    assert responder.state is State.FAILED


def test_wrong_ca_is_caught_by_responder() -> None:
    """A prover that ignores cB and sends a bad cA gets INVALID_PARAMETER."""
    initiator = PaseInitiator(PASSCODE, 1)
    responder = PaseResponder(VERIFIER, SALT, ITERATIONS, 2)
    msg = initiator.start()
    (msg,) = responder.receive(msg.opcode, msg.payload)
    (msg,) = initiator.receive(msg.opcode, msg.payload)
    responder.receive(msg.opcode, msg.payload)
    with pytest.raises(PaseError) as info:
        responder.receive(Op.PASE_PAKE3, bytes.fromhex("1530 0120") + b"\x00" * 32 + b"\x18")
    assert info.value.report.protocol_code == SecureChannelCode.INVALID_PARAMETER
    assert responder.state is State.FAILED
    assert responder.result is None


def test_illegal_messages_leave_state_unchanged() -> None:
    responder = PaseResponder(VERIFIER, SALT, ITERATIONS, 2)
    initiator = PaseInitiator(PASSCODE, 1)
    for opcode in (Op.PASE_PAKE1, Op.PASE_PAKE3, Op.PBKDF_PARAM_RESPONSE, Op.PASE_PAKE2):
        with pytest.raises(UnexpectedMessage):
            responder.receive(opcode, b"\x15\x18")
        assert responder.state is State.WAIT_PBKDF_REQUEST
    req = initiator.start()
    with pytest.raises(UnexpectedMessage):
        initiator.start()
    responder.receive(req.opcode, req.payload)
    with pytest.raises(UnexpectedMessage):
        responder.receive(req.opcode, req.payload)  # a second request on the same handshake
    assert responder.state is State.WAIT_PAKE1
    with pytest.raises(UnexpectedMessage):
        initiator.receive(Op.PASE_PAKE2, b"\x15\x18")
    assert initiator.state is State.WAIT_PBKDF_RESPONSE


def test_passcode_id_must_be_zero() -> None:
    responder = PaseResponder(VERIFIER, SALT, ITERATIONS, 2)
    req = PBKDFParamRequest(initiator_random=b"r" * 32, initiator_session_id=1, passcode_id=1,
                            has_pbkdf_parameters=False).encode()
    with pytest.raises(PaseError):
        responder.receive(Op.PBKDF_PARAM_REQUEST, req)
    assert responder.state is State.FAILED


def test_initiator_rejects_foreign_random_echo() -> None:
    initiator = PaseInitiator(PASSCODE, 1)
    initiator.start()
    resp = PBKDFParamResponse(initiator_random=b"x" * 32, responder_random=b"y" * 32,
                              responder_session_id=3,
                              pbkdf_parameters=PBKDFParameters(iterations=1000, salt=SALT))
    with pytest.raises(PaseError):
        initiator.receive(Op.PBKDF_PARAM_RESPONSE, resp.encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([Op.PBKDF_PARAM_REQUEST]))
def test_responder_random_request_raises_only_pase_error(data: bytes, opcode: int) -> None:
    responder = PaseResponder(VERIFIER, SALT, ITERATIONS, 2)
    try:
        responder.receive(opcode, data)
    except PaseError:
        assert responder.state is State.FAILED


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=120))
def test_responder_random_pake1_raises_only_pase_error(data: bytes) -> None:
    responder = PaseResponder(VERIFIER, SALT, ITERATIONS, 2)
    req = PaseInitiator(PASSCODE, 1).start()
    responder.receive(req.opcode, req.payload)
    try:
        responder.receive(Op.PASE_PAKE1, data)
    except PaseError:
        assert responder.state is State.FAILED


class Ids:
    def __init__(self) -> None:
        self.next = itertools.count(100)
        self.reserved: set[int] = set()

    def allocate(self) -> int:
        n = next(self.next)
        self.reserved.add(n)
        return n

    def release(self, n: int) -> None:
        self.reserved.remove(n)


def server(max_failures: int = 20, handshake_timeout: float = 60.0) -> tuple[PaseServer, Ids]:
    ids = Ids()
    srv = PaseServer(VERIFIER, SALT, ITERATIONS, ids.allocate, ids.release,
                     max_failures=max_failures, handshake_timeout=handshake_timeout)
    return srv, ids


def drive(srv: PaseServer, exchange: object, passcode: int, now: float = 0.0
          ) -> PaseResult | PaseError:
    initiator = PaseInitiator(passcode, 1)
    msg: Send = initiator.start()
    try:
        while True:
            out, result = srv.receive(exchange, msg.opcode, msg.payload, now)
            if result is not None:
                initiator.receive_status(StatusReport.decode(out[0].payload))
                return result
            try:
                (msg,) = initiator.receive(out[0].opcode, out[0].payload)
            except PaseError as e:
                srv.receive_status(exchange, e.report)
    except PaseError as e:
        return e


def test_server_establishes_and_keeps_session_id() -> None:
    srv, ids = server()
    result = drive(srv, "ex1", PASSCODE)
    assert isinstance(result, PaseResult)
    assert result.local_session_id in ids.reserved  # handed to the session table
    assert srv.failures == 0


def test_server_counts_failures_and_closes_window() -> None:
    srv, ids = server(max_failures=3)
    for n in range(3):
        outcome = drive(srv, f"ex{n}", PASSCODE + 1)
        assert isinstance(outcome, PeerReportedFailure)
    assert srv.failures == 3 and not srv.window_open
    assert not ids.reserved  # every failed handshake gave its id back
    refused = drive(srv, "ex9", PASSCODE)
    assert isinstance(refused, PaseError)
    assert "window closed" in str(refused)
    srv.open_window()
    assert isinstance(drive(srv, "ex10", PASSCODE), PaseResult)


def test_server_busy_while_a_handshake_runs_then_times_out() -> None:
    srv, _ = server(handshake_timeout=60.0)
    first = PaseInitiator(PASSCODE, 1).start()
    srv.receive("a", first.opcode, first.payload, now=0.0)
    second = PaseInitiator(PASSCODE, 2).start()
    with pytest.raises(PaseError) as info:
        srv.receive("b", second.opcode, second.payload, now=10.0)
    report = info.value.report
    assert report.general_code == GeneralCode.BUSY
    assert report.protocol_code == SecureChannelCode.BUSY
    assert int.from_bytes(report.data, "little") > 0
    assert srv.failures == 0
    # After the timeout the stale handshake is dropped and "b" may start. It never reached
    # Pake2 (no passcode was tried), so it does not count towards the window's limit.
    out, _ = srv.receive("b", second.opcode, second.payload, now=61.0)
    assert out[0].opcode == Op.PBKDF_PARAM_RESPONSE
    assert srv.failures == 0


def test_only_handshakes_that_tried_a_passcode_count_as_failures() -> None:
    """Garbage PBKFParamRequests and Pake1s (nothing learnt about the passcode) never close the
    window; abandoning a handshake after Pake2 does count (an off-line guess was possible)."""
    srv, ids = server(max_failures=3)
    for n in range(10):
        with pytest.raises(PaseError):
            srv.receive(f"junk{n}", Op.PBKDF_PARAM_REQUEST, b"\x15\x18", now=0.0)
    first = PaseInitiator(PASSCODE + 1, 1)
    srv.receive("p", Op.PBKDF_PARAM_REQUEST, first.start().payload, now=0.0)
    with pytest.raises(PaseError):
        srv.receive("p", Op.PASE_PAKE1, b"\x15\x18", now=0.0)  # malformed Pake1
    assert srv.failures == 0 and srv.window_open and not ids.reserved
    for n in range(3):  # three handshakes that stop after Pake2
        guess = PaseInitiator(PASSCODE + 1, 1)
        (resp,), _ = srv.receive(f"g{n}", Op.PBKDF_PARAM_REQUEST, guess.start().payload, 0.0)
        (pake1,) = guess.receive(resp.opcode, resp.payload)
        srv.receive(f"g{n}", pake1.opcode, pake1.payload, 0.0)
        srv.exchange_closed(f"g{n}")
    assert srv.failures == 3 and not srv.window_open


def test_session_keys_are_hkdf_of_ke() -> None:
    initiator = PaseInitiator(PASSCODE, 1)
    responder = PaseResponder(VERIFIER, SALT, ITERATIONS, 2)
    i, _ = run(initiator, responder)
    assert initiator._prover is not None and initiator._prover.keys is not None
    assert i.keys == derive_session_keys(initiator._prover.keys.ke, b"")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=150))
def test_initiator_random_input_raises_only_pase_error(resp: bytes, pake2: bytes) -> None:
    initiator = PaseInitiator(PASSCODE, 1)
    initiator.start()
    try:
        initiator.receive(Op.PBKDF_PARAM_RESPONSE, resp)
        initiator.receive(Op.PASE_PAKE2, pake2)
    except PaseError:
        assert initiator.state in (State.FAILED, State.WAIT_PBKDF_RESPONSE)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0x20, 0x21, 0x22, 0x23, 0x24, 0x40, 0x30]),
                          st.binary(max_size=80), st.sampled_from(["a", "b"])), max_size=8))
def test_server_random_sequences_raise_only_pase_error(
        steps: list[tuple[int, bytes, str]]) -> None:
    srv, ids = server(max_failures=3)
    for opcode, payload, exchange in steps:
        with contextlib.suppress(PaseError):
            srv.receive(exchange, opcode, payload, 0.0)
    assert srv.failures <= 3
    assert len(ids.reserved) <= 1  # at most the id of the handshake still running
