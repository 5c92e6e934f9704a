"""`matter-ota serve`: run the provider daemon."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from matter_ota.commands._common import add_config_options

log = logging.getLogger("matter_ota.serve")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the OTA provider daemon")
    add_config_options(p)
    p.add_argument("--port", type=int, default=5540, help="UDP port (default 5540)")
    p.add_argument("--passcode", type=int, default=None, help="setup passcode for commissioning")
    p.add_argument("--discriminator", type=int, default=None, help="12-bit discriminator")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log.info("event=start component=serve")
    log.warning(
        "event=not_yet what=matter_node detail=the secure messaging core and commissionable "
        "node are not in this build yet; serving nothing"
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("event=stop component=serve")
    return 0
