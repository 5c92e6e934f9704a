"""The connectedhomeip controller as a CASE *responder*, on a fabric our own CA issued.

Run by ``test_case_chip.py`` inside the test's network namespace and a private root (see
``private_root.py``); not a pytest module. ``BareChipDeviceController`` installs the fabric we
hand it (RCAC, ICAC, NOC, operational key, IPK epoch key) and, with server interactions on, the
SDK's CASEServer answers Sigma1 on the controller's UDP port. We write that port to
``--port-file`` and serve until ``--stop-file`` appears; the SDK's log goes to stdout/stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any


def _own_udp_ports(table: str) -> list[int]:
    """Local ports of this process's sockets in ``/proc/self/net/<table>`` (no SDK API)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(match.group(1))
    ports = []
    with open(f"/proc/self/net/{table}") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[9] in inodes:
                ports.append(int(cols[1].rsplit(":", 1)[1], 16))
    return sorted(set(ports))


def _controller(
    key: object, noc: bytes, icac: bytes | None, rcac: bytes, ipk: bytes, vendor: int
) -> object:
    """``BareChipDeviceController`` as its docstring describes it.

    Release 2025.7.0 hands the native allocator ``cast(devCtrl, c_void_p)`` where it needs
    ``pointer(devCtrl)``, so the controller handle stays NULL and the next call crashes; this
    is the same initialisation with the out-parameters passed by pointer.
    """
    from ctypes import c_void_p, pointer

    from chip.ChipDeviceCtrl import ChipDeviceControllerBase

    class Controller(ChipDeviceControllerBase):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(f"ctrl(v/{vendor})")
            pairing, dev = c_void_p(None), c_void_p(None)
            self._externalKeyPair = key
            native_key = key.native_object  # type: ignore[attr-defined]
            self._ChipStack.Call(
                lambda: self._dmLib.pychip_OpCreds_AllocateControllerForPythonCommissioningFLow(
                    pointer(dev),
                    pointer(pairing),
                    native_key,
                    noc,
                    len(noc),
                    icac,
                    len(icac) if icac else 0,
                    rcac,
                    len(rcac),
                    ipk,
                    len(ipk),
                    vendor,
                    self._ChipStack.enableServerInteractions,
                )
            ).raise_on_error()
            self._set_dev_ctrl(dev, pairing)
            self._finish_init()

    return Controller()


def sdk_controller(storage: str, fabric_file: str, *, server: bool) -> tuple[Any, Any]:
    """The SDK stack and a controller on the fabric described by ``fabric_file`` (JSON: the
    controller's FabricInfo, certificates as hex); ``server`` enables server interactions."""
    import chip.native
    from chip.ChipStack import ChipStack
    from chip.crypto.p256keypair import TestP256Keypair
    from ecdsa import NIST256p, SigningKey

    fabric = json.loads(Path(fabric_file).read_text())
    chip.native.Init()
    stack = ChipStack(persistentStoragePath=storage, enableServerInteractions=server)
    key = TestP256Keypair(
        SigningKey.from_string(bytes.fromhex(fabric["operational_key"]), curve=NIST256p)
    )
    ctrl = _controller(
        key,
        bytes.fromhex(fabric["noc"]),
        bytes.fromhex(fabric["icac"]) if fabric.get("icac") else None,
        bytes.fromhex(fabric["rcac"]),
        bytes.fromhex(fabric["ipk_epoch_key"]),
        fabric["vendor_id"],
    )
    return stack, ctrl


async def _connect_twice(ctrl: Any, node_id: int) -> dict[str, Any]:
    """CASE to ``node_id`` (found by operational discovery), then again after expiring it."""
    attempts = []
    for _ in range(2):
        start = time.monotonic()
        try:
            await ctrl.GetConnectedDevice(node_id, allowPASE=False, timeoutMs=30000)
            attempts.append({"ok": True, "seconds": time.monotonic() - start})
        except Exception as e:  # the SDK raises ChipStackError and friends
            attempts.append({"ok": False, "error": repr(e)})
        ctrl.ExpireSessions(node_id)  # the resumption record survives: the next one resumes
    return {"attempts": attempts}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True)
    parser.add_argument(
        "--fabric", required=True, help="JSON: the controller's FabricInfo, certificates as X.509"
    )
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--connect",
        type=lambda v: int(v, 0),
        default=None,
        help="act as initiator: open CASE to this node twice (the second time resuming), "
        "write the outcome to --result-file and exit",
    )
    parser.add_argument("--result-file", default=None)
    args = parser.parse_args()

    stack, ctrl = sdk_controller(args.storage, args.fabric, server=True)
    ports = {"udp6": _own_udp_ports("udp6"), "udp": _own_udp_ports("udp")}
    Path(args.port_file).write_text(json.dumps(ports))
    if args.connect is not None:
        outcome = asyncio.run(_connect_twice(ctrl, args.connect))
        Path(args.result_file).write_text(json.dumps(outcome))
        ctrl.Shutdown()  # type: ignore[attr-defined]
        stack.Shutdown()
        return 0
    deadline = time.monotonic() + args.timeout
    while not Path(args.stop_file).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    ctrl.Shutdown()  # type: ignore[attr-defined]
    stack.Shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
