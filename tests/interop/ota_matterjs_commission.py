"""connectedhomeip's controller commissions matter.js's OTA requestor onto our fabric and points
it at our daemon; run by ``test_ota_matterjs.py`` inside the namespace and a private root.

The controller runs on the fabric our CA issued (``case_chip_peer._controller``); the SDK's
Python commissioning flow asks a credential provider for the device's NOC, and ours signs the
device's CSR with the same CA (``--ca``: root key, RCAC, fabric id, IPK epoch key). Steps:
PASE to the device at ``--device``, ArmFailSafe, attestation and CSR, AddTrustedRootCertificate,
AddNOC (our CA, our IPK, the controller as CASE admin), CommissioningComplete over CASE, then
AnnounceOTAProvider naming our daemon's node id. Writes ``{"ok": ...}`` to ``--result-file``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from case_chip_peer import sdk_controller

from matter_ota import tlv
from matter_ota.crypto import certs
from matter_ota.crypto.certs import MatterCertificate
from matter_ota.fabrics import CertificateAuthority, private_key_from_bytes

TEMPORARY_NODE = 0x0000_0000_0000_FFF0


def _authority(doc: dict[str, Any]) -> CertificateAuthority:
    ca = CertificateAuthority(
        fabric_id=doc["fabric_id"], now=doc["now"], with_icac=False,
        ipk_epoch_key=bytes.fromhex(doc["ipk"]),
        root_key=private_key_from_bytes(bytes.fromhex(doc["root_key"])))
    ca.rcac = MatterCertificate.from_tlv(bytes.fromhex(doc["rcac"]))  # the very same RCAC
    return ca


class OurCredentials:
    """The SDK flow's credential provider: NOCs signed by our CA."""

    def __init__(self, ca: CertificateAuthority, node_id: int, admin: int) -> None:
        self.ca, self.node_id, self.admin = ca, node_id, admin

    async def get_attestation_nonce(self) -> bytes:
        import os

        return os.urandom(32)

    async def get_csr_nonce(self) -> bytes:
        import os

        return os.urandom(32)

    async def get_commissionee_credentials(self, request: Any) -> Any:
        from chip import commissioning

        elements = tlv.decode(request.csr_elements)
        csr_der = elements[1]  # NOCSRElements: 1 = csr, 2 = CSRNonce (11.18.6.6)
        noc = certs.make_noc(certs.csr_public_key(csr_der), issuer=self.ca.rcac,
                             issuer_key=self.ca.root_key, node_id=self.node_id,
                             fabric_id=self.ca.fabric_id, now=self.ca.now)
        return commissioning.GetCommissioneeCredentialsResponse(
            rcac=self.ca.rcac.to_tlv(), noc=noc.to_tlv(), icac=None,
            ipk=self.ca.ipk_epoch_key, case_admin_node=self.admin,
            admin_vendor_id=0xFFF1, node_id=self.node_id, fabric_id=self.ca.fabric_id)


async def _commission(ctrl: Any, args: argparse.Namespace, ca: CertificateAuthority
                      ) -> dict[str, Any]:
    from chip import commissioning
    from chip.clusters import Objects as Clusters
    from chip.commissioning.commissioning_flow_blocks import CommissioningFlowBlocks

    out: dict[str, Any] = {}
    await ctrl.EstablishPASESessionIP(args.device, args.passcode, TEMPORARY_NODE,
                                      port=args.device_port)
    out["pase"] = True
    blocks = CommissioningFlowBlocks(
        ctrl, OurCredentials(ca, args.requestor_node, args.admin_node),
        logging.getLogger("commission"))
    await blocks.arm_failsafe(TEMPORARY_NODE)
    params = commissioning.Parameters(
        pase_param=commissioning.PaseOverIPParameters(
            setup_pin=args.passcode, temporary_nodeid=TEMPORARY_NODE,
            long_discriminator=args.discriminator),
        regulatory_config=commissioning.RegulatoryConfig(
            location_type=commissioning.RegulatoryLocationType.INDOOR_OUTDOOR,
            country_code="XX"),
        fabric_label="ota-interop",
        commissionee_info=commissioning.CommissioneeInfo(endpoints={0},
                                                         is_ethernet_device=True),
        wifi_credentials=None,  # type: ignore[arg-type]
        thread_credentials=None,  # type: ignore[arg-type]
    )
    node = await blocks.operational_credentials_commissioning(params, TEMPORARY_NODE)
    out["noc_added"] = node
    ctrl.MarkSessionDefunct(TEMPORARY_NODE)
    await blocks.complete_commission(node)
    out["commissioned"] = True
    announce = Clusters.OtaSoftwareUpdateRequestor.Commands.AnnounceOTAProvider(
        providerNodeID=args.provider_node, vendorID=0xFFF1,
        announcementReason=Clusters.OtaSoftwareUpdateRequestor.Enums
        .AnnouncementReasonEnum.kUrgentUpdateAvailable,
        endpoint=0)
    await ctrl.SendCommand(node, 0, announce)
    out["announced"] = True
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True)
    parser.add_argument("--fabric", required=True, help="the controller's fabric (X.509 form)")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--device-port", type=int, required=True)
    parser.add_argument("--passcode", type=int, required=True)
    parser.add_argument("--discriminator", type=int, required=True)
    parser.add_argument("--requestor-node", type=lambda v: int(v, 0), required=True)
    parser.add_argument("--admin-node", type=lambda v: int(v, 0), required=True)
    parser.add_argument("--provider-node", type=lambda v: int(v, 0), required=True)
    parser.add_argument("--result-file", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    ca = _authority(json.loads(Path(args.ca).read_text()))
    stack, ctrl = sdk_controller(args.storage, args.fabric, server=False)
    try:
        result: dict[str, Any] = asyncio.run(_commission(ctrl, args, ca))
        result["ok"] = True
    except Exception as e:
        logging.exception("commissioning failed")
        result = {"ok": False, "error": repr(e)}
    Path(args.result_file).write_text(json.dumps(result))
    ctrl.Shutdown()  # type: ignore[attr-defined]
    stack.Shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
