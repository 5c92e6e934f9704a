"""Descriptor cluster (0x001D), Matter Application Cluster spec 9.5: what each endpoint is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matter_ota import tlv
from matter_ota.im.model import Attribute, Cluster, Context, DataModel


@dataclass(kw_only=True)
class DeviceTypeStruct(tlv.Struct):
    """9.5.5.1."""

    device_type: int = tlv.field(0, tlv.U32)
    revision: int = tlv.field(1, tlv.U16)


class DescriptorCluster(Cluster):
    """DeviceTypeList, ServerList, ClientList and PartsList, derived from the data model."""

    ID = 0x001D
    REVISION = 2

    def _model(self) -> DataModel:
        assert self.endpoint is not None and self.endpoint.model is not None
        return self.endpoint.model

    def _device_types(self, _ctx: Context) -> list[DeviceTypeStruct]:
        assert self.endpoint is not None
        return [DeviceTypeStruct(device_type=d.id, revision=d.revision)
                for d in self.endpoint.device_types]

    def _servers(self, _ctx: Context) -> list[int]:
        assert self.endpoint is not None
        return sorted(self.endpoint.clusters)

    def _parts(self, _ctx: Context) -> list[int]:
        # 9.5.6.4: the root endpoint's parts are every other endpoint of the node.
        assert self.endpoint is not None
        if self.endpoint.id != 0:
            return []
        return sorted(e for e in self._model().endpoints if e != 0)

    def attributes(self) -> Sequence[Attribute]:
        return [
            Attribute(0x0000, tlv.ArrayOf(DeviceTypeStruct), self._device_types),
            Attribute(0x0001, tlv.ArrayOf(tlv.U32), self._servers),
            Attribute(0x0002, tlv.ArrayOf(tlv.U32), lambda _c: []),  # no client clusters
            Attribute(0x0003, tlv.ArrayOf(tlv.U16), self._parts),
        ]
