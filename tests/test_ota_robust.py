"""Whatever a requestor puts in QueryImage / ApplyUpdateRequest / NotifyUpdateApplied, the
provider answers (a response or an IM status) and keeps serving: hypothesis through the whole
in-memory stack."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ota_world import World

from matter_ota.clusters.ota_provider import OtaProviderCluster, QueryImageResponse
from matter_ota.emulator.invoke import invoke
from matter_ota.emulator.requestor import Requestor

u8, u16, u32 = (st.integers(0, 2**n - 1) for n in (8, 16, 32))
fields = st.one_of(
    st.fixed_dictionaries({0: u16, 1: u16, 2: u32, 3: st.lists(u8, max_size=10)},
                          optional={4: u16, 5: st.text(max_size=3), 6: st.booleans(),
                                    7: st.binary(max_size=600)}),
    st.dictionaries(st.integers(0, 9), st.one_of(u32, st.text(max_size=4), st.binary(max_size=40),
                                                 st.booleans(), st.none()), max_size=6),
)


@pytest.fixture(scope="module")
def connected() -> Iterator[tuple[World, Requestor]]:
    """One provider and one requestor with a CASE session, shared by the examples."""
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp))
        try:
            world.release(2, size=2000)
            r = world.requestor(2)
            world.start(r)
            world.fleet.run()
            yield world, r
        finally:
            world.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command=st.sampled_from([0x00, 0x02, 0x04]), value=fields)
def test_any_command_fields_get_an_answer(connected: tuple[World, Requestor], command: int,
                                          value: dict[int, Any]) -> None:
    world, r = connected
    assert r.session is not None
    fleet = world.fleet
    inv = invoke(r.node, r.session, 0, OtaProviderCluster.ID, command, value, fleet.now)
    fleet.run(until=fleet.now + 1, settled=False)
    assert inv.done and (inv.fields is not None or inv.status is not None), inv.error
    if inv.fields is not None and command == 0x00:
        QueryImageResponse.from_value(inv.fields)  # a well-formed response
    # and the provider still answers a well-formed query
    ok = invoke(r.node, r.session, 0, OtaProviderCluster.ID, 0x00,
                {0: 0xFFF1, 1: 0x8001, 2: 2, 3: [0]}, fleet.now)
    fleet.run(until=fleet.now + 1, settled=False)
    assert ok.fields is not None and QueryImageResponse.from_value(ok.fields).status == 2
