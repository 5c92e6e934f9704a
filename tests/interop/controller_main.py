"""Drive the connectedhomeip Python controller; run by ``chip_controller.py``, not by pytest.

Runs inside the private root (see ``private_root.py``) and inside the test's network
namespace. Writes the outcome as JSON to ``--result`` (a file, because the SDK's C log shares
stdout and can interleave with any line we print).

Sub-commands::

    pase --ip A --port P --passcode N [--node-id X] [--timeout S]
    pase-read --ip A --port P --passcode N [--node-id X] [--timeout S]
        PASE, then one IM Read (BasicInformation.VendorID) over the PASE session: exercises the
        secure message path (AES-CCM both ways, MRP acks) whatever the read's outcome
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

RESULT_PATH = ""


def _report(**fields: Any) -> None:
    with open(RESULT_PATH, "w") as f:
        json.dump(fields, f)


class Controller:
    """One commissioner on a fresh fabric (vendor 0xFFF1, fabric 1, node 112233)."""

    def __init__(self, args: argparse.Namespace) -> None:
        import chip.native
        from chip import CertificateAuthority
        from chip.ChipStack import ChipStack

        chip.native.Init()
        # The SDK shuts objects down when they are collected: keep every one referenced.
        self.stack = ChipStack(persistentStoragePath=args.storage, enableServerInteractions=False)
        self.cam = CertificateAuthority.CertificateAuthorityManager(chipStack=self.stack)
        self.cam.LoadAuthoritiesFromStorage()
        self.ca = self.cam.NewCertificateAuthority()
        self.admin = self.ca.NewFabricAdmin(vendorId=0xFFF1, fabricId=1)
        self.ctrl = self.admin.NewController(nodeId=112233,
                                             paaTrustStorePath=args.paa_trust_store)

    def shutdown(self) -> None:
        self.ctrl.Shutdown()
        self.cam.Shutdown()
        self.stack.Shutdown()


async def _pase(args: argparse.Namespace) -> int:
    from chip.exceptions import ChipStackError

    controller = Controller(args)
    start = time.monotonic()
    try:
        await asyncio.wait_for(
            controller.ctrl.EstablishPASESessionIP(args.ip, args.passcode, args.node_id,
                                                   args.port),
            args.timeout,
        )
    except TimeoutError:
        _report(ok=False, error="timeout", seconds=time.monotonic() - start)
        return 1
    except ChipStackError as e:
        _report(ok=False, error="chip", code=e.err, message=str(e),
                seconds=time.monotonic() - start)
        return 1
    finally:
        controller.shutdown()
    _report(ok=True, seconds=time.monotonic() - start)
    return 0


async def _pase_read(args: argparse.Namespace) -> int:
    import chip.clusters as Clusters
    from chip.exceptions import ChipStackError

    controller = Controller(args)
    start = time.monotonic()
    try:
        await asyncio.wait_for(
            controller.ctrl.EstablishPASESessionIP(args.ip, args.passcode, args.node_id,
                                                   args.port),
            args.timeout,
        )
        try:
            await asyncio.wait_for(controller.ctrl.ReadAttribute(
                args.node_id, [(0, Clusters.BasicInformation.Attributes.VendorID)]), 5)
            read = "ok"
        except (TimeoutError, ChipStackError) as e:
            read = f"{type(e).__name__}: {e}"
    except TimeoutError:
        _report(ok=False, error="timeout", seconds=time.monotonic() - start)
        return 1
    except ChipStackError as e:
        _report(ok=False, error="chip", code=e.err, message=str(e),
                seconds=time.monotonic() - start)
        return 1
    finally:
        controller.shutdown()
    _report(ok=True, read=read, seconds=time.monotonic() - start)
    return 0


def _pase_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ip", required=True)
    p.add_argument("--port", type=int, default=5540)
    p.add_argument("--passcode", type=int, required=True)
    p.add_argument("--node-id", type=int, default=0x1234)
    p.add_argument("--timeout", type=float, default=20.0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True, help="controller's JSON storage file")
    parser.add_argument("--paa-trust-store", required=True, help="dir of PAA certificates")
    parser.add_argument("--result", required=True, help="file to write the JSON outcome to")
    sub = parser.add_subparsers(dest="command", required=True)
    pase = sub.add_parser("pase", help="open a PASE session by IP")
    _pase_options(pase)
    pase.set_defaults(func=_pase)
    pase_read = sub.add_parser("pase-read", help="PASE by IP, then one IM read over it")
    _pase_options(pase_read)
    pase_read.set_defaults(func=_pase_read)
    args = parser.parse_args()
    global RESULT_PATH
    RESULT_PATH = args.result
    return asyncio.run(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
