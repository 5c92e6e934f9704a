"""Drive the connectedhomeip Python controller; run by ``chip_controller.py``, not by pytest.

Runs inside the private root (see ``private_root.py``) and inside the test's network
namespace. Writes the outcome as JSON to ``--result`` (a file, because the SDK's C log shares
stdout and can interleave with any line we print).

Sub-commands::

    pase --ip A --port P --passcode N [--node-id X] [--timeout S]
    pase-read --ip A --port P --passcode N [--node-id X] [--timeout S]
        PASE, then one IM Read (BasicInformation.VendorID) over the PASE session: exercises the
        secure message path (AES-CCM both ways, MRP acks) whatever the read's outcome
    pase-im --ip A --port P --passcode N [--node-id X] [--timeout S]
        PASE, then the Interaction Model as a commissioner uses it: typed reads of Basic
        Information and Descriptor, a wildcard read decoded into cluster objects, a NodeLabel
        write read back, QueryImage invokes (refused: the provider answers CASE only), and a
        subscription that sees a change
    discover --query TYPE[=VALUE] ... [--timeout S]      DiscoverCommissionableNodes
    commission --passcode N --discriminator D [--code C] [--node-id X] [--timeout S]
        CommissionOnNetwork (or CommissionWithCode with --code): discovery, PASE, device
        attestation against the PAA trust store, CSR, NOC, operational discovery, CASE,
        CommissioningComplete; then over CASE: Basic Information, the node's fabric, QueryImage
    operate [--node-id X] [--timeout S]   (with --reuse-fabric)
        the fabric of an earlier `commission` in the same storage: operational discovery,
        CASE, Basic Information read and QueryImage
    pase-code --code C [--node-id X] [--timeout S]         EstablishPASESession (discovers)
    payload --cases FILE                                   SDK setup payload parse/generate
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Awaitable, Callable
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
        reuse = getattr(args, "reuse_fabric", False)
        if reuse and self.cam.activeCaList and self.cam.activeCaList[0].adminList:
            # The fabric of an earlier run in this storage (its root key, IPK, node id).
            self.ca = self.cam.activeCaList[0]
            self.admin = self.ca.adminList[0]
        else:
            self.ca = self.cam.NewCertificateAuthority()
            self.admin = self.ca.NewFabricAdmin(vendorId=0xFFF1, fabricId=1)
        self.ctrl = self.admin.NewController(nodeId=112233,
                                             paaTrustStorePath=args.paa_trust_store)

    def shutdown(self) -> None:
        self.ctrl.Shutdown()
        self.cam.Shutdown()
        self.stack.Shutdown()


async def _reported(controller: Controller, work: Awaitable[dict[str, Any]]) -> int:
    """Await ``work`` and write its outcome: ok with the fields it returns, or the timeout, or
    the SDK's error (ChipStackError code and message); the controller is shut down either way."""
    from chip.exceptions import ChipStackError

    start = time.monotonic()
    try:
        fields = await work
    except TimeoutError:
        _report(ok=False, error="timeout", seconds=time.monotonic() - start)
        return 1
    except ChipStackError as e:
        _report(ok=False, error="chip", code=e.err, message=str(e),
                seconds=time.monotonic() - start)
        return 1
    finally:
        controller.shutdown()
    _report(ok=True, **fields, seconds=time.monotonic() - start)
    return 0


async def _pase(args: argparse.Namespace) -> int:
    controller = Controller(args)

    async def work() -> dict[str, Any]:
        await asyncio.wait_for(
            controller.ctrl.EstablishPASESessionIP(args.ip, args.passcode, args.node_id,
                                                   args.port),
            args.timeout,
        )
        return {}

    return await _reported(controller, work())


async def _pase_read(args: argparse.Namespace) -> int:
    import chip.clusters as Clusters
    from chip.exceptions import ChipStackError

    controller = Controller(args)

    async def work() -> dict[str, Any]:
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
        return {"read": read}

    return await _reported(controller, work())


def _plain(value: Any) -> Any:
    """A JSON-able rendering of an SDK value (dataclasses, enums, bytes, nested lists)."""
    import dataclasses
    import enum

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return int(value.value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _typed(attributes: dict[Any, Any]) -> dict[str, Any]:
    """{"Cluster.Attribute": {"type": type name, "value": plain value}}."""
    out = {}
    for cluster, values in attributes.items():
        for attribute, value in values.items():
            if not isinstance(attribute, type):  # the DataVersion entry
                continue
            out[f"{cluster.__name__}.{attribute.__name__}"] = {
                "type": type(value).__name__, "value": _plain(value)}
    return out


async def _invoke_status(call: Any) -> dict[str, Any]:
    """An invoke's response, or the IM status the SDK raised for it."""
    from chip.interaction_model import InteractionModelError

    try:
        response = await call
    except InteractionModelError as e:
        return {"status": int(e.status)}
    return {"type": type(response).__name__, "value": _plain(response)}


async def _pase_im(args: argparse.Namespace) -> int:
    import chip.clusters as Clusters
    from chip.exceptions import ChipStackError

    controller = Controller(args)
    ctrl = controller.ctrl
    node = args.node_id
    start = time.monotonic()
    steps: dict[str, Any] = {}
    try:
        await asyncio.wait_for(
            ctrl.EstablishPASESessionIP(args.ip, args.passcode, node, args.port), args.timeout)
        basic = Clusters.BasicInformation
        read = await ctrl.ReadAttribute(node, [(0, basic), (0, Clusters.Descriptor)])
        steps["typed"] = _typed(read[0])
        everything = await ctrl.ReadAttribute(node, [()], returnClusterObject=True)
        steps["clusters"] = {
            cluster.__name__: {"type": type(obj).__name__, "value": _plain(obj)}
            for cluster, obj in everything[0].items()}
        written = await ctrl.WriteAttribute(node, [(0, basic.Attributes.NodeLabel("lab"))])
        steps["write"] = [int(s.Status) for s in written]
        label = await ctrl.ReadAttribute(node, [(0, basic.Attributes.NodeLabel)])
        steps["label"] = label[0][basic][basic.Attributes.NodeLabel]
        query = Clusters.OtaSoftwareUpdateProvider.Commands.QueryImage(
            vendorID=0xFFF1, productID=0x8000, softwareVersion=1, protocolsSupported=[0])
        # The provider answers CASE sessions of its fabrics only: over PASE the SDK raises
        # InteractionModelError carrying the status.
        steps["query"] = await _invoke_status(ctrl.SendCommand(node, 0, query))
        steps["timed_query"] = await _invoke_status(
            ctrl.SendCommand(node, 0, query, timedRequestTimeoutMs=2000))
        try:
            await ctrl.SendCommand(node, 0, Clusters.OtaSoftwareUpdateProvider.Commands
                                   .ApplyUpdateRequest(updateToken=b"short", newVersion=2))
            steps["bad_apply"] = "accepted"
        except Exception as e:  # the SDK raises InteractionModelError carrying the status
            steps["bad_apply"] = int(getattr(e, "status", -1))
        sub = await ctrl.ReadAttribute(node, [(0, basic.Attributes.NodeLabel)],
                                       reportInterval=(0, 2))
        changed: asyncio.Queue[Any] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        sub.SetAttributeUpdateCallback(
            lambda path, transaction: loop.call_soon_threadsafe(
                changed.put_nowait,
                transaction.GetAttribute(path)))
        await ctrl.WriteAttribute(node, [(0, basic.Attributes.NodeLabel("sub"))])
        steps["subscription_saw"] = await asyncio.wait_for(changed.get(), 10)
        await asyncio.sleep(5)  # keep-alives every 2 s; a missed one would make it resubscribe
        sub.Shutdown()
    except TimeoutError:
        _report(ok=False, error="timeout", steps=steps, seconds=time.monotonic() - start)
        return 1
    except ChipStackError as e:
        _report(ok=False, error="chip", code=e.err, message=str(e), steps=steps,
                seconds=time.monotonic() - start)
        return 1
    except Exception as e:  # the SDK raises assorted types; the test shows them
        _report(ok=False, error=type(e).__name__, message=str(e), steps=steps,
                seconds=time.monotonic() - start)
        return 1
    finally:
        controller.shutdown()
    _report(ok=True, steps=steps, seconds=time.monotonic() - start)
    return 0


async def _discover(args: argparse.Namespace) -> int:
    """One DiscoverCommissionableNodes per ``--query TYPE[=VALUE]``, results in order."""
    from chip import discovery

    controller = Controller(args)
    start = time.monotonic()
    results = []
    try:
        for query in args.query:
            name, _, value = query.partition("=")
            nodes = await controller.ctrl.DiscoverCommissionableNodes(
                filterType=discovery.FilterType[name], filter=value or None,
                stopOnFirst=args.stop_on_first, timeoutSecond=args.timeout)
            found = []
            for node in nodes or []:
                fields = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
                found.append(fields)
            results.append({"query": query, "nodes": found})
    finally:
        controller.shutdown()
    _report(ok=True, results=results, seconds=time.monotonic() - start)
    return 0


async def _pase_code(args: argparse.Namespace) -> int:
    controller = Controller(args)

    async def work() -> dict[str, Any]:
        await asyncio.wait_for(controller.ctrl.EstablishPASESession(args.code, args.node_id),
                               args.timeout)
        return {}

    return await _reported(controller, work())


def _sdk_payload_calls(case: dict[str, Any]) -> dict[str, Any]:
    """The SDK's view of one case: its parse of our codes, and its own codes."""
    from chip.exceptions import ChipStackError
    from chip.setup_payload import SetupPayload

    numbers = (case["passcode"], case["vendor_id"], case["product_id"], case["discriminator"],
               case["flow"], case["capabilities"], 0)
    calls = {
        "qr_parsed": lambda: dict(SetupPayload().ParseQrCode(case["qr"]).attributes),
        "manual_parsed": lambda: dict(
            SetupPayload().ParseManualPairingCode(case["manual"]).attributes),
        "sdk_qr": lambda: SetupPayload().GenerateQrCode(*numbers),
        "sdk_manual": lambda: SetupPayload().GenerateManualPairingCode(*numbers),
    }
    entry: dict[str, Any] = {"case": case}
    for key, call in calls.items():
        try:
            entry[key] = call()
        except ChipStackError as e:
            entry[key] = {"error": str(e)}
    return entry


async def _payload(args: argparse.Namespace) -> int:
    """Parse each of our codes with the SDK, and have the SDK generate its own."""
    controller = Controller(args)  # initialises the SDK, which SetupPayload needs
    with open(args.cases) as f:
        cases = json.load(f)
    try:
        out = [_sdk_payload_calls(case) for case in cases]
    finally:
        controller.shutdown()
    _report(ok=True, results=out)
    return 0


def _pase_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ip", required=True)
    p.add_argument("--port", type=int, default=5540)
    p.add_argument("--passcode", type=int, required=True)
    p.add_argument("--node-id", type=int, default=0x1234)
    p.add_argument("--timeout", type=float, default=20.0)


async def _operate(ctrl: Any, node: int, steps: dict[str, Any]) -> None:
    """Over CASE: Basic Information, the node's view of our fabric, a QueryImage."""
    import chip.clusters as Clusters

    basic = Clusters.BasicInformation
    read = await ctrl.ReadAttribute(node, [(0, basic.Attributes.VendorID),
                                           (0, basic.Attributes.ProductID),
                                           (0, basic.Attributes.UniqueID)])
    steps["basic"] = _typed(read[0])
    creds = Clusters.OperationalCredentials
    read = await ctrl.ReadAttribute(node, [(0, creds.Attributes.Fabrics),
                                           (0, creds.Attributes.CommissionedFabrics),
                                           (0, creds.Attributes.CurrentFabricIndex)])
    steps["credentials"] = _typed(read[0])
    acl = await ctrl.ReadAttribute(node, [(0, Clusters.AccessControl.Attributes.Acl)])
    steps["acl"] = _typed(acl[0])
    query = Clusters.OtaSoftwareUpdateProvider.Commands.QueryImage(
        vendorID=0xFFF1, productID=0x8000, softwareVersion=1, protocolsSupported=[0])
    response = await ctrl.SendCommand(node, 0, query)
    steps["query"] = {"type": type(response).__name__, "value": _plain(response)}
    # Everything above ran on a CASE session: the SDK holds no PASE session after
    # commissioning; this raises if there were none.
    await ctrl.GetConnectedDevice(node, allowPASE=False, timeoutMs=5000)
    steps["session"] = "CASE"


async def _reported_steps(
    controller: Controller, work: Callable[[dict[str, Any], float], Awaitable[None]]
) -> int:
    """Run ``work(steps, start)`` and write its outcome with the steps it recorded: ok, or any
    exception's type, message and SDK code; the controller is shut down either way."""
    start = time.monotonic()
    steps: dict[str, Any] = {}
    try:
        await work(steps, start)
    except Exception as e:  # the SDK raises assorted types; the test shows them
        _report(ok=False, error=type(e).__name__, message=str(e),
                code=getattr(e, "err", None), steps=steps, seconds=time.monotonic() - start)
        return 1
    finally:
        controller.shutdown()
    _report(ok=True, steps=steps, seconds=time.monotonic() - start)
    return 0


async def _commission(args: argparse.Namespace) -> int:
    from chip import discovery

    controller = Controller(args)
    ctrl = controller.ctrl

    async def work(steps: dict[str, Any], start: float) -> None:
        if args.code:
            node = await asyncio.wait_for(ctrl.CommissionWithCode(args.code, args.node_id),
                                          args.timeout)
        else:
            node = await asyncio.wait_for(ctrl.CommissionOnNetwork(
                args.node_id, args.passcode, filterType=discovery.FilterType.LONG_DISCRIMINATOR,
                filter=args.discriminator), args.timeout)
        steps["node_id"] = node
        steps["compressed_fabric_id"] = f"{ctrl.GetCompressedFabricId():016X}"
        steps["commissioned_s"] = time.monotonic() - start
        await _operate(ctrl, node, steps)

    return await _reported_steps(controller, work)


async def _operate_cmd(args: argparse.Namespace) -> int:
    controller = Controller(args)

    async def work(steps: dict[str, Any], start: float) -> None:
        steps["compressed_fabric_id"] = f"{controller.ctrl.GetCompressedFabricId():016X}"
        await asyncio.wait_for(_operate(controller.ctrl, args.node_id, steps), args.timeout)

    return await _reported_steps(controller, work)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True, help="controller's JSON storage file")
    parser.add_argument("--paa-trust-store", required=True, help="dir of PAA certificates")
    parser.add_argument("--result", required=True, help="file to write the JSON outcome to")
    parser.add_argument("--reuse-fabric", action="store_true",
                        help="use the CA and fabric already in --storage")
    sub = parser.add_subparsers(dest="command", required=True)
    pase = sub.add_parser("pase", help="open a PASE session by IP")
    _pase_options(pase)
    pase.set_defaults(func=_pase)
    pase_read = sub.add_parser("pase-read", help="PASE by IP, then one IM read over it")
    _pase_options(pase_read)
    pase_read.set_defaults(func=_pase_read)
    pase_im = sub.add_parser("pase-im", help="PASE by IP, then reads, write, invoke, subscribe")
    _pase_options(pase_im)
    pase_im.set_defaults(func=_pase_im)
    disc = sub.add_parser("discover", help="DiscoverCommissionableNodes")
    disc.add_argument("--query", action="append", required=True,
                      help="chip.discovery.FilterType name, =VALUE for the filter (repeatable)")
    disc.add_argument("--stop-on-first", action="store_true")
    disc.add_argument("--timeout", type=int, default=5)
    disc.set_defaults(func=_discover)
    code = sub.add_parser("pase-code", help="EstablishPASESession from a setup code")
    code.add_argument("--code", required=True)
    code.add_argument("--node-id", type=int, default=0x1234)
    code.add_argument("--timeout", type=float, default=30.0)
    code.set_defaults(func=_pase_code)
    payload = sub.add_parser("payload", help="SDK setup payload parser/generator")
    payload.add_argument("--cases", required=True, help="JSON list of payloads")
    payload.set_defaults(func=_payload)
    com = sub.add_parser("commission", help="CommissionOnNetwork / CommissionWithCode")
    com.add_argument("--passcode", type=int, default=20202021)
    com.add_argument("--discriminator", type=int, default=3840)
    com.add_argument("--code", default=None, help="manual code or QR payload instead")
    com.add_argument("--node-id", type=int, default=0x1234)
    com.add_argument("--timeout", type=float, default=90.0)
    com.set_defaults(func=_commission)
    op = sub.add_parser("operate", help="CASE to an already commissioned node")
    op.add_argument("--node-id", type=int, default=0x1234)
    op.add_argument("--timeout", type=float, default=30.0)
    op.set_defaults(func=_operate_cmd)
    args = parser.parse_args()
    global RESULT_PATH
    RESULT_PATH = args.result
    return asyncio.run(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
