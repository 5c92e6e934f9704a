"""`matter-ota serve`: answer CASE (Sigma1) from the fabrics the node belongs to."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.commands._node_state import node_state
from matter_ota.crypto.certs import CertificateError
from matter_ota.fabrics import FabricInfo, FabricTable
from matter_ota.node import Node
from matter_ota.secure_channel.case_server import CaseServer

log = logging.getLogger("matter_ota.serve")


def load_fabric_files(paths: list[str]) -> FabricTable:
    """Fabrics from JSON files written by :meth:`FabricInfo.to_dict` (one object or a list)."""
    table = FabricTable()
    for name in paths:
        path = Path(name)
        try:
            data = json.loads(path.read_text())
            for entry in data if isinstance(data, list) else [data]:
                table.add(FabricInfo.from_dict(entry))
        except OSError as e:
            raise CliError(f"--fabric-file {path}: {e.strerror or e}", EXIT_USAGE) from None
        except (ValueError, KeyError, TypeError, CertificateError) as e:
            raise CliError(f"--fabric-file {path}: not a valid fabric: {e}", EXIT_USAGE) from None
    return table


def _provision(table: FabricTable, fabric: FabricInfo) -> bool:
    """Add a ``--fabric-file`` fabric beside the commissioned ones; False when it is one of
    them already (then the stored fabric and its ACL stay)."""
    taken = table.get(fabric.fabric_index)
    same = taken is not None and (taken.root_public_key, taken.fabric_id) == (
        fabric.root_public_key, fabric.fabric_id)
    if taken is not None and not same:
        raise CliError(f"--fabric-file: fabric index {fabric.fabric_index} is already a "
                       "commissioned fabric's; give the file another fabric_index", EXIT_USAGE)
    if same:
        return False
    try:
        table.add(fabric)
    except ValueError as e:
        raise CliError(f"--fabric-file: fabric index {fabric.fabric_index}: {e}",
                       EXIT_USAGE) from None
    return True


def install_case(node: Node, args: argparse.Namespace) -> None:
    """Serve installer: the CASE responder, with the fabrics of ``--fabric-file``.

    Fabrics normally come from commissioning (AddNOC); the option provisions them by hand for
    development and interop tests. Certificates are checked against the wall clock.
    """
    # The node's one fabric table: the state store and commissioning (AddNOC) fill it too.
    state = node_state(node, args)
    fabrics = state.fabrics
    for fabric in load_fabric_files(list(getattr(args, "fabric_file", None) or [])):
        if _provision(fabrics, fabric):
            state.provisioned.add(fabric.fabric_index)
    CaseServer(node, fabrics, cert_time=lambda _now: int(time.time())).register()
    log.info(
        "event=case_enabled fabrics=%d nodes=%s",
        len(fabrics),
        ",".join(f.operational_instance_name() for f in fabrics) or "-",
    )
