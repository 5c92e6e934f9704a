"""Network Commissioning cluster (0x0031), Matter Core spec 11.9, as an Ethernet interface.

The provider is an on-network device: its network is already up, so the commissioner has no
credentials to give it. With the EthernetNetworkInterface feature the cluster has no commands;
it reports one network, connected (11.9.6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matter_ota import tlv
from matter_ota.im.acl import Privilege
from matter_ota.im.model import Attribute, Cluster, Context, Nullable, constant

ETHERNET_NETWORK_INTERFACE = 0x04  # 11.9.4 feature bit 2 (EthernetNetworkInterface)


@dataclass(kw_only=True)
class NetworkInfoStruct(tlv.Struct):
    """11.9.5.1."""

    network_id: bytes = tlv.field(0, tlv.Bytes(min_len=1, max_len=32))
    connected: bool = tlv.field(1, tlv.Bool)


class NetworkCommissioningCluster(Cluster):
    """MaxNetworks, Networks, InterfaceEnabled and the Last* attributes of an Ethernet node."""

    ID = 0x0031
    REVISION = 1
    FEATURE_MAP = ETHERNET_NETWORK_INTERFACE

    def __init__(self, interface: str = "eth0") -> None:
        super().__init__()
        # 11.9.6.2: an Ethernet network id is the interface name (or a MAC) the node picks.
        self.network_id = (interface or "eth0").encode()[:32]
        self.interface_enabled = True

    def _write_enabled(self, _ctx: Context, value: bool) -> None:
        self.interface_enabled = value

    def attributes(self) -> Sequence[Attribute]:
        networks = [NetworkInfoStruct(network_id=self.network_id, connected=True)]
        return [
            constant(0x0000, tlv.U8, 1),
            Attribute(0x0001, tlv.ArrayOf(NetworkInfoStruct), lambda _c: networks,
                      read_privilege=Privilege.ADMINISTER),
            Attribute(0x0004, tlv.Bool, lambda _c: self.interface_enabled, self._write_enabled,
                      write_privilege=Privilege.ADMINISTER),
            Attribute(0x0005, Nullable(tlv.U8), lambda _c: None,
                      read_privilege=Privilege.ADMINISTER),
            Attribute(0x0006, Nullable(tlv.Bytes(min_len=1, max_len=32)), lambda _c: None,
                      read_privilege=Privilege.ADMINISTER),
            Attribute(0x0007, Nullable(tlv.I32), lambda _c: None,
                      read_privilege=Privilege.ADMINISTER),
        ]
