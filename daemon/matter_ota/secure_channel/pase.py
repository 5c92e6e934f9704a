"""PASE, passcode-authenticated session establishment (Matter Core spec 4.14.1), sans-IO.

Both roles are state machines driven by table: ``(state, opcode) -> (handler, next state)``.
A message the table does not list for the current state raises :class:`UnexpectedMessage` and
leaves the state unchanged (the node drops it; a duplicate is handled by MRP before this). Any
other failure raises :class:`PaseError`, a :class:`StatusError` carrying the StatusReport the
node sends (general FAILURE, secure channel INVALID_PARAMETER, as connectedhomeip does) and moves
the handshake to FAILED.

    initiator                                   responder
    PBKDFParamRequest  ───────────────────────▶  (WAIT_PBKDF_REQUEST)
    (WAIT_PBKDF_RESPONSE) ◀──────────────────── PBKDFParamResponse
    Pake1 (X)          ───────────────────────▶  (WAIT_PAKE1)
    (WAIT_PAKE2)       ◀──────────────────────── Pake2 (Y, cB)
    Pake3 (cA)         ───────────────────────▶  (WAIT_PAKE3)
    (WAIT_STATUS)      ◀──────────────────────── StatusReport SUCCESS

Context for SPAKE2+ is SHA-256("CHIP PAKE V1 Commissioning" || request || response) over the
two PBKDF payloads as sent. Session keys: HKDF(Ke, salt="", info="SessionKeys") (4.14.1.3).

:class:`PaseServer` is the device side of a commissioning window: one handshake at a time
(others get BUSY), and after ``max_failures`` failed attempts it refuses PASE until re-armed
(spec 13.3: a node exits commissioning mode after 20 failed attempts).
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

from matter_ota import tlv
from matter_ota.crypto import spake2p
from matter_ota.messaging.crypto import SessionKeys, derive_session_keys
from matter_ota.messaging.session import DEFAULT_PARAMETERS, SessionParameters
from matter_ota.messaging.status import GeneralCode, Protocol, SecureChannelCode, StatusReport
from matter_ota.messaging.status import SecureChannelOpcode as Op
from matter_ota.secure_channel import common
from matter_ota.secure_channel.common import (
    HandshakeError,
    Random,
    Send,
    decode_message,
    success_report,
)
from matter_ota.secure_channel.pase_messages import (
    DEFAULT_PASSCODE_ID,
    RANDOM_LEN,
    Pake1,
    Pake2,
    Pake3,
    PBKDFParameters,
    PBKDFParamRequest,
    PBKDFParamResponse,
)
from matter_ota.secure_channel.session_params import SessionParametersTLV, peer_parameters

#: connectedhomeip's default: a node leaves commissioning mode after 20 failures (spec 13.3).
DEFAULT_MAX_FAILURES = 20
#: How long an unfinished handshake holds the window before another initiator may start.
DEFAULT_HANDSHAKE_TIMEOUT = 60.0
#: 4.11.1.4 BUSY: the minimum wait (ms) we ask a second commissioner to observe.
BUSY_WAIT_MS = 5000


class PaseError(HandshakeError):
    """A failed PASE step; ``report`` is the StatusReport to send to the peer."""


class UnexpectedMessage(PaseError, common.UnexpectedMessage):
    """A message the current state does not accept; the state is unchanged."""


class PeerReportedFailure(PaseError, common.PeerReportedFailure):
    """The peer ended the handshake with a failure StatusReport (nothing to send back)."""


class State(enum.Enum):
    """Where a PASE handshake is; each role uses some of them."""
    WAIT_PBKDF_REQUEST = "wait-pbkdf-request"
    START = "start"
    WAIT_PBKDF_RESPONSE = "wait-pbkdf-response"
    WAIT_PAKE1 = "wait-pake1"
    WAIT_PAKE2 = "wait-pake2"
    WAIT_PAKE3 = "wait-pake3"
    WAIT_STATUS = "wait-status"
    ESTABLISHED = "established"
    FAILED = "failed"


@dataclass(frozen=True)
class PaseResult:
    """An established PASE session, ready for the session table."""

    local_session_id: int
    peer_session_id: int
    keys: SessionKeys
    is_initiator: bool
    peer_params: SessionParameters


_T = TypeVar("_T", bound=tlv.Struct)


def _decode(schema: type[_T], payload: bytes) -> _T:
    return decode_message(schema, payload, PaseError)


class _Handshake:
    """State and table dispatch shared by both roles."""

    _TABLE: dict[tuple[State, int], tuple[str, State]] = {}

    def __init__(self, state: State, local_session_id: int) -> None:
        if not 1 <= local_session_id <= 0xFFFF:
            raise ValueError("local session id must be 1..65535")
        self.state = state
        self.local_session_id = local_session_id
        self.result: PaseResult | None = None

    def receive(self, opcode: int, payload: bytes) -> list[Send]:
        """Feed one message of the handshake's exchange; returns what to send back.

        StatusReports go through :meth:`receive_status` once the message layer decoded them.
        """
        entry = self._TABLE.get((self.state, opcode))
        if entry is None:
            raise UnexpectedMessage(
                f"opcode 0x{opcode:02x} not expected in state {self.state.value}")
        method, next_state = entry
        try:
            out: list[Send] = getattr(self, method)(payload)
        except PaseError:
            self.state = State.FAILED
            raise
        self.state = next_state
        return out

    def fail(self) -> None:
        """Abandon the handshake (timeout, exchange closed)."""
        if self.state is not State.ESTABLISHED:
            self.state = State.FAILED

    @property
    def done(self) -> bool:
        return self.state in (State.ESTABLISHED, State.FAILED)


class PaseResponder(_Handshake):
    """The commissionee's side of one PASE handshake."""

    def __init__(self, verifier: spake2p.PaseVerifier, salt: bytes, iterations: int,
                 local_session_id: int, *,
                 local_params: SessionParameters = DEFAULT_PARAMETERS,
                 random: Random = secrets.token_bytes) -> None:
        spake2p.check_pbkdf_parameters(salt, iterations)
        super().__init__(State.WAIT_PBKDF_REQUEST, local_session_id)
        self._verifier = verifier
        self._pbkdf = PBKDFParameters(iterations=iterations, salt=salt)
        self._local_params = local_params
        self._random = random
        self._request = b""
        self._peer_session_id = 0
        self._peer_params = DEFAULT_PARAMETERS
        self._spake: spake2p.Verifier | None = None

    _TABLE = {
        (State.WAIT_PBKDF_REQUEST, Op.PBKDF_PARAM_REQUEST): ("_on_request", State.WAIT_PAKE1),
        (State.WAIT_PAKE1, Op.PASE_PAKE1): ("_on_pake1", State.WAIT_PAKE3),
        (State.WAIT_PAKE3, Op.PASE_PAKE3): ("_on_pake3", State.ESTABLISHED),
    }

    @property
    def peer_params(self) -> SessionParameters:
        """The initiator's MRP parameters, once its PBKDFParamRequest arrived."""
        return self._peer_params

    def _on_request(self, payload: bytes) -> list[Send]:
        req = _decode(PBKDFParamRequest, payload)
        if req.passcode_id != DEFAULT_PASSCODE_ID:
            raise PaseError(f"unknown passcode id {req.passcode_id}")
        self._peer_session_id = req.initiator_session_id
        self._peer_params = peer_parameters(req.initiator_session_params)
        resp = PBKDFParamResponse(
            initiator_random=req.initiator_random,
            responder_random=self._random(RANDOM_LEN),
            responder_session_id=self.local_session_id,
            pbkdf_parameters=None if req.has_pbkdf_parameters else self._pbkdf,
            responder_session_params=SessionParametersTLV.local(self._local_params),
        ).encode()
        context = spake2p.pake_context(payload, resp)
        self._spake = spake2p.Verifier(context, self._verifier.w0, self._verifier.L)
        return [Send(Op.PBKDF_PARAM_RESPONSE, resp)]

    def _on_pake1(self, payload: bytes) -> list[Send]:
        assert self._spake is not None
        pake1 = _decode(Pake1, payload)
        try:
            cb = self._spake.respond(pake1.pA)
        except spake2p.Spake2pError as e:
            raise PaseError(f"bad pA: {e}") from None
        return [Send(Op.PASE_PAKE2, Pake2(pB=self._spake.share, cB=cb).encode())]

    def _on_pake3(self, payload: bytes) -> list[Send]:
        assert self._spake is not None
        pake3 = _decode(Pake3, payload)
        try:
            ke = self._spake.verify(pake3.cA)
        except spake2p.Spake2pError as e:
            raise PaseError(f"{e} (wrong passcode?)") from None
        self.result = PaseResult(
            local_session_id=self.local_session_id, peer_session_id=self._peer_session_id,
            keys=derive_session_keys(ke, b""), is_initiator=False,
            peer_params=self._peer_params)
        return [Send(Op.STATUS_REPORT, success_report().encode())]

    def receive_status(self, report: StatusReport) -> None:
        """A StatusReport from the initiator: always the end of this handshake."""
        if self.done:
            raise UnexpectedMessage(f"status report in state {self.state.value}")
        self.state = State.FAILED
        raise PeerReportedFailure(report)


class PaseInitiator(_Handshake):
    """The commissioner's side: knows the passcode, learns the PBKDF parameters."""

    def __init__(self, passcode: int, local_session_id: int, *,
                 pbkdf: PBKDFParameters | None = None,
                 local_params: SessionParameters | None = DEFAULT_PARAMETERS,
                 random: Random = secrets.token_bytes) -> None:
        super().__init__(State.START, local_session_id)
        self._passcode = passcode
        self._pbkdf = pbkdf
        self._local_params = local_params
        self._random = random
        self._request = b""
        self._prover: spake2p.Prover | None = None
        self._ke = b""
        self._peer_session_id = 0
        self._peer_params = DEFAULT_PARAMETERS

    _TABLE = {
        (State.WAIT_PBKDF_RESPONSE, Op.PBKDF_PARAM_RESPONSE):
            ("_on_response", State.WAIT_PAKE2),
        (State.WAIT_PAKE2, Op.PASE_PAKE2): ("_on_pake2", State.WAIT_STATUS),
    }

    def start(self) -> Send:
        """The PBKDFParamRequest that opens the handshake."""
        if self.state is not State.START:
            raise UnexpectedMessage("handshake already started")
        params = self._local_params
        self._request = PBKDFParamRequest(
            initiator_random=self._random(RANDOM_LEN),
            initiator_session_id=self.local_session_id,
            passcode_id=DEFAULT_PASSCODE_ID,
            has_pbkdf_parameters=self._pbkdf is not None,
            initiator_session_params=(SessionParametersTLV.local(params)
                                      if params is not None else None),
        ).encode()
        self.state = State.WAIT_PBKDF_RESPONSE
        return Send(Op.PBKDF_PARAM_REQUEST, self._request)

    def _on_response(self, payload: bytes) -> list[Send]:
        resp = _decode(PBKDFParamResponse, payload)
        req = PBKDFParamRequest.decode(self._request)
        if resp.initiator_random != req.initiator_random:
            raise PaseError("PBKDFParamResponse echoes another initiatorRandom")
        pbkdf = self._pbkdf if self._pbkdf is not None else resp.pbkdf_parameters
        if pbkdf is None:
            raise PaseError("PBKDFParamResponse lacks the PBKDF parameters")
        try:
            w0, w1 = spake2p.compute_w0_w1(self._passcode, pbkdf.salt, pbkdf.iterations)
        except spake2p.Spake2pError as e:
            raise PaseError(str(e)) from None
        self._peer_session_id = resp.responder_session_id
        self._peer_params = peer_parameters(resp.responder_session_params)
        context = spake2p.pake_context(self._request, payload)
        self._prover = spake2p.Prover(context, w0, w1)
        return [Send(Op.PASE_PAKE1, Pake1(pA=self._prover.share).encode())]

    def _on_pake2(self, payload: bytes) -> list[Send]:
        assert self._prover is not None
        pake2 = _decode(Pake2, payload)
        try:
            ca = self._prover.finish(pake2.pB)
            ke = self._prover.verify(pake2.cB)
        except spake2p.Spake2pError as e:
            raise PaseError(f"{e} (wrong passcode?)") from None
        self._ke = ke
        return [Send(Op.PASE_PAKE3, Pake3(cA=ca).encode())]

    def receive_status(self, report: StatusReport) -> PaseResult:
        """The responder's verdict; on success the session is established."""
        if self.state is not State.WAIT_STATUS or not report.is_success:
            if self.done:
                raise UnexpectedMessage(f"status report in state {self.state.value}")
            self.state = State.FAILED
            raise PeerReportedFailure(report)
        if (report.protocol_id != Protocol.SECURE_CHANNEL
                or report.protocol_code != SecureChannelCode.SESSION_ESTABLISHMENT_SUCCESS):
            self.state = State.FAILED
            raise PaseError(f"unexpected success report {report.describe()}")
        self.result = PaseResult(
            local_session_id=self.local_session_id, peer_session_id=self._peer_session_id,
            keys=derive_session_keys(self._ke, b""), is_initiator=True,
            peer_params=self._peer_params)
        self.state = State.ESTABLISHED
        return self.result


@dataclass
class _Active:
    exchange: Hashable
    handshake: PaseResponder
    started: float
    passcode_tried: bool = False  # Pake2 went out: the initiator could test a passcode guess


@dataclass
class PaseServer:
    """The device side of a commissioning window: verifier, attempt limit, one handshake.

    ``allocate_id`` / ``release_id`` reserve local session ids (the session table's).
    Failures are counted when a handshake ends badly after Pake2 went out (the point from
    which the initiator can test a passcode guess, on or off line); at ``max_failures`` the
    window closes and every PBKDFParamRequest is refused until :meth:`open_window`. Handshakes
    that fail earlier (a malformed PBKDFParamRequest or Pake1, an initiator that goes away)
    guess nothing and are not counted: otherwise 20 garbage datagrams would close the window.
    """

    verifier: spake2p.PaseVerifier
    salt: bytes
    iterations: int
    allocate_id: Callable[[], int]
    release_id: Callable[[int], None]
    local_params: SessionParameters = DEFAULT_PARAMETERS
    max_failures: int = DEFAULT_MAX_FAILURES
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    random: Random = secrets.token_bytes
    failures: int = 0
    window_open: bool = True
    _active: _Active | None = field(default=None, repr=False)

    def open_window(self) -> None:
        """(Re-)arm PASE: forget past failures."""
        self.failures = 0
        self.window_open = True

    def close_window(self) -> None:
        """Refuse PASE from now on (e.g. once commissioned)."""
        self.window_open = False
        self._abandon()

    def receive(self, exchange: Hashable, opcode: int, payload: bytes,
                now: float) -> tuple[list[Send], PaseResult | None]:
        """One PASE message from ``exchange``: what to send, and the session if established."""
        active = self._active
        if active is not None and now - active.started > self.handshake_timeout:
            self._finish(active, failed=True)
            active = None
        if opcode == Op.PBKDF_PARAM_REQUEST and (active is None or active.exchange != exchange):
            if not self.window_open:
                raise PaseError("commissioning window closed"
                                + (f" after {self.failures} failed attempts"
                                   if self.failures >= self.max_failures else ""))
            if active is not None:
                raise PaseError("another PASE handshake is in progress",
                                SecureChannelCode.BUSY, GeneralCode.BUSY,
                                BUSY_WAIT_MS.to_bytes(2, "little"))
            active = self._active = _Active(exchange, PaseResponder(
                self.verifier, self.salt, self.iterations, self.allocate_id(),
                local_params=self.local_params, random=self.random), now)
        if active is None or active.exchange != exchange:
            raise UnexpectedMessage(f"opcode 0x{opcode:02x} outside a PASE handshake")
        try:
            out = active.handshake.receive(opcode, payload)
        except UnexpectedMessage:
            raise  # dropped; the handshake goes on
        except PaseError:
            self._finish(active, failed=True)
            raise
        if active.handshake.state is State.WAIT_PAKE3:
            active.passcode_tried = True
        result = active.handshake.result
        if result is not None:
            self._finish(active, failed=False)
        return out, result

    def peer_params(self, exchange: Hashable) -> SessionParameters | None:
        """The MRP parameters the initiator on ``exchange`` announced, if it is the active one."""
        active = self._active
        return active.handshake.peer_params if active and active.exchange == exchange else None

    def receive_status(self, exchange: Hashable, report: StatusReport) -> None:
        """A StatusReport on the handshake's exchange: the initiator gave up."""
        active = self._active
        if active is None or active.exchange != exchange:
            raise UnexpectedMessage("status report outside a PASE handshake")
        try:
            active.handshake.receive_status(report)
        finally:
            self._finish(active, failed=True)

    def exchange_closed(self, exchange: Hashable) -> None:
        """The exchange timed out or closed before the handshake finished."""
        active = self._active
        if active is not None and active.exchange == exchange:
            self._finish(active, failed=True)

    def _abandon(self) -> None:
        if self._active is not None:
            self._finish(self._active, failed=False)

    def _finish(self, active: _Active, *, failed: bool) -> None:
        self._active = None
        active.handshake.fail()
        if failed:
            self.release_id(active.handshake.local_session_id)
            self.failures += active.passcode_tried
            if self.failures >= self.max_failures:
                self.window_open = False
        elif active.handshake.result is None:
            self.release_id(active.handshake.local_session_id)
