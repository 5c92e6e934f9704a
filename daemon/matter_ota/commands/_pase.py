"""`matter-ota serve --passcode`: accept PASE from commissioners."""

from __future__ import annotations

import argparse
import logging
import secrets

from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.crypto import spake2p
from matter_ota.node import Node
from matter_ota.secure_channel.pase import DEFAULT_MAX_FAILURES
from matter_ota.secure_channel.pase_node import PaseCommissioning

log = logging.getLogger("matter_ota.serve")

#: PBKDF2 iterations of the verifier `serve` derives (spec limits 1000..100000; the cost falls
#: on the commissioner, once per commissioning, and on anyone attacking a stolen verifier).
PBKDF_ITERATIONS = 10000
SALT_LEN = 32


def install_pase(node: Node, args: argparse.Namespace) -> None:
    """Serve installer: register PASE when ``--passcode`` is given.

    Only the verifier (w0, L) is kept. The salt is random per process start: a commissioner
    learns it from the PBKDFParamResponse.
    """
    passcode: int | None = getattr(args, "passcode", None)
    if passcode is None:
        log.info("event=pase_disabled reason=no_passcode")
        return
    try:
        spake2p.check_passcode(passcode)
    except spake2p.InvalidPasscode as e:
        raise CliError(f"--passcode: {e}", EXIT_USAGE) from None
    salt = secrets.token_bytes(SALT_LEN)
    PaseCommissioning.from_passcode(node, passcode, salt, PBKDF_ITERATIONS)
    log.info("event=pase_enabled iterations=%d max_failures=%d", PBKDF_ITERATIONS,
             DEFAULT_MAX_FAILURES)
