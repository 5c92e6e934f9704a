"""`matter-ota dev-credentials`: a development attestation identity (DAC, PAI, CD).

Mints a PAI and a DAC under a test PAA and a development Certification Declaration signed with
a test CD-signing key, into ``<state dir>/attestation`` (or ``--out``), where `serve` finds
them. The test PAA and CD-signing key are the published Matter test credentials: commissioners
accept them only for test vendor ids (0xFFF1-0xFFF4) and with the test PAA in their trust store.
"""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path

from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.commands._common import add_config_options, node_identity, provider_config
from matter_ota.crypto import attestation

ENV_CREDENTIALS = "MATTER_OTA_TEST_CREDENTIALS"
OTA_PROVIDER_DEVICE_TYPE = 0x0014  # Device Library: OTA Provider
ATTESTATION_SUBDIR = "attestation"


def default_credentials_dir() -> Path:
    """``$MATTER_OTA_TEST_CREDENTIALS``, else ``../shared/credentials/test`` from here."""
    env = os.environ.get(ENV_CREDENTIALS)
    return Path(env) if env else Path("..") / "shared" / "credentials" / "test"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dev-credentials",
                       help="mint a development DAC/PAI/CD under the Matter test PAA")
    p.add_argument("--credentials", type=Path, default=None, metavar="DIR",
                   help=f"dir with paa-fff1-cert.pem, paa-fff1-key.pem, cd-signing-cert.pem, "
                   f"cd-signing-key.pem (default ${ENV_CREDENTIALS} or ../shared/credentials/"
                   f"test)")
    add_config_options(p)
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="write the identity here instead of STATE_DIR/attestation")
    p.add_argument("--vendor-id", type=lambda s: int(s, 0), default=None,
                   help="default: the config's node.vendor_id (what Basic Information reports)")
    p.add_argument("--product-id", type=lambda s: int(s, 0), default=None,
                   help="default: the config's node.product_id")
    p.add_argument("--force", action="store_true", help="replace an existing identity")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    creds: Path = args.credentials or default_credentials_dir()
    config = provider_config(args)
    state_dir: Path = args.state_dir or (config.state_dir if config else Path("state"))
    out: Path = args.out or state_dir / ATTESTATION_SUBDIR
    # The DAC must name the vendor and product Basic Information reports.
    identity = node_identity(args)
    vendor_id, product_id = identity.vendor_id, identity.product_id
    if not 0xFFF1 <= vendor_id <= 0xFFF4:
        raise CliError(f"vendor id 0x{vendor_id:04X}: development identities are for the test "
                       "vendor ids 0xFFF1-0xFFF4", EXIT_USAGE)
    if (out / attestation.DAC_CERT).exists() and not args.force:
        raise CliError(f"{out} already holds an identity (use --force to replace it)",
                       EXIT_USAGE)
    names = ("paa-fff1-cert.pem", "paa-fff1-key.pem", "cd-signing-cert.pem",
             "cd-signing-key.pem")
    try:
        material = [(creds / n).read_bytes() for n in names]
    except OSError as exc:
        raise CliError(f"test credentials not found in {creds}: {exc.strerror or exc} "
                       f"(give --credentials or set {ENV_CREDENTIALS})", EXIT_USAGE) from None
    minted = attestation.mint_development_identity(
        paa_cert_pem=material[0], paa_key_pem=material[1], cd_signer_cert_pem=material[2],
        cd_signer_key_pem=material[3], vendor_id=vendor_id, product_id=product_id,
        device_type_id=OTA_PROVIDER_DEVICE_TYPE, now=datetime.datetime.now(datetime.UTC))
    try:
        attestation.save(minted, out)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"development identity for vendor 0x{vendor_id:04X} product 0x{product_id:04X} "
          f"written to {out}")
    return 0
