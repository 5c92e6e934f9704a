"""connectedhomeip's controller as an OTA requestor's client side, against our daemon over CASE.

Run by ``test_ota_chip.py`` inside the test's network namespace and a private root; not a
pytest module. On the fabric our CA issued (certificates in X.509, as the SDK takes them) the
SDK finds our daemon by operational discovery, opens CASE and invokes the OTA Provider
commands as a requestor does: QueryImage, ApplyUpdateRequest with the token it got,
NotifyUpdateApplied, and an ApplyUpdateRequest with a made-up token. Writes the answers as
JSON to ``--result-file``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from case_chip_peer import sdk_controller  # the same SDK controller set-up
from controller_main import _plain


async def _walk(ctrl: Any, node: int) -> dict[str, Any]:
    from chip.clusters import Objects as Clusters

    ota = Clusters.OtaSoftwareUpdateProvider.Commands
    out: dict[str, Any] = {}
    await ctrl.GetConnectedDevice(node, allowPASE=False, timeoutMs=30000)
    query = ota.QueryImage(vendorID=0xFFF1, productID=0x8001, softwareVersion=1,
                           protocolsSupported=[0], hardwareVersion=1,
                           requestorCanConsent=False)
    answer = await ctrl.SendCommand(node, 0, query)
    out["query"] = {"type": type(answer).__name__, "value": _plain(answer)}
    token = answer.updateToken
    apply = await ctrl.SendCommand(node, 0, ota.ApplyUpdateRequest(updateToken=token,
                                                                   newVersion=2))
    out["apply"] = _plain(apply)
    try:
        await ctrl.SendCommand(node, 0, ota.NotifyUpdateApplied(updateToken=token,
                                                                softwareVersion=2))
        out["notify"] = "ok"
    except Exception as e:  # InteractionModelError carries the status
        out["notify"] = int(getattr(e, "status", -1))
    try:
        await ctrl.SendCommand(node, 0, ota.ApplyUpdateRequest(updateToken=b"\x01" * 16,
                                                               newVersion=2))
        out["foreign_token"] = "accepted"
    except Exception as e:
        out["foreign_token"] = int(getattr(e, "status", -1))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True)
    parser.add_argument("--fabric", required=True)
    parser.add_argument("--node", type=lambda v: int(v, 0), required=True)
    parser.add_argument("--result-file", required=True)
    args = parser.parse_args()

    stack, ctrl = sdk_controller(args.storage, args.fabric, server=False)
    try:
        result: dict[str, Any] = asyncio.run(_walk(ctrl, args.node))
    except Exception as e:
        result = {"error": repr(e)}
    Path(args.result_file).write_text(json.dumps(result))
    ctrl.Shutdown()  # type: ignore[attr-defined]
    stack.Shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
