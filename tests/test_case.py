"""CASE (spec 4.14.2): key-derivation vectors, in-memory initiator <-> responder handshakes and
resumption, rejections with the spec's status codes, the resumption store, and CASE on two
nodes driven through the message layer."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msg_pair import CLIENT_ADDR, SERVER_ADDR, deliver, make_node

from matter_ota.crypto import case_keys, certs
from matter_ota.fabrics import CertificateAuthority, FabricInfo, FabricTable
from matter_ota.messaging.session import SessionKind
from matter_ota.messaging.status import GeneralCode, SecureChannelCode, StatusReport
from matter_ota.messaging.status import SecureChannelOpcode as Op
from matter_ota.node import SessionEstablished
from matter_ota.secure_channel import case as case_mod
from matter_ota.secure_channel.case import (
    CaseError,
    CaseInitiator,
    CaseResponder,
    CaseResult,
    PeerReportedFailure,
    State,
    UnexpectedMessage,
)
from matter_ota.secure_channel.case_server import CaseClient, CaseFailed, CaseServer
from matter_ota.secure_channel.resumption import ResumptionRecord, ResumptionStore

NOW = 1_764_000_000
SERVER_NODE, CLIENT_NODE = 0x0000_0000_0000_0055, 0x0000_0000_0000_00AA
H = bytes.fromhex

# ---- vectors -----------------------------------------------------------------------------

SPEC_ROOT_PUB = H(
    "044a9f42b1ca4840d37292bbc7f6a7e11e22200c976fc900dbc98a7a383a641cb8"
    "254a2e56d4e295a847943b4e3897c4a773e930277b4d9fbede8a052686bfacfa"
)


def test_compressed_fabric_id_spec_vector() -> None:
    # spec 4.3.2.2 example, connectedhomeip TestChipCryptoPAL TestCompressedFabricIdentifier
    assert case_keys.compressed_fabric_id(SPEC_ROOT_PUB, 0x2906C908D115D362) == H(
        "87e1b004e235a130"
    )


@pytest.mark.parametrize(
    ("epoch_key", "cfid", "expected"),
    [
        # connectedhomeip TestChipCryptoPAL TestGroup_OperationalKeyDerivation
        (
            "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
            "2906c908d115d362",
            "1f19ed3cef8a211baf306faeeee7aac6",
        ),
        (
            "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf",
            "2906c908d115d362",
            "aa979a48bd8cdf293a0709b9c1eb1930",
        ),
        # spec 4.17.2 example
        (
            "235bf7e62823d358dca4ba50b1535f4b",
            "87e1b004e235a130",
            "a6f5306baf6d050af23ba4bd6b9dd960",
        ),
    ],
)
def test_ipk_operational_group_key_vectors(epoch_key: str, cfid: str, expected: str) -> None:
    assert case_keys.operational_group_key(H(epoch_key), H(cfid)) == H(expected)


@pytest.mark.parametrize(
    ("ipk", "random", "root", "fabric_id", "node_id", "expected"),
    [
        # spec 4.14.2.4 example (connectedhomeip TestCASESession DestinationIdTest, matter.js)
        (
            "9bc61cd9c62a2df6d64dfcaa9dc472d4",
            "7e171231568dfa17206b3accf8faec2f4d21b580113196f47c7c4deb810a73dc",
            SPEC_ROOT_PUB.hex(),
            0x2906C908D115D362,
            0xCD5544AA7B13EF14,
            "dc35dd5fc9134cc5544538c9c3fc4297c1ec3370c839136a80e10796451d4c53",
        ),
        # matter.js FabricTest "destination ID 3"
        (
            "6624ed691e9b53b1f286d98117918c3a",
            "0b2a71876d3d090d37cb5286168ab9be0d2e7e0ccbedc1f55331b8a8051ee02f",
            "04d89eb7e3f3226d0918f4b85832457bb9981bca7aaef58c18fb5ec07525e472b2"
            "bd1617fb75ee41bd388f94ae6a6070efc896777516a5c54aff74ec0804cdde9d",
            0x1,
            0x55,
            "b1ce1a45fd930831203024286cd609ec4f9bbe71ed8e10c2c4cab0be49a87e8a",
        ),
    ],
)
def test_destination_id_vectors(
    ipk: str, random: str, root: str, fabric_id: int, node_id: int, expected: str
) -> None:
    assert case_keys.destination_id(H(ipk), H(random), H(root), fabric_id, node_id) == H(expected)


def test_labels_and_nonces_match_connectedhomeip() -> None:
    # the byte arrays of CASESession.cpp, spelled out
    assert (
        bytes([0x4E, 0x43, 0x41, 0x53, 0x45, 0x5F, 0x53, 0x69, 0x67, 0x6D, 0x61, 0x32, 0x4E])
        == case_keys.TBE2_NONCE
    )
    assert case_keys.RESUME1_NONCE == b"NCASE_SigmaS1" and len(case_keys.RESUME2_NONCE) == 13
    assert (
        bytes([0x53, 0x69, 0x67, 0x6D, 0x61, 0x31, 0x5F, 0x52, 0x65, 0x73, 0x75, 0x6D, 0x65])
        == case_keys.SIGMA1_RESUME_INFO
    )


# ---- in-memory handshakes ----------------------------------------------------------------


@dataclasses.dataclass
class World:
    ca: CertificateAuthority
    server: FabricInfo
    client: FabricInfo
    table: FabricTable
    server_store: ResumptionStore
    client_store: ResumptionStore


def make_world(
    with_icac: bool = True, fabric_id: int = 0xFAB1, client_cats: tuple[int, ...] = ()
) -> World:
    ca = CertificateAuthority(fabric_id=fabric_id, now=NOW, with_icac=with_icac)
    server = ca.issue(SERVER_NODE)
    client = ca.issue(CLIENT_NODE, cats=client_cats)
    return World(ca, server, client, FabricTable([server]), ResumptionStore(), ResumptionStore())


def handshake(
    w: World,
    *,
    client: FabricInfo | None = None,
    peer: int = SERVER_NODE,
    resume: ResumptionRecord | None = None,
    table: FabricTable | None = None,
    cert_time: int = NOW,
) -> tuple[CaseInitiator, CaseResponder, list[int]]:
    """Run a handshake in memory; returns both sides and the opcodes that crossed."""
    i = CaseInitiator(client or w.client, peer, 0x1001, cert_time=cert_time, resumption=resume)
    r = CaseResponder(table or w.table, w.server_store, 0x2002, cert_time=cert_time)
    first = i.start()
    flow = [first.opcode]
    to_responder, to_initiator = [first], []
    while to_responder or to_initiator:
        for m in to_responder:
            if m.opcode == Op.STATUS_REPORT:
                r.receive_status(StatusReport.decode(m.payload))
            else:
                to_initiator += r.receive(m.opcode, m.payload)
            flow += [x.opcode for x in to_initiator]
        to_responder = []
        for m in to_initiator:
            if m.opcode == Op.STATUS_REPORT:
                i.receive_status(StatusReport.decode(m.payload))
            else:
                to_responder += i.receive(m.opcode, m.payload)
            flow += [x.opcode for x in to_responder]
        to_initiator = []
    return i, r, flow


def _results(i: CaseInitiator, r: CaseResponder) -> tuple[CaseResult, CaseResult]:
    assert i.result is not None and r.result is not None
    return i.result, r.result


@pytest.mark.parametrize("with_icac", [True, False])
def test_full_handshake_agrees_on_keys_and_identities(with_icac: bool) -> None:
    w = make_world(with_icac, client_cats=(0x00010002,))
    i, r, flow = handshake(w)
    assert flow == [Op.CASE_SIGMA1, Op.CASE_SIGMA2, Op.CASE_SIGMA3, Op.STATUS_REPORT]
    a, b = _results(i, r)
    assert a.keys == b.keys and not a.resumed
    assert (a.peer_node_id, b.peer_node_id) == (SERVER_NODE, CLIENT_NODE)
    assert (a.peer_session_id, b.peer_session_id) == (0x2002, 0x1001)
    assert b.peer_cats == (0x00010002,) and a.fabric_index == b.fabric_index == 1
    assert a.resumption.resumption_id == b.resumption.resumption_id
    assert w.server_store.get(b.resumption.resumption_id) == b.resumption
    assert i.state is r.state is State.ESTABLISHED


def test_resumption_skips_the_certificate_exchange() -> None:
    w = make_world()
    i, r, _ = handshake(w)
    first, _ = _results(i, r)
    w.client_store.put(first.resumption)
    i2, r2, flow = handshake(w, resume=w.client_store.for_peer(1, SERVER_NODE))
    assert flow == [Op.CASE_SIGMA1, Op.CASE_SIGMA2_RESUME, Op.STATUS_REPORT]
    a, b = _results(i2, r2)
    assert a.resumed and b.resumed and a.keys == b.keys
    assert a.keys != first.keys  # fresh randoms give fresh keys
    assert (a.peer_node_id, b.peer_node_id) == (SERVER_NODE, CLIENT_NODE)
    new_id = a.resumption.resumption_id
    assert new_id == b.resumption.resumption_id != first.resumption.resumption_id
    assert w.server_store.get(first.resumption.resumption_id) is None  # rotated
    assert w.server_store.get(new_id) is not None


def test_resumption_key_derivation_by_hand() -> None:
    w = make_world()
    i, r, _ = handshake(w)
    rec = _results(i, r)[0].resumption
    i2, r2, _ = handshake(w, resume=rec)
    a, _ = _results(i2, r2)
    s1 = case_mod.Sigma1.decode(i2._sigma1)
    expect = case_keys.hkdf(
        rec.shared_secret, s1.initiator_random + rec.resumption_id, b"SessionResumptionKeys", 48
    )
    assert a.keys.i2r_key + a.keys.r2i_key + a.keys.attestation_challenge == expect


def test_unknown_or_forged_resumption_falls_back_to_full_case() -> None:
    w = make_world()
    i, r, _ = handshake(w)
    rec = _results(i, r)[0].resumption
    stale = dataclasses.replace(rec, resumption_id=bytes(16))
    _, _, flow = handshake(w, resume=stale)
    assert flow[1] == Op.CASE_SIGMA2
    forged = dataclasses.replace(rec, shared_secret=bytes(32))  # MIC will not verify
    i3, r3, flow = handshake(w, resume=forged)
    assert flow[1] == Op.CASE_SIGMA2 and not _results(i3, r3)[0].resumed


def _fails(fn: object, code: int, general: int = GeneralCode.FAILURE) -> CaseError:
    with pytest.raises(CaseError) as info:
        fn()  # type: ignore[operator]
    assert (info.value.report.general_code, info.value.report.protocol_code) == (general, code)
    return info.value


def test_wrong_fabric_gets_no_shared_trust_roots() -> None:
    w = make_world()
    stranger = CertificateAuthority(fabric_id=0xFAB1, now=NOW).issue(CLIENT_NODE)
    i = CaseInitiator(stranger, SERVER_NODE, 1, cert_time=NOW)
    r = CaseResponder(w.table, w.server_store, 2, cert_time=NOW)
    s1 = i.start()
    _fails(lambda: r.receive(s1.opcode, s1.payload), SecureChannelCode.NO_SHARED_TRUST_ROOTS)
    assert r.state is State.FAILED


def test_wrong_destination_node_gets_no_shared_trust_roots() -> None:
    w = make_world()
    i = CaseInitiator(w.client, SERVER_NODE + 1, 1, cert_time=NOW)
    r = CaseResponder(w.table, w.server_store, 2, cert_time=NOW)
    s1 = i.start()
    _fails(lambda: r.receive(s1.opcode, s1.payload), SecureChannelCode.NO_SHARED_TRUST_ROOTS)


class _Impostor(FabricTable):
    """Answers every Sigma1, whatever node it names (to exercise the initiator's checks)."""

    def find_by_destination_id(
        self, destination_id: bytes, initiator_random: bytes
    ) -> FabricInfo | None:
        return next(iter(self))


def test_initiator_rejects_a_responder_with_the_wrong_node_id() -> None:
    w = make_world()
    other = w.ca.issue(0x77)
    i = CaseInitiator(w.client, SERVER_NODE, 1, cert_time=NOW)
    r = CaseResponder(_Impostor([other]), w.server_store, 2, cert_time=NOW)
    s1 = i.start()
    [s2] = r.receive(s1.opcode, s1.payload)
    err = _fails(lambda: i.receive(s2.opcode, s2.payload), SecureChannelCode.INVALID_PARAMETER)
    assert "not 0x0000000000000055" in str(err)


def test_initiator_rejects_a_responder_from_another_root() -> None:
    w = make_world()
    impostor = CertificateAuthority(fabric_id=0xFAB1, now=NOW).issue(SERVER_NODE)
    i = CaseInitiator(w.client, SERVER_NODE, 1, cert_time=NOW)
    r = CaseResponder(_Impostor([impostor]), w.server_store, 2, cert_time=NOW)
    s1 = i.start()
    [s2] = r.receive(s1.opcode, s1.payload)
    # the impostor's S2K uses another IPK: the encrypted part does not even authenticate
    _fails(lambda: i.receive(s2.opcode, s2.payload), SecureChannelCode.INVALID_PARAMETER)


def test_bad_sigma3_signature_is_invalid_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_world()
    i = CaseInitiator(w.client, SERVER_NODE, 1, cert_time=NOW)
    r = CaseResponder(w.table, w.server_store, 2, cert_time=NOW)
    s1 = i.start()
    [s2] = r.receive(s1.opcode, s1.payload)
    real_sign = case_mod._sign
    monkeypatch.setattr(case_mod, "_sign", lambda key, msg: real_sign(key, msg + b"x"))
    [s3] = i.receive(s2.opcode, s2.payload)
    err = _fails(lambda: r.receive(s3.opcode, s3.payload), SecureChannelCode.INVALID_PARAMETER)
    assert "signature" in str(err)


def test_tampered_sigma2_is_invalid_parameter() -> None:
    w = make_world()
    i = CaseInitiator(w.client, SERVER_NODE, 1, cert_time=NOW)
    r = CaseResponder(w.table, w.server_store, 2, cert_time=NOW)
    s1 = i.start()
    [s2] = r.receive(s1.opcode, s1.payload)
    msg = case_mod.Sigma2.decode(s2.payload)
    bad = dataclasses.replace(msg, encrypted2=msg.encrypted2[:-1] + bytes([msg.encrypted2[-1] ^ 1]))
    _fails(lambda: i.receive(s2.opcode, bad.encode()), SecureChannelCode.INVALID_PARAMETER)
    assert i.state is State.FAILED


def test_expired_initiator_certificate_is_refused() -> None:
    w = make_world()
    expired = w.ca.issue(CLIENT_NODE, not_after=NOW - 60)
    i = CaseInitiator(expired, SERVER_NODE, 1, cert_time=NOW)
    r = CaseResponder(w.table, w.server_store, 2, cert_time=NOW)
    s1 = i.start()
    [s2] = r.receive(s1.opcode, s1.payload)
    [s3] = i.receive(s2.opcode, s2.payload)
    err = _fails(lambda: r.receive(s3.opcode, s3.payload), SecureChannelCode.INVALID_PARAMETER)
    assert "expired" in str(err)


def test_expired_responder_certificate_is_refused_by_the_initiator() -> None:
    w = make_world()
    expired_server = w.ca.issue(SERVER_NODE, not_after=NOW - 60)
    i = CaseInitiator(w.client, SERVER_NODE, 1, cert_time=NOW)
    r = CaseResponder(FabricTable([expired_server]), w.server_store, 2, cert_time=NOW)
    s1 = i.start()
    [s2] = r.receive(s1.opcode, s1.payload)
    _fails(lambda: i.receive(s2.opcode, s2.payload), SecureChannelCode.INVALID_PARAMETER)


def test_failure_report_from_the_responder_reaches_the_initiator() -> None:
    w = make_world()
    i = CaseInitiator(w.client, SERVER_NODE, 1, cert_time=NOW)
    i.start()
    report = StatusReport(GeneralCode.FAILURE, 0, SecureChannelCode.NO_SHARED_TRUST_ROOTS)
    with pytest.raises(PeerReportedFailure) as info:
        i.receive_status(report)
    assert info.value.report.protocol_code == SecureChannelCode.NO_SHARED_TRUST_ROOTS
    assert i.state is State.FAILED


def test_illegal_transitions_leave_the_state_unchanged() -> None:
    w = make_world()
    r = CaseResponder(w.table, w.server_store, 2, cert_time=NOW)
    with pytest.raises(UnexpectedMessage):
        r.receive(Op.CASE_SIGMA3, b"\x15\x18")
    assert r.state is State.WAIT_SIGMA1
    i = CaseInitiator(w.client, SERVER_NODE, 1, cert_time=NOW)
    i.start()
    with pytest.raises(UnexpectedMessage):
        i.receive(Op.CASE_SIGMA1, b"")
    assert i.state is State.WAIT_SIGMA2
    with pytest.raises(UnexpectedMessage):
        i.start()


def test_half_resumption_fields_are_invalid() -> None:
    w = make_world()
    i = CaseInitiator(w.client, SERVER_NODE, 1, cert_time=NOW)
    s1 = case_mod.Sigma1.decode(i.start().payload)
    half = dataclasses.replace(s1, resumption_id=bytes(16))
    r = CaseResponder(w.table, w.server_store, 2, cert_time=NOW)
    _fails(lambda: r.receive(Op.CASE_SIGMA1, half.encode()), SecureChannelCode.INVALID_PARAMETER)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([Op.CASE_SIGMA1]))
def test_responder_raises_only_case_errors_on_garbage(data: bytes, opcode: int) -> None:
    w = _GARBAGE_WORLD
    r = CaseResponder(w.table, w.server_store, 2, cert_time=NOW)
    try:
        r.receive(opcode, data)
    except CaseError:
        assert r.state is State.FAILED


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_initiator_raises_only_case_errors_on_garbage(data: bytes) -> None:
    i = CaseInitiator(_GARBAGE_WORLD.client, SERVER_NODE, 1, cert_time=NOW)
    i.start()
    for opcode in (Op.CASE_SIGMA2, Op.CASE_SIGMA2_RESUME):
        with contextlib.suppress(CaseError):
            i.receive(opcode, data)


_GARBAGE_WORLD = make_world()


# ---- resumption store ----------------------------------------------------------------------


def _rec(n: int, fabric: int = 1) -> ResumptionRecord:
    return ResumptionRecord(n.to_bytes(16, "big"), bytes(32), fabric, 0x100 + n)


def test_resumption_store_evicts_least_recently_used() -> None:
    store = ResumptionStore(capacity=3)
    for n in range(3):
        store.put(_rec(n))
    assert store.get(_rec(0).resumption_id) is not None  # 0 is now the most recent
    evicted = store.put(_rec(3))
    assert evicted == [_rec(1)]
    assert store.get(_rec(1).resumption_id) is None and store.for_peer(1, 0x101) is None
    assert len(store) == 3


def test_resumption_store_keeps_one_record_per_peer_and_forgets_fabrics() -> None:
    store = ResumptionStore()
    store.put(_rec(1))
    newer = dataclasses.replace(_rec(1), resumption_id=b"\x99" * 16)
    store.put(newer)
    assert store.get(_rec(1).resumption_id) is None
    assert store.for_peer(1, 0x101) == newer
    store.put(_rec(2, fabric=2))
    store.remove_fabric(1)
    assert len(store) == 1 and store.for_peer(2, 0x102) is not None


# ---- on two nodes, through the message layer ---------------------------------------------


def _node_pair(w: World, **server_kwargs: int) -> tuple[CaseClient, CaseServer]:
    client_node, server_node = make_node(), make_node()
    server = CaseServer(
        server_node,
        w.table,
        cert_time=lambda now: int(now),
        resumptions=w.server_store,
        **server_kwargs,
    )  # type: ignore[arg-type]
    server.register()
    client = CaseClient(client_node, cert_time=lambda now: int(now), resumptions=w.client_store)
    return client, server


def _pump(client: CaseClient, server: CaseServer, now: float) -> None:
    while deliver(client.node, server.node, now, CLIENT_ADDR) + deliver(
        server.node, client.node, now, SERVER_ADDR
    ):
        pass


def _events(node: object) -> list[object]:
    out = []
    while (e := node.next_event()) is not None:  # type: ignore[attr-defined]
        out.append(e)
    return out


def test_case_between_two_nodes_then_resumption_and_secured_traffic() -> None:
    w = make_world()
    client, server = _node_pair(w)
    conn = client.connect(w.client, SERVER_NODE, SERVER_ADDR, float(NOW))
    _pump(client, server, float(NOW))
    assert conn.session is not None and conn.error is None and not conn.resumed
    [server_session] = list(server.node.sessions)
    assert server_session.kind is SessionKind.CASE
    assert server_session.peer_node_id == CLIENT_NODE
    assert conn.session.peer_session_id == server_session.local_session_id
    assert any(isinstance(e, SessionEstablished) for e in _events(server.node))
    assert server.pending == 0
    # the session carries traffic: the server closes it, the client hears CloseSession
    server.node.close_session(server_session, float(NOW))
    _pump(client, server, float(NOW))
    assert len(client.node.sessions) == 0
    # reconnect: resumption
    again = client.connect(w.client, SERVER_NODE, SERVER_ADDR, float(NOW + 1))
    _pump(client, server, float(NOW + 1))
    assert again.session is not None and again.resumed
    assert len(server.node.sessions) == 1


def test_node_refusal_reaches_the_initiator_as_a_status_report() -> None:
    w = make_world()
    client, server = _node_pair(w)
    stranger = CertificateAuthority(fabric_id=0xFAB1, now=NOW).issue(CLIENT_NODE)
    conn = client.connect(stranger, SERVER_NODE, SERVER_ADDR, float(NOW))
    _pump(client, server, float(NOW))
    assert conn.session is None and conn.error is not None
    assert conn.error.report.protocol_code == SecureChannelCode.NO_SHARED_TRUST_ROOTS
    assert any(isinstance(e, CaseFailed) for e in _events(client.node))
    assert len(server.node.sessions) == 0 and server.pending == 0


def test_session_establishment_limit_answers_busy() -> None:
    w = make_world()
    client, server = _node_pair(w, max_pending=1)
    first = client.connect(w.client, SERVER_NODE, SERVER_ADDR, float(NOW))
    deliver(client.node, server.node, float(NOW), CLIENT_ADDR)  # Sigma1 in, Sigma2 held back
    held = server.node.datagrams_to_send()
    second = client.connect(w.client, SERVER_NODE, SERVER_ADDR, float(NOW))
    _pump(client, server, float(NOW))
    assert second.error is not None
    assert (second.error.report.general_code, second.error.report.protocol_code) == (
        GeneralCode.BUSY,
        SecureChannelCode.BUSY,
    )
    assert second.retry_after == 0.5  # the minimum wait the responder asked for
    assert first.retry_after is None
    for data, _ in held:
        client.node.datagram_received(data, SERVER_ADDR, float(NOW))
    _pump(client, server, float(NOW))
    assert first.session is not None


def test_abandoned_handshake_times_out_and_frees_its_slot() -> None:
    w = make_world()
    client, server = _node_pair(w, max_pending=1)
    client.connect(w.client, SERVER_NODE, SERVER_ADDR, float(NOW))
    deliver(client.node, server.node, float(NOW), CLIENT_ADDR)
    server.node.datagrams_to_send()  # Sigma2 lost for good; the client gives up too
    assert server.pending == 1
    t = float(NOW)
    while server.pending and t < NOW + 120:
        t = server.node.next_deadline() or t + 1
        server.node.handle_timer(t)
        server.node.datagrams_to_send()
    assert server.pending == 0
    assert any(isinstance(e, CaseFailed) for e in _events(server.node))


def test_certificates_of_the_fabric_survive_persistence() -> None:
    w = make_world()
    restored = FabricInfo.from_dict(w.server.to_dict())
    assert restored == w.server
    assert (
        restored.ipk == w.server.ipk
        and restored.private_key.private_numbers() == w.server.private_key.private_numbers()
    )
    assert restored.operational_instance_name().endswith(f"-{SERVER_NODE:016X}")
    with pytest.raises(certs.CertificateError):
        FabricInfo.from_dict({**w.server.to_dict(), "operational_key": "11" * 32})


def test_case_sessions_beyond_the_table_evict_the_least_recently_used() -> None:
    w = make_world()
    client_node, server_node = make_node(), make_node(max_sessions=2)
    server = CaseServer(server_node, w.table, cert_time=lambda now: int(now))
    server.register()
    clients = [w.ca.issue(0x100 + n) for n in range(3)]
    for fabric in clients:
        client = CaseClient(client_node, cert_time=lambda now: int(now))
        conn = client.connect(fabric, SERVER_NODE, SERVER_ADDR, float(NOW))
        while deliver(client_node, server_node, float(NOW), CLIENT_ADDR) + deliver(
            server_node, client_node, float(NOW), SERVER_ADDR
        ):
            pass
        assert conn.session is not None
    peers = sorted(s.peer_node_id for s in server_node.sessions)
    assert peers == [0x101, 0x102]  # the first one was evicted
    closed = [e for e in _events(server_node) if type(e).__name__ == "SessionClosed"]
    assert [e.session.peer_node_id for e in closed] == [0x100]  # type: ignore[attr-defined]
    assert closed[0].reason == "evicted"  # type: ignore[attr-defined]


def test_node_refuses_an_expired_initiator_with_invalid_parameter() -> None:
    w = make_world()
    client, server = _node_pair(w)
    expired = w.ca.issue(CLIENT_NODE, not_after=NOW - 60)
    conn = client.connect(expired, SERVER_NODE, SERVER_ADDR, float(NOW))
    _pump(client, server, float(NOW))
    assert conn.session is None and conn.error is not None
    report = conn.error.report
    assert (report.general_code, report.protocol_code) == (
        GeneralCode.FAILURE,
        SecureChannelCode.INVALID_PARAMETER,
    )
    assert len(server.node.sessions) == 0 and server.pending == 0
    assert any(isinstance(e, CaseFailed) and "expired" in e.reason for e in _events(server.node))
