"""The provider's data model: endpoint 0 as Root Node and OTA Provider."""

from __future__ import annotations

from matter_ota.clusters.access_control import AccessControlCluster
from matter_ota.clusters.basic_information import BasicInfo, BasicInformationCluster
from matter_ota.clusters.descriptor import DescriptorCluster
from matter_ota.clusters.ota_provider import OtaProviderCluster, UpdateDecider
from matter_ota.im.acl import AccessControl
from matter_ota.im.model import DataModel, DeviceType, Endpoint
from matter_ota.im.server import MAX_PATHS_PER_INVOKE

# Device Library spec: Root Node 0x0016 (revision 3 in Matter 1.4), OTA Provider 0x0014 rev 1.
ROOT_NODE = DeviceType(0x0016, 3)
OTA_PROVIDER = DeviceType(0x0014, 1)


def build_root_node(info: BasicInfo, access: AccessControl, decider: UpdateDecider
                    ) -> DataModel:
    """A data model with endpoint 0 holding the root-node clusters and the OTA Provider."""
    model = DataModel()
    root = Endpoint(0, [ROOT_NODE, OTA_PROVIDER])
    root.add(DescriptorCluster())
    root.add(AccessControlCluster(access))
    root.add(BasicInformationCluster(info, MAX_PATHS_PER_INVOKE))
    root.add(OtaProviderCluster(decider))
    model.add_endpoint(root)
    return model
