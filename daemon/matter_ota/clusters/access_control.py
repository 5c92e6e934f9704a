"""Access Control cluster (0x001F), Matter Core spec 9.10: the ACL, per fabric.

The ACL attribute is a fabric-scoped list (7.13.6): a reader sees the entries of its own
fabric (entries of other fabrics are omitted, as their fields are all fabric-sensitive); a
write replaces the writer's fabric's entries and leaves the others alone. Reading and writing
need Administer (9.10.6.1). A write from a session without a fabric (PASE before AddNOC) is
refused with UNSUPPORTED_ACCESS, the only fabric it could name being none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matter_ota import tlv
from matter_ota.im import acl
from matter_ota.im.acl import AccessControl, AccessControlEntry, AuthMode, Privilege, Target
from matter_ota.im.messages import Status
from matter_ota.im.model import Attribute, Cluster, Context, IMStatusError, constant

FABRIC_INDEX_TAG = 0xFE  # 7.13.6: the FabricIndex member of every fabric-scoped struct


@dataclass(kw_only=True)
class AccessControlTargetStruct(tlv.Struct):
    """9.10.5.4: each member nullable, none meaning "any"."""

    cluster: int | None = tlv.field(0, tlv.U32, nullable=True)
    endpoint: int | None = tlv.field(1, tlv.U16, nullable=True)
    device_type: int | None = tlv.field(2, tlv.U32, nullable=True)


@dataclass(kw_only=True)
class AccessControlEntryStruct(tlv.Struct):
    """9.10.5.5; FabricIndex is set by the server, whatever a writer sends."""

    privilege: int = tlv.field(1, tlv.U8)
    auth_mode: int = tlv.field(2, tlv.U8)
    subjects: list[int] | None = tlv.field(3, tlv.ArrayOf(tlv.U64), nullable=True)
    targets: list[AccessControlTargetStruct] | None = tlv.field(
        4, tlv.ArrayOf(AccessControlTargetStruct), nullable=True)
    fabric_index: int | None = tlv.field(FABRIC_INDEX_TAG, tlv.U8, optional=True)


def to_struct(entry: AccessControlEntry) -> AccessControlEntryStruct:
    return AccessControlEntryStruct(
        privilege=entry.privilege, auth_mode=entry.auth_mode,
        subjects=list(entry.subjects) or None,
        targets=[AccessControlTargetStruct(cluster=t.cluster, endpoint=t.endpoint,
                                           device_type=t.device_type)
                 for t in entry.targets] or None,
        fabric_index=entry.fabric_index)


def from_struct(s: AccessControlEntryStruct, fabric_index: int) -> AccessControlEntry:
    """An entry of ``fabric_index``; CONSTRAINT_ERROR if the enums are out of range."""
    try:
        privilege, auth_mode = Privilege(s.privilege), AuthMode(s.auth_mode)
    except ValueError:
        raise IMStatusError(Status.CONSTRAINT_ERROR, reason="privilege or auth mode") from None
    targets = tuple(Target(t.cluster, t.endpoint, t.device_type) for t in s.targets or ())
    return AccessControlEntry(fabric_index, privilege, auth_mode, tuple(s.subjects or ()),
                              targets)


class AccessControlCluster(Cluster):
    """ACL (0x0000) and the three capacity attributes (0x0002-0x0004)."""

    ID = 0x001F
    REVISION = 2

    def __init__(self, access: AccessControl) -> None:
        super().__init__()
        self.access = access
        # Entries changed by any path (a write, RemoveFabric, a restore) are a data change.
        access.add_listener(lambda _fabric: self.changed(0x0000))

    def _read_acl(self, ctx: Context) -> list[AccessControlEntryStruct]:
        return [to_struct(e) for e in self.access.entries(ctx.fabric_index)]

    def _write_acl(self, ctx: Context, value: list[AccessControlEntryStruct]) -> None:
        if ctx.fabric_index == 0:
            raise IMStatusError(Status.UNSUPPORTED_ACCESS, reason="no accessing fabric")
        entries = [from_struct(s, ctx.fabric_index) for s in value]
        try:
            self.access.set_entries(ctx.fabric_index, entries)
        except acl.InvalidEntry as exc:
            raise IMStatusError(Status.CONSTRAINT_ERROR, reason=str(exc)) from None

    def attributes(self) -> Sequence[Attribute]:
        return [
            Attribute(0x0000, tlv.ArrayOf(AccessControlEntryStruct),
                      self._read_acl, self._write_acl, read_privilege=Privilege.ADMINISTER,
                      write_privilege=Privilege.ADMINISTER, fabric_scoped=True),
            constant(0x0002, tlv.U16, acl.SUBJECTS_PER_ENTRY),
            constant(0x0003, tlv.U16, acl.TARGETS_PER_ENTRY),
            constant(0x0004, tlv.U16, acl.ENTRIES_PER_FABRIC),
        ]
