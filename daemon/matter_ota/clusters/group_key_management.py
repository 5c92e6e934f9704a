"""Group Key Management cluster (0x003F), Matter Core spec 11.2, minimal.

The provider takes part in no groups: its only key set is each fabric's IPK, installed by AddNOC
(key set 0, 11.2.6.2). GroupKeyMap and GroupTable are empty; KeySetReadAllIndices reports the IPK
key set of the accessing fabric and KeySetRead describes it without its keys (they are never
readable, 11.2.7.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matter_ota import tlv
from matter_ota.fabrics import FabricTable
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

IPK_KEY_SET_ID = 0  # 11.2.6.2: the IPK is group key set 0
TRUST_FIRST = 0  # GroupKeySecurityPolicyEnum


@dataclass(kw_only=True)
class KeySetRead(tlv.Struct):
    group_key_set_id: int = tlv.field(0, tlv.U16)


@dataclass(kw_only=True)
class GroupKeySetStruct(tlv.Struct):
    """11.2.5.3, with the epoch keys null as a read returns them."""

    group_key_set_id: int = tlv.field(0, tlv.U16)
    security_policy: int = tlv.field(1, tlv.U8)
    epoch_key0: bytes | None = tlv.field(2, tlv.Bytes(min_len=16, max_len=16), nullable=True)
    epoch_start_time0: int | None = tlv.field(3, tlv.U64, nullable=True)
    epoch_key1: bytes | None = tlv.field(4, tlv.Bytes(min_len=16, max_len=16), nullable=True)
    epoch_start_time1: int | None = tlv.field(5, tlv.U64, nullable=True)
    epoch_key2: bytes | None = tlv.field(6, tlv.Bytes(min_len=16, max_len=16), nullable=True)
    epoch_start_time2: int | None = tlv.field(7, tlv.U64, nullable=True)


@dataclass(kw_only=True)
class KeySetReadResponse(tlv.Struct):
    group_key_set: GroupKeySetStruct = tlv.field(0, GroupKeySetStruct)


@dataclass(kw_only=True)
class KeySetReadAllIndices(tlv.Struct):
    """11.2.7.5: no fields."""


@dataclass(kw_only=True)
class KeySetReadAllIndicesResponse(tlv.Struct):
    group_key_set_ids: list[int] = tlv.field(0, tlv.ArrayOf(tlv.U16))


class GroupKeyManagementCluster(Cluster):
    """See the module docstring."""

    ID = 0x003F
    REVISION = 1

    def __init__(self, fabrics: FabricTable) -> None:
        super().__init__()
        self.fabrics = fabrics

    def attributes(self) -> Sequence[Attribute]:
        return [
            Attribute(0x0000, tlv.ArrayOf(tlv.AnyType), lambda _c: [], fabric_scoped=True),
            Attribute(0x0001, tlv.ArrayOf(tlv.AnyType), lambda _c: [], fabric_scoped=True),
            constant(0x0002, tlv.U16, 0),
            constant(0x0003, tlv.U16, 1),  # 11.2.6.4: at least 1 (the IPK)
        ]

    @command(0x01, KeySetRead, privilege=Privilege.ADMINISTER, response_id=0x02)
    def key_set_read(self, ctx: Context, request: KeySetRead) -> KeySetReadResponse:
        if request.group_key_set_id != IPK_KEY_SET_ID or self.fabrics.get(ctx.fabric_index) \
                is None:
            raise IMStatusError(Status.NOT_FOUND)
        return KeySetReadResponse(group_key_set=GroupKeySetStruct(
            group_key_set_id=IPK_KEY_SET_ID, security_policy=TRUST_FIRST, epoch_key0=None,
            epoch_start_time0=0, epoch_key1=None, epoch_start_time1=None, epoch_key2=None,
            epoch_start_time2=None))

    @command(0x04, KeySetReadAllIndices, privilege=Privilege.ADMINISTER, response_id=0x05)
    def key_set_read_all_indices(self, ctx: Context, request: KeySetReadAllIndices
                                 ) -> KeySetReadAllIndicesResponse:
        ids = [IPK_KEY_SET_ID] if self.fabrics.get(ctx.fabric_index) is not None else []
        return KeySetReadAllIndicesResponse(group_key_set_ids=ids)
