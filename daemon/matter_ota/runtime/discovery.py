"""What this node advertises and when (Matter Core spec 4.3, 5.4.2.3, 11.18).

- While a **commissioning window** is open the node advertises ``_matterc._udp`` with ``CM=1``
  (opened by the node itself, `serve --passcode`) or ``CM=2`` (opened by an administrator), under
  a fresh random instance name each time a window opens (4.3.1). Closing the window withdraws it.
- For every **fabric** the node is on it advertises ``_matter._tcp`` as
  ``<compressed fabric id>-<node id>`` with the ``_I<compressed fabric id>`` subtype, so that
  devices on that fabric (OTA requestors) find their provider by operational discovery (4.3.2).
  The node calls :meth:`NodeDiscovery.advertise_fabric` when a fabric is added (AddNOC) or loaded
  at start, and :meth:`NodeDiscovery.withdraw_fabric` when it is removed.
"""

from __future__ import annotations

import logging

from matter_ota import dnssd
from matter_ota.dnssd import Commissionable, ServiceRecord
from matter_ota.fabrics import FabricInfo
from matter_ota.messaging.session import DEFAULT_PARAMETERS, SessionParameters
from matter_ota.runtime.mdns import Advertiser

log = logging.getLogger("matter_ota.mdns")


class NodeDiscovery:
    """The node's DNS-SD state on top of an :class:`Advertiser` (already started)."""

    def __init__(self, advertiser: Advertiser, port: int,
                 mrp: SessionParameters = DEFAULT_PARAMETERS) -> None:
        self.advertiser = advertiser
        self.port = port
        self.mrp = mrp
        self.commissionable: ServiceRecord | None = None
        self.operational: dict[int, ServiceRecord] = {}  # by fabric index

    async def open_commissioning_window(self, params: Commissionable) -> ServiceRecord:
        """Advertise ``_matterc._udp`` (replacing a previous window's record)."""
        await self.close_commissioning_window()
        record = params.record(dnssd.random_instance_name(), self.port)
        self.commissionable = await self.advertiser.publish(
            record, rename=lambda _: dnssd.random_instance_name())
        return self.commissionable

    async def close_commissioning_window(self) -> None:
        """Stop advertising as commissionable."""
        if self.commissionable is not None:
            record, self.commissionable = self.commissionable, None
            await self.advertiser.withdraw(record)

    async def advertise_fabric(self, fabric: FabricInfo) -> ServiceRecord:
        """Advertise ``_matter._tcp`` for ``fabric``; re-announce if it is already advertised.

        Raises :class:`~matter_ota.runtime.mdns.NameConflict` when another node answers for the
        same ``<fabric>-<node>`` name (a duplicate node id on the fabric).
        """
        record = dnssd.operational_record(fabric.compressed_fabric_id, fabric.node_id, self.port,
                                          self.mrp)
        current = self.operational.get(fabric.fabric_index)
        if current is not None and current.fqdn == record.fqdn:
            await self.advertiser.update(record)
        else:
            if current is not None:
                await self.advertiser.withdraw(current)
            record = await self.advertiser.publish(record)
        self.operational[fabric.fabric_index] = record
        return record

    async def withdraw_fabric(self, fabric_index: int) -> None:
        """Stop advertising on the fabric with ``fabric_index`` (RemoveFabric)."""
        record = self.operational.pop(fabric_index, None)
        if record is not None:
            await self.advertiser.withdraw(record)
