"""General Diagnostics cluster (0x0033), Matter Core spec 11.12, minimal (Root Node requires it).

The mandatory attributes: NetworkInterfaces (from a provider the runtime supplies), RebootCount
(kept by the runtime across starts), UpTime (from the node's clock) and
TestEventTriggersEnabled (false: the provider has no test event triggers); the mandatory
commands: TestEventTrigger, always refused with CONSTRAINT_ERROR as there is no enable key
(11.12.7.1, as connectedhomeip answers a key it does not know), and TimeSnapshot.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from matter_ota import tlv
from matter_ota.im.acl import Privilege
from matter_ota.im.messages import Status
from matter_ota.im.model import (
    Attribute,
    Cluster,
    Context,
    IMStatusError,
    command,
    constant,
)

ENABLE_KEY_LENGTH = 16  # 11.12.7.1


class InterfaceType(enum.IntEnum):
    """InterfaceTypeEnum (11.12.4.3)."""

    UNSPECIFIED = 0
    WIFI = 1
    ETHERNET = 2
    CELLULAR = 3
    THREAD = 4


@dataclass(kw_only=True)
class NetworkInterface(tlv.Struct):
    """NetworkInterface (11.12.5.1)."""

    name: str = tlv.field(0, tlv.Str(max_len=32))
    is_operational: bool = tlv.field(1, tlv.Bool)
    off_premise_services_reachable_ipv4: bool | None = tlv.field(2, tlv.Bool, nullable=True)
    off_premise_services_reachable_ipv6: bool | None = tlv.field(3, tlv.Bool, nullable=True)
    hardware_address: bytes = tlv.field(4, tlv.Bytes(max_len=8))
    ipv4_addresses: list[bytes] = tlv.field(5, tlv.ArrayOf(tlv.Bytes(max_len=4), max_items=4))
    ipv6_addresses: list[bytes] = tlv.field(6, tlv.ArrayOf(tlv.Bytes(max_len=16), max_items=8))
    type: int = tlv.field(7, tlv.U8)


@dataclass(kw_only=True)
class TestEventTrigger(tlv.Struct):
    """11.12.7.1 (the key's length is checked by the handler: CONSTRAINT_ERROR)."""

    __test__ = False  # not a pytest class

    enable_key: bytes = tlv.field(0, tlv.Bytes(max_len=64))
    event_trigger: int = tlv.field(1, tlv.U64)


@dataclass(kw_only=True)
class TimeSnapshot(tlv.Struct):
    """11.12.7.2: no fields."""


@dataclass(kw_only=True)
class TimeSnapshotResponse(tlv.Struct):
    """11.12.7.3."""

    system_time_ms: int = tlv.field(0, tlv.U64)
    posix_time_ms: int | None = tlv.field(1, tlv.U64, nullable=True)


class GeneralDiagnosticsCluster(Cluster):
    """See the module docstring. ``started_at`` is the node time (seconds) the daemon started;
    ``posix_ms(now)`` maps node time to Unix milliseconds (None: no trusted wall clock)."""

    ID = 0x0033
    REVISION = 2

    def __init__(self, *, reboot_count: int, started_at: float,
                 interfaces: Callable[[], list[NetworkInterface]] = list,
                 posix_ms: Callable[[float], int | None] = lambda _now: None) -> None:
        super().__init__()
        self.reboot_count = reboot_count & 0xFFFF
        self.started_at = started_at
        self.interfaces = interfaces
        self.posix_ms = posix_ms

    def _uptime(self, ctx: Context) -> int:
        return max(0, int(ctx.now - self.started_at))

    def attributes(self) -> Sequence[Attribute]:
        return [
            Attribute(0x0000, tlv.ArrayOf(NetworkInterface, max_items=8),
                      lambda _c: self.interfaces()[:8]),
            constant(0x0001, tlv.U16, self.reboot_count),
            Attribute(0x0002, tlv.U64, self._uptime),
            constant(0x0008, tlv.Bool, False),
        ]

    @command(0x00, TestEventTrigger, privilege=Privilege.MANAGE)
    def test_event_trigger(self, ctx: Context, request: TestEventTrigger) -> None:
        # No enable key is configured: every key (all zeros, wrong length, any other) is refused.
        raise IMStatusError(Status.CONSTRAINT_ERROR, reason="test event triggers are disabled")

    @command(0x01, TimeSnapshot, privilege=Privilege.OPERATE, response_id=0x02)
    def time_snapshot(self, ctx: Context, request: TimeSnapshot) -> TimeSnapshotResponse:
        system_ms = max(0, int((ctx.now - self.started_at) * 1000))
        return TimeSnapshotResponse(system_time_ms=system_ms, posix_time_ms=self.posix_ms(ctx.now))
