"""``bench.py case``: CASE handshakes per second on one core, full and resumed.

Both roles run in this process, so one "handshake" is the initiator's and the responder's work
together (Sigma1 -> Sigma2 -> Sigma3 -> StatusReport, or Sigma1 -> Sigma2_Resume -> StatusReport).

Baseline, measured in the same run: the raw `cryptography` operations of one full handshake,
both roles, executed back to back in handshake order on real inputs (the same certificates,
TBS bytes and payload sizes), with no protocol code in between:

- 2 x P-256 key generation with point encoding, 2 x ECDH from the peer's encoded point;
- 2 x HMAC-SHA256 (destination id, computed by each side);
- 2 x ECDSA sign and 2 x ECDSA verify (TBSData2, TBSData3);
- the chain checks: each side verifies the peer's NOC and ICAC signatures over their X.509 TBS
  (the root is the trust anchor) -> 4 x ECDSA verify;
- 6 x HKDF-SHA256 (S2K, S3K, session keys, on each side);
- 4 x AES-CCM-128 on the TBEData payloads (encrypt and decrypt, Sigma2 and Sigma3).

The bound is that sequence's rate; the goal is >= 70 % of it. Resumed handshakes are compared
with full ones (goal >= 5x). Times are thread CPU time in interleaved rounds (the machine is
shared); ratios are the median of per-round ratios. The per-operation table is informational
(each operation timed alone).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from matter_ota.crypto import certs, certs_x509
from matter_ota.fabrics import CertificateAuthority, FabricInfo, FabricTable
from matter_ota.messaging.status import SecureChannelOpcode as Op
from matter_ota.messaging.status import StatusReport
from matter_ota.secure_channel.case import CaseInitiator, CaseResponder
from matter_ota.secure_channel.resumption import ResumptionRecord, ResumptionStore

NOW = int(time.time())
SERVER, CLIENT = 0x55, 0xAA
P256 = ec.SECP256R1()
ECDSA = ec.ECDSA(hashes.SHA256())
X962 = (Encoding.X962, PublicFormat.UncompressedPoint)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("case", help="CASE handshakes/s vs the raw crypto bound; resumed vs full")
    p.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per measurement")
    p.add_argument("--rounds", type=int, default=20, help="interleaved measurement rounds")
    p.add_argument("--no-icac", action="store_true", help="NOCs issued by the root directly")
    p.set_defaults(func=run)


def _batch(fn: Callable[[], object], seconds: float) -> float:
    """Thread CPU seconds per call of ``fn`` over one short batch (wall time would also count
    the other processes of a shared machine)."""
    count, start = 0, time.thread_time()
    while True:
        fn()
        count += 1
        elapsed = time.thread_time() - start
        if elapsed >= seconds:
            return elapsed / count


def _rounds(
    named: dict[str, Callable[[], object]], seconds: float, rounds: int
) -> list[dict[str, float]]:
    """Per-call seconds of every function in ``rounds`` interleaved rounds."""
    for fn in named.values():
        for _ in range(3):
            fn()  # warm-up
    batch = seconds / rounds / len(named)
    return [{name: _batch(fn, batch) for name, fn in named.items()} for _ in range(rounds)]


def _handshake(
    client: FabricInfo,
    table: FabricTable,
    store: ResumptionStore,
    resume: ResumptionRecord | None,
) -> ResumptionRecord:
    i = CaseInitiator(client, SERVER, 1, cert_time=NOW, resumption=resume)
    r = CaseResponder(table, store, 2, cert_time=NOW)
    first = i.start()
    [reply] = r.receive(first.opcode, first.payload)
    [nxt] = i.receive(reply.opcode, reply.payload)
    if reply.opcode == Op.CASE_SIGMA2_RESUME:
        r.receive_status(StatusReport.decode(nxt.payload))
    else:
        [status] = r.receive(nxt.opcode, nxt.payload)
        i.receive_status(StatusReport.decode(status.payload))
    assert i.result is not None and r.result is not None and i.result.keys == r.result.keys
    return i.result.resumption


def _responder_share(
    client: FabricInfo, table: FabricTable, store: ResumptionStore, n: int, resume: bool
) -> float:
    """Thread CPU seconds the responder (the provider's role) spends per handshake."""
    spent = 0.0
    record = _handshake(client, table, store, None)
    clock = time.thread_time
    for _ in range(n):
        i = CaseInitiator(client, SERVER, 1, cert_time=NOW, resumption=record if resume else None)
        r = CaseResponder(table, store, 2, cert_time=NOW)
        first = i.start()
        t = clock()
        [reply] = r.receive(first.opcode, first.payload)
        spent += clock() - t
        [nxt] = i.receive(reply.opcode, reply.payload)
        t = clock()
        if reply.opcode == Op.CASE_SIGMA2_RESUME:
            r.receive_status(StatusReport.decode(nxt.payload))
            spent += clock() - t
        else:
            [status] = r.receive(nxt.opcode, nxt.payload)
            spent += clock() - t
            i.receive_status(StatusReport.decode(status.payload))
        assert i.result is not None
        record = i.result.resumption
    return spent / n


class _Raw:
    """The crypto of one full handshake on real inputs, without the protocol around it."""

    def __init__(self, server: FabricInfo, client: FabricInfo, ca: CertificateAuthority) -> None:
        self.server_key, self.client_key = server.private_key, client.private_key
        self.server_pub = certs.public_key_from_bytes(certs.decode(server.noc).public_key)
        self.client_pub = certs.public_key_from_bytes(certs.decode(client.noc).public_key)
        # (issuer public key, DER signature, TBS) of the two certificates each side checks
        self.chains = []
        for fabric in (server, client):
            noc = certs.decode(fabric.noc)
            pairs = [(noc, fabric.icac or fabric.rcac)]
            if fabric.icac is not None:
                pairs.append((certs.decode(fabric.icac), fabric.rcac))
            self.chains.append(
                [
                    (
                        certs.public_key_from_bytes(certs.decode(issuer).public_key),
                        certs_x509.signature_to_der(cert.signature),
                        certs.tbs(cert),
                    )
                    for cert, issuer in pairs
                ]
            )
        self.ipk = server.ipk
        self.tbs = bytes(2 * len(server.noc) + 2 * 65 + 12)
        self.tbe = bytes(len(self.tbs) - 2 * 65 + 64 + 16 + 6)
        self.nonce = bytes(13)
        self.dest_input = bytes(32 + 65 + 16)
        del ca

    def _hkdf(self, secret: bytes, length: int = 16) -> bytes:
        return HKDF(hashes.SHA256(), length, self.ipk + bytes(32), b"Sigma2").derive(secret)

    def _hmac(self) -> bytes:
        h = hmac.HMAC(self.ipk, hashes.SHA256())
        h.update(self.dest_input)
        return h.finalize()

    def _chain(self, side: int) -> None:
        for pub, sig, tbs in self.chains[side]:
            pub.verify(sig, tbs, ECDSA)

    def handshake(self) -> None:
        ie = ec.generate_private_key(P256)  # initiator: Sigma1
        ie_pub = ie.public_key().public_bytes(*X962)
        self._hmac()
        self._hmac()  # responder: Sigma1 -> Sigma2
        re = ec.generate_private_key(P256)
        re_pub = re.public_key().public_bytes(*X962)
        shared = re.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(P256, ie_pub))
        sig2 = self.server_key.sign(self.tbs, ECDSA)
        enc2 = AESCCM(self._hkdf(shared), tag_length=16).encrypt(self.nonce, self.tbe, None)
        shared_i = ie.exchange(
            ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(P256, re_pub)
        )
        AESCCM(self._hkdf(shared_i), tag_length=16).decrypt(self.nonce, enc2, None)  # initiator
        self._chain(0)
        self.server_pub.verify(sig2, self.tbs, ECDSA)
        sig3 = self.client_key.sign(self.tbs, ECDSA)
        enc3 = AESCCM(self._hkdf(shared_i), tag_length=16).encrypt(self.nonce, self.tbe, None)
        self._hkdf(shared_i, 48)
        AESCCM(self._hkdf(shared), tag_length=16).decrypt(self.nonce, enc3, None)  # responder
        self._chain(1)
        self.client_pub.verify(sig3, self.tbs, ECDSA)
        self._hkdf(shared, 48)


def run(args: argparse.Namespace) -> int:
    ca = CertificateAuthority(fabric_id=0xFAB1, now=NOW, with_icac=not args.no_icac)
    server, client = ca.issue(SERVER), ca.issue(CLIENT)
    table = FabricTable([server])
    store = ResumptionStore()
    raw = _Raw(server, client, ca)
    key = ec.generate_private_key(P256)
    peer_point = ec.generate_private_key(P256).public_key().public_bytes(*X962)
    sig = key.sign(raw.tbs, ECDSA)
    pub = key.public_key()
    verify_chain = raw.chains[0][0]
    aead = AESCCM(bytes(16), tag_length=16)
    ops: list[tuple[str, int, Callable[[], object]]] = [
        (
            "keygen + point encode",
            2,
            lambda: ec.generate_private_key(P256).public_key().public_bytes(*X962),
        ),
        (
            "ECDH from encoded point",
            2,
            lambda: key.exchange(
                ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(P256, peer_point)
            ),
        ),
        ("ECDSA sign (TBSData)", 2, lambda: key.sign(raw.tbs, ECDSA)),
        ("ECDSA verify (TBSData)", 2, lambda: pub.verify(sig, raw.tbs, ECDSA)),
        (
            "ECDSA verify (NOC / ICAC TBS)",
            sum(len(c) for c in raw.chains),
            lambda: verify_chain[0].verify(verify_chain[1], verify_chain[2], ECDSA),
        ),
        ("HKDF-SHA256", 6, lambda: raw._hkdf(bytes(32))),
        ("HMAC-SHA256 (destination id)", 2, raw._hmac),
        ("AES-CCM-128 (TBEData)", 4, lambda: aead.encrypt(raw.nonce, raw.tbe, None)),
    ]
    record = [_handshake(client, table, store, None)]

    def resumed() -> None:
        record[0] = _handshake(client, table, store, record[0])

    named: dict[str, Callable[[], object]] = {name: fn for name, _, fn in ops}
    named["raw"] = raw.handshake
    named["full"] = lambda: _handshake(client, table, store, None)
    named["resumed"] = resumed
    rounds = _rounds(named, args.seconds * len(named), args.rounds)
    ratio = statistics.median(r["raw"] / r["full"] for r in rounds)
    speedup = statistics.median(r["full"] / r["resumed"] for r in rounds)
    best = {name: min(r[name] for r in rounds) for name in named}

    print(f"CASE, both roles in one process, {'no ICAC' if args.no_icac else 'with ICAC'}")
    print(f"{'raw operation (alone)':34} {'count':>5} {'us each':>9} {'us total':>9}")
    for name, n, _ in ops:
        print(f"{name:34} {n:5d} {best[name] * 1e6:9.1f} {n * best[name] * 1e6:9.1f}")
    print()
    print(f"{'measurement':34} {'per second':>10} {'us each':>9}")
    for name, label in (("raw", "raw crypto, in sequence (bound)"), ("full", "full handshake")):
        print(f"{label:34} {1 / best[name]:10.0f} {best[name] * 1e6:9.1f}")
    print(f"{'resumed handshake':34} {1 / best['resumed']:10.0f} {best['resumed'] * 1e6:9.1f}")
    share_full = _responder_share(client, table, store, 100, resume=False)
    share_resumed = _responder_share(client, table, store, 300, resume=True)
    for label, each in (
        ("  responder part, full", share_full),
        ("  responder part, resumed", share_resumed),
    ):
        print(f"{label:34} {1 / each:10.0f} {each * 1e6:9.1f}")
    print()
    print(f"full handshake / bound: {ratio:.0%} (goal >= 70%)")
    print(f"resumed vs full:        {speedup:.1f}x (goal >= 5x)")
    print(f"(thread CPU time, best batch of {args.rounds} interleaved rounds; ratios are medians)")
    return 0
