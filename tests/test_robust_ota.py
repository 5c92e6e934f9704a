"""The OTA Provider's own checks (with the provider of the OTA work): its commands need CASE,
never a commissioning (PASE) session or none; its BDX lookup serves CASE devices only, and only
the image offered to that device. (Token binding and designators of images not offered:
``tests/test_ota_e2e.py``.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

ota_world = pytest.importorskip("ota_world", reason="needs the OTA provider (branch ota)")

from msg_pair import KEYS  # noqa: E402

from matter_ota.clusters.ota_provider import (  # noqa: E402
    ApplyUpdateRequest,
    NotifyUpdateApplied,
    QueryImage,
)
from matter_ota.im.acl import Subject  # noqa: E402
from matter_ota.im.messages import Status  # noqa: E402
from matter_ota.im.model import Context, IMStatusError  # noqa: E402
from matter_ota.messaging.session import SecureSession, SessionKind  # noqa: E402


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ota_world.World]:
    w = ota_world.World(tmp_path)
    try:
        yield w
    finally:
        w.close()


def _pase_context() -> Context:
    session = SecureSession.from_keys(KEYS, kind=SessionKind.PASE, local_session_id=7,
                                      peer_session_id=8, is_initiator=False, now=0.0)
    return Context(Subject.from_session(session), session, 0, 0.0)


def test_ota_commands_refuse_a_commissioning_session(world: ota_world.World) -> None:
    world.release(2)
    provider = world.provider
    query = QueryImage(vendor_id=ota_world.VID, product_id=ota_world.PID, software_version=1,
                       protocols_supported=[0])
    token = b"\x01" * 16
    for call in (lambda ctx: provider.query_image(ctx, query),
                 lambda ctx: provider.apply_update(ctx, ApplyUpdateRequest(
                     update_token=token, new_version=2)),
                 lambda ctx: provider.update_applied(ctx, NotifyUpdateApplied(
                     update_token=token, software_version=2))):
        with pytest.raises(IMStatusError) as info:
            call(_pase_context())
        assert info.value.status == Status.UNSUPPORTED_ACCESS


def test_bdx_lookup_serves_case_devices_only(world: ota_world.World) -> None:
    world.release(2)
    r = world.requestor(1)
    world.start(r)
    world.fleet.run()
    offered = [u.designator for u in world.provider.updates.values()]
    assert offered  # the requestor was offered version 2
    for key in (("pase", 7), ("unsecured", ("unsecured", False, 5)), "anything", None):
        assert world.provider.lookup(key, offered[0]) is None
