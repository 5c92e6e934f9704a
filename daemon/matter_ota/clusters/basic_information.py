"""Basic Information cluster (0x0028), Matter Core spec 11.1: who this node is."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from matter_ota import tlv
from matter_ota.im.acl import Privilege
from matter_ota.im.messages import Status
from matter_ota.im.model import Attribute, Cluster, Context, IMStatusError, constant

# connectedhomeip SpecificationDefinedRevisions.h for Matter 1.4 (the spec we implement).
DATA_MODEL_REVISION = 18
SPECIFICATION_VERSION = 0x01040000  # 11.1.6.22: major.minor.dot.reserved bytes


@dataclass(kw_only=True)
class CapabilityMinimaStruct(tlv.Struct):
    """11.1.5.1."""

    case_sessions_per_fabric: int = tlv.field(0, tlv.U16)
    subscriptions_per_fabric: int = tlv.field(1, tlv.U16)


@dataclass
class BasicInfo:
    """The values the cluster reports; NodeLabel and Location change by Write."""

    vendor_name: str
    vendor_id: int
    product_name: str
    product_id: int
    unique_id: str
    hardware_version: int = 0
    hardware_version_string: str = "0"
    software_version: int = 1
    software_version_string: str = "0.1.0"
    serial_number: str | None = None
    node_label: str = ""
    location: str = "XX"  # 11.1.6.7: "XX" when unknown
    configuration_version: int = 1
    case_sessions_per_fabric: int = 3  # 11.1.5.1: at least 3
    subscriptions_per_fabric: int = 3
    on_change: Callable[[BasicInfo], None] | None = field(default=None, repr=False)


class BasicInformationCluster(Cluster):
    """The mandatory attributes of Basic Information rev 4 (ConfigurationVersion, 1.4)."""

    ID = 0x0028
    REVISION = 4

    def __init__(self, info: BasicInfo, max_paths_per_invoke: int = 1) -> None:
        super().__init__()
        self.info = info
        self.max_paths_per_invoke = max_paths_per_invoke

    def _write_label(self, _ctx: Context, value: str) -> None:
        self.info.node_label = value
        self._saved()

    def _write_location(self, _ctx: Context, value: str) -> None:
        # 11.1.6.7: ISO 3166-1 alpha-2, upper case, or XX.
        if len(value) != 2 or not value.isascii() or not value.isalpha() \
                or not value.isupper():
            raise IMStatusError(Status.CONSTRAINT_ERROR, reason="Location is two capitals")
        self.info.location = value
        self._saved()

    def _saved(self) -> None:
        if self.info.on_change is not None:
            self.info.on_change(self.info)

    def attributes(self) -> Sequence[Attribute]:
        i = self.info
        minima = CapabilityMinimaStruct(case_sessions_per_fabric=i.case_sessions_per_fabric,
                                        subscriptions_per_fabric=i.subscriptions_per_fabric)
        attrs = [
            constant(0x0000, tlv.U16, DATA_MODEL_REVISION),
            constant(0x0001, tlv.Str(max_len=32), i.vendor_name),
            constant(0x0002, tlv.U16, i.vendor_id),
            constant(0x0003, tlv.Str(max_len=32), i.product_name),
            constant(0x0004, tlv.U16, i.product_id),
            # NodeLabel and Location: R[W] VM (11.1.6).
            Attribute(0x0005, tlv.Str(max_len=32), lambda _c: self.info.node_label,
                      self._write_label, write_privilege=Privilege.MANAGE),
            Attribute(0x0006, tlv.Str(min_len=2, max_len=2), lambda _c: self.info.location,
                      self._write_location, write_privilege=Privilege.MANAGE),
            constant(0x0007, tlv.U16, i.hardware_version),
            constant(0x0008, tlv.Str(min_len=1, max_len=64), i.hardware_version_string),
            constant(0x0009, tlv.U32, i.software_version),
            constant(0x000A, tlv.Str(min_len=1, max_len=64), i.software_version_string),
            constant(0x0012, tlv.Str(max_len=32), i.unique_id),
            constant(0x0013, CapabilityMinimaStruct, minima),
            constant(0x0015, tlv.U32, SPECIFICATION_VERSION),
            constant(0x0016, tlv.U16, self.max_paths_per_invoke),
            Attribute(0x0018, tlv.U32, lambda _c: self.info.configuration_version),
        ]
        if i.serial_number is not None:
            attrs.append(constant(0x000F, tlv.Str(max_len=32), i.serial_number))
        return attrs
