"""OTA Software Update Provider cluster (0x0029), Matter Core spec 11.20.6.

The cluster decodes and checks the commands and answers through a pluggable
:class:`UpdateDecider`; the OTA work plugs in the policy engine and BDX there. Until then
:class:`NothingAvailable` answers every QueryImage with NotAvailable: a real, well-formed
answer a requestor accepts, and the placeholder this module exists to replace.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from matter_ota import tlv
from matter_ota.im.acl import Privilege
from matter_ota.im.model import Cluster, Context, command


class QueryStatus(enum.IntEnum):
    """StatusEnum (11.20.6.4.1)."""

    UPDATE_AVAILABLE = 0
    BUSY = 1
    NOT_AVAILABLE = 2
    DOWNLOAD_PROTOCOL_NOT_SUPPORTED = 3


class ApplyUpdateAction(enum.IntEnum):
    """ApplyUpdateActionEnum (11.20.6.4.2)."""

    PROCEED = 0
    AWAIT_NEXT_ACTION = 1
    DISCONTINUE = 2


class DownloadProtocol(enum.IntEnum):
    """DownloadProtocolEnum (11.20.6.4.3)."""

    BDX_SYNCHRONOUS = 0
    BDX_ASYNCHRONOUS = 1
    HTTPS = 2
    VENDOR_SPECIFIC = 3


@dataclass(kw_only=True)
class QueryImage(tlv.Struct):
    """11.20.6.5.1."""

    vendor_id: int = tlv.field(0, tlv.U16)
    product_id: int = tlv.field(1, tlv.U16)
    software_version: int = tlv.field(2, tlv.U32)
    protocols_supported: list[int] = tlv.field(3, tlv.ArrayOf(tlv.U8, max_items=8))
    hardware_version: int | None = tlv.field(4, tlv.U16, optional=True)
    location: str | None = tlv.field(5, tlv.Str(min_len=2, max_len=2), optional=True)
    requestor_can_consent: bool | None = tlv.field(6, tlv.Bool, optional=True)
    metadata_for_provider: bytes | None = tlv.field(7, tlv.Bytes(max_len=512), optional=True)


@dataclass(kw_only=True)
class QueryImageResponse(tlv.Struct):
    """11.20.6.5.2."""

    status: int = tlv.field(0, tlv.U8)
    delayed_action_time: int | None = tlv.field(1, tlv.U32, optional=True)
    image_uri: str | None = tlv.field(2, tlv.Str(max_len=256), optional=True)
    software_version: int | None = tlv.field(3, tlv.U32, optional=True)
    software_version_string: str | None = tlv.field(
        4, tlv.Str(min_len=1, max_len=64), optional=True)
    update_token: bytes | None = tlv.field(5, tlv.Bytes(min_len=8, max_len=32), optional=True)
    user_consent_needed: bool | None = tlv.field(6, tlv.Bool, optional=True)
    metadata_for_requestor: bytes | None = tlv.field(7, tlv.Bytes(max_len=512), optional=True)


@dataclass(kw_only=True)
class ApplyUpdateRequest(tlv.Struct):
    """11.20.6.5.3."""

    update_token: bytes = tlv.field(0, tlv.Bytes(min_len=8, max_len=32))
    new_version: int = tlv.field(1, tlv.U32)


@dataclass(kw_only=True)
class ApplyUpdateResponse(tlv.Struct):
    """11.20.6.5.4."""

    action: int = tlv.field(0, tlv.U8)
    delayed_action_time: int = tlv.field(1, tlv.U32)


@dataclass(kw_only=True)
class NotifyUpdateApplied(tlv.Struct):
    """11.20.6.5.5."""

    update_token: bytes = tlv.field(0, tlv.Bytes(min_len=8, max_len=32))
    software_version: int = tlv.field(1, tlv.U32)


class UpdateDecider(Protocol):
    """What the OTA Provider cluster asks. ``ctx`` names the requestor (session, node id,
    fabric); a method may raise :class:`~matter_ota.im.model.IMStatusError` to answer with a
    status instead of a response (e.g. INVALID_COMMAND for an unknown UpdateToken)."""

    def query_image(self, ctx: Context, request: QueryImage) -> QueryImageResponse: ...

    def apply_update(self, ctx: Context, request: ApplyUpdateRequest
                     ) -> ApplyUpdateResponse: ...

    def update_applied(self, ctx: Context, request: NotifyUpdateApplied) -> None: ...


class NothingAvailable:
    """PLACEHOLDER decider until the OTA work lands: no image is ever offered."""

    def query_image(self, ctx: Context, request: QueryImage) -> QueryImageResponse:
        return QueryImageResponse(status=QueryStatus.NOT_AVAILABLE)

    def apply_update(self, ctx: Context, request: ApplyUpdateRequest) -> ApplyUpdateResponse:
        # No update was offered, so none may proceed (11.20.6.5.4).
        return ApplyUpdateResponse(action=ApplyUpdateAction.DISCONTINUE, delayed_action_time=0)

    def update_applied(self, ctx: Context, request: NotifyUpdateApplied) -> None:
        return None


class OtaProviderCluster(Cluster):
    """QueryImage, ApplyUpdateRequest, NotifyUpdateApplied; all need Operate (11.20.6.5)."""

    ID = 0x0029
    REVISION = 1

    def __init__(self, decider: UpdateDecider) -> None:
        super().__init__()
        self.decider = decider

    @command(0x00, QueryImage, privilege=Privilege.OPERATE, response_id=0x01)
    def query_image(self, ctx: Context, request: QueryImage) -> QueryImageResponse:
        return self.decider.query_image(ctx, request)

    @command(0x02, ApplyUpdateRequest, privilege=Privilege.OPERATE, response_id=0x03)
    def apply_update(self, ctx: Context, request: ApplyUpdateRequest) -> ApplyUpdateResponse:
        return self.decider.apply_update(ctx, request)

    @command(0x04, NotifyUpdateApplied, privilege=Privilege.OPERATE)
    def update_applied(self, ctx: Context, request: NotifyUpdateApplied) -> None:
        self.decider.update_applied(ctx, request)
