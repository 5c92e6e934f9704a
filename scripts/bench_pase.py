"""``bench.py pase``: PASE handshake cost, in memory, against OpenSSL's P-256 in the same run.

Measured (median of ``--rounds``):

- ``handshake``: a whole PASE handshake, both sides in this process (our initiator against our
  responder: PBKDF2 for w0/w1 on the initiator, SPAKE2+ on both sides, key schedule, session
  keys, TLV), i.e. what one commissioning costs the two machines together;
- ``responder``: the device's share of it (PBKDFParamRequest, Pake1, Pake3 handling);
- ``pbkdf2``: w0/w1 derivation alone at the given iteration count;
- baseline ``openssl-ecdh``: one P-256 key generation + ECDH with ``cryptography`` (OpenSSL),
  the cost of comparable elliptic-curve work in C. The ratio shows what pure-Python point
  arithmetic (``ecdsa``) costs us.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pase", help="PASE handshake time vs OpenSSL P-256 ECDH")
    p.add_argument("--rounds", type=int, default=20, help="rounds per figure (default 20)")
    p.add_argument("--iterations", type=int, default=1000, help="PBKDF2 iterations (1000)")
    p.set_defaults(func=run)


def _median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def run(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric import ec

    from matter_ota.crypto import spake2p
    from matter_ota.messaging.status import StatusReport
    from matter_ota.secure_channel.pase import PaseInitiator, PaseResponder

    salt, passcode, iterations = b"SPAKE2P Key Salt", 20202021, args.iterations
    verifier = spake2p.PaseVerifier.from_passcode(passcode, salt, iterations)

    def handshake(timed: list[float] | None = None) -> None:
        initiator = PaseInitiator(passcode, 1)
        responder = PaseResponder(verifier, salt, iterations, 2)
        spent = 0.0

        def respond(opcode: int, payload: bytes) -> tuple[int, bytes]:
            nonlocal spent
            start = time.perf_counter()
            (out,) = responder.receive(opcode, payload)
            spent += time.perf_counter() - start
            return out.opcode, out.payload

        msg = initiator.start()
        op, data = respond(msg.opcode, msg.payload)
        (msg,) = initiator.receive(op, data)
        op, data = respond(msg.opcode, msg.payload)
        (msg,) = initiator.receive(op, data)
        op, data = respond(msg.opcode, msg.payload)
        initiator.receive_status(StatusReport.decode(data))
        if timed is not None:
            timed.append(spent)

    def ecdh() -> None:
        ours = ec.generate_private_key(ec.SECP256R1())
        peer = ec.generate_private_key(ec.SECP256R1()).public_key()
        ours.exchange(ec.ECDH(), peer)

    handshake()  # warm up: precomputed tables for G, M and N
    rounds = args.rounds
    base = _median_ms(ecdh, rounds)
    full = _median_ms(handshake, rounds)
    responder_times: list[float] = []
    for _ in range(rounds):
        handshake(responder_times)
    responder = statistics.median(responder_times) * 1000
    pbkdf = _median_ms(lambda: spake2p.compute_w0_w1(passcode, salt, iterations), rounds)

    print(f"PASE, {rounds} rounds, PBKDF2 {iterations} iterations (median)")
    print(f"{'figure':<38}{'ms':>10}{'x baseline':>12}")
    for name, ms in (("baseline openssl-ecdh (keygen+ECDH)", base),
                     ("handshake, both sides", full),
                     ("responder (device) share", responder),
                     ("pbkdf2 w0/w1 (initiator)", pbkdf)):
        print(f"{name:<38}{ms:>10.2f}{ms / base:>12.1f}")
    print(f"handshakes/s on one core (device side): {1000 / responder:.0f}")
    return 0
