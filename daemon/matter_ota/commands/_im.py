"""`matter-ota serve`: the Interaction Model server and the root endpoint's clusters."""

from __future__ import annotations

import argparse
import logging
import secrets
from pathlib import Path

from matter_ota import __version__
from matter_ota.cli import CliError
from matter_ota.clusters.basic_information import BasicInfo
from matter_ota.clusters.ota_provider import NothingAvailable
from matter_ota.clusters.root import build_root_node
from matter_ota.commands._common import node_identity
from matter_ota.commands._node_state import node_state
from matter_ota.im.server import InteractionServer
from matter_ota.node import Node

log = logging.getLogger("matter_ota.serve")

UNIQUE_ID_FILE = "unique-id"


def _unique_id(state_dir: Path | None) -> str:
    """11.1.6.19 UniqueID: random once, kept in the state directory so it never changes."""
    if state_dir is None:
        return secrets.token_hex(16).upper()
    path = state_dir / UNIQUE_ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_hex(16).upper()
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    return value


def install_im(node: Node, args: argparse.Namespace) -> None:
    """Serve installer: the IM server with Descriptor, Basic Information, Access Control and
    the OTA Provider cluster (answering NotAvailable until the OTA decider is plugged in)."""
    identity = node_identity(args)
    info = BasicInfo(
        vendor_name=identity.vendor_name, vendor_id=identity.vendor_id,
        product_name=identity.product_name, product_id=identity.product_id,
        unique_id=_unique_id(getattr(args, "state_dir", None)),
        software_version=1, software_version_string=__version__,
    )
    # One ACL for the node (shared with OTA and commissioning: AddNOC writes it); the OTA
    # installer (before this one) hands over its provider.
    state = node_state(node, args)
    access = state.access
    model = build_root_node(info, access, getattr(args, "update_decider", None)
                            or NothingAvailable())
    state.model = model
    InteractionServer(node, model, access)
    log.info("event=im_enabled endpoints=%d clusters=%d vendor=0x%04X product=0x%04X",
             len(model.endpoints), sum(len(e.clusters) for e in model.endpoints.values()),
             identity.vendor_id, identity.product_id)
