"""General Commissioning cluster (0x0030), Matter Core spec 11.10: the fail-safe.

ArmFailSafe, SetRegulatoryConfig and CommissioningComplete answer with a response carrying a
CommissioningErrorEnum (11.10.5.1); a refusal of the commissioning state machine becomes that
code here, in :func:`_error_code`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from matter_ota import tlv
from matter_ota.commissioning.commissionee import (
    FAILSAFE_EXPIRY_LENGTH_S,
    MAX_CUMULATIVE_FAILSAFE_S,
    Commissionee,
)
from matter_ota.commissioning.machine import CommissioningRefused, Refusal
from matter_ota.im.acl import Privilege
from matter_ota.im.messages import Status
from matter_ota.im.model import Attribute, Cluster, Context, IMStatusError, command, constant


class CommissioningError(enum.IntEnum):
    """CommissioningErrorEnum (11.10.5.1)."""

    OK = 0
    VALUE_OUTSIDE_RANGE = 1
    INVALID_AUTHENTICATION = 2
    NO_FAIL_SAFE = 3
    BUSY_WITH_OTHER_ADMIN = 4


class RegulatoryLocation(enum.IntEnum):
    """RegulatoryLocationTypeEnum (11.10.5.2)."""

    INDOOR = 0
    OUTDOOR = 1
    INDOOR_OUTDOOR = 2


_ERRORS = {
    Refusal.NO_FAILSAFE: CommissioningError.NO_FAIL_SAFE,
    Refusal.BUSY_WITH_OTHER_ADMIN: CommissioningError.BUSY_WITH_OTHER_ADMIN,
    Refusal.INVALID_AUTHENTICATION: CommissioningError.INVALID_AUTHENTICATION,
}


def _error_code(exc: CommissioningRefused) -> CommissioningError:
    code = _ERRORS.get(exc.refusal)
    if code is None:
        raise IMStatusError(Status.FAILURE, reason=exc.reason) from None
    return code


@dataclass(kw_only=True)
class BasicCommissioningInfo(tlv.Struct):
    """11.10.4.2."""

    fail_safe_expiry_length_seconds: int = tlv.field(0, tlv.U16)
    max_cumulative_failsafe_seconds: int = tlv.field(1, tlv.U16)


@dataclass(kw_only=True)
class ArmFailSafe(tlv.Struct):
    """11.10.7.2."""

    expiry_length_seconds: int = tlv.field(0, tlv.U16)
    breadcrumb: int = tlv.field(1, tlv.U64)


@dataclass(kw_only=True)
class CommissioningResponse(tlv.Struct):
    """ArmFailSafeResponse / SetRegulatoryConfigResponse / CommissioningCompleteResponse."""

    error_code: int = tlv.field(0, tlv.U8)
    debug_text: str = tlv.field(1, tlv.Str(max_len=128))


@dataclass(kw_only=True)
class SetRegulatoryConfig(tlv.Struct):
    """11.10.7.4."""

    new_regulatory_config: int = tlv.field(0, tlv.U8)
    country_code: str = tlv.field(1, tlv.Str(min_len=2, max_len=2))
    breadcrumb: int = tlv.field(2, tlv.U64)


@dataclass(kw_only=True)
class CommissioningComplete(tlv.Struct):
    """11.10.7.6: no fields."""


def _ok() -> CommissioningResponse:
    return CommissioningResponse(error_code=CommissioningError.OK, debug_text="")


class GeneralCommissioningCluster(Cluster):
    """Breadcrumb, BasicCommissioningInfo, RegulatoryConfig, LocationCapability,
    SupportsConcurrentConnection; every command needs Administer (11.10.7)."""

    ID = 0x0030
    REVISION = 1

    def __init__(self, commissionee: Commissionee,
                 location_capability: RegulatoryLocation = RegulatoryLocation.INDOOR_OUTDOOR
                 ) -> None:
        super().__init__()
        self.commissionee = commissionee
        self.location_capability = location_capability
        self.regulatory_config = location_capability
        self.country_code = "XX"
        commissionee.subscribe(lambda: self.changed(0x0000))

    def _write_breadcrumb(self, _ctx: Context, value: int) -> None:
        self.commissionee.breadcrumb = value

    def attributes(self) -> Sequence[Attribute]:
        info = BasicCommissioningInfo(fail_safe_expiry_length_seconds=FAILSAFE_EXPIRY_LENGTH_S,
                                      max_cumulative_failsafe_seconds=MAX_CUMULATIVE_FAILSAFE_S)
        return [
            Attribute(0x0000, tlv.U64, lambda _c: self.commissionee.breadcrumb,
                      self._write_breadcrumb, write_privilege=Privilege.ADMINISTER),
            constant(0x0001, BasicCommissioningInfo, info),
            Attribute(0x0002, tlv.U8, lambda _c: self.regulatory_config),
            constant(0x0003, tlv.U8, self.location_capability),
            # 11.10.6.5: on-network commissioning, the commissioning channel stays up.
            constant(0x0004, tlv.Bool, True),
        ]

    @command(0x00, ArmFailSafe, privilege=Privilege.ADMINISTER, response_id=0x01)
    def arm_fail_safe(self, ctx: Context, request: ArmFailSafe) -> CommissioningResponse:
        try:
            self.commissionee.arm(request.expiry_length_seconds, request.breadcrumb,
                                  ctx.fabric_index, ctx.session, ctx.now)
        except CommissioningRefused as exc:
            return CommissioningResponse(error_code=_error_code(exc), debug_text=exc.reason)
        self.changed(0x0000)
        return _ok()

    @command(0x02, SetRegulatoryConfig, privilege=Privilege.ADMINISTER, response_id=0x03)
    def set_regulatory_config(self, ctx: Context, request: SetRegulatoryConfig
                              ) -> CommissioningResponse:
        try:
            config = RegulatoryLocation(request.new_regulatory_config)
        except ValueError:
            raise IMStatusError(Status.CONSTRAINT_ERROR, reason="regulatory config") from None
        # 11.10.7.4: an indoor-only or outdoor-only device accepts only its own location.
        if self.location_capability is not RegulatoryLocation.INDOOR_OUTDOOR \
                and config is not self.location_capability:
            return CommissioningResponse(error_code=CommissioningError.VALUE_OUTSIDE_RANGE,
                                         debug_text="location not supported")
        self.regulatory_config = config
        self.country_code = request.country_code
        self.commissionee.breadcrumb = request.breadcrumb
        self.changed(0x0002)
        return _ok()

    @command(0x04, CommissioningComplete, privilege=Privilege.ADMINISTER, response_id=0x05)
    def commissioning_complete(self, ctx: Context, request: CommissioningComplete
                               ) -> CommissioningResponse:
        try:
            self.commissionee.complete(ctx.fabric_index, ctx.session, ctx.now)
        except CommissioningRefused as exc:
            return CommissioningResponse(error_code=_error_code(exc), debug_text=exc.reason)
        return _ok()
