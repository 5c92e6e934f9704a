"""The commissioning state machine: every (phase, event) by the tables, illegal steps refused."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matter_ota.commissioning.machine import (
    REFUSALS,
    TRANSITIONS,
    CommissioningMachine,
    CommissioningRefused,
    Event,
    Phase,
    Refusal,
)


def test_happy_path() -> None:
    m = CommissioningMachine()
    for event, phase in [(Event.ARM, Phase.ARMED), (Event.CSR, Phase.ARMED),
                         (Event.ADD_ROOT, Phase.ROOT_ADDED), (Event.ADD_NOC, Phase.NOC_ADDED),
                         (Event.ARM, Phase.NOC_ADDED), (Event.COMPLETE, Phase.IDLE)]:
        assert m.advance(event) is phase
    assert not m.armed


@pytest.mark.parametrize(("steps", "event", "refusal"), [
    ([], Event.ADD_ROOT, Refusal.FAILSAFE_REQUIRED),
    ([], Event.CSR, Refusal.FAILSAFE_REQUIRED),
    ([], Event.ADD_NOC, Refusal.FAILSAFE_REQUIRED),
    ([], Event.UPDATE_NOC, Refusal.FAILSAFE_REQUIRED),
    ([], Event.COMPLETE, Refusal.NO_FAILSAFE),
    ([Event.ARM], Event.ADD_NOC, Refusal.MISSING_ROOT),
    ([Event.ARM, Event.ADD_ROOT], Event.ADD_ROOT, Refusal.CONSTRAINT_ERROR),
    ([Event.ARM, Event.ADD_ROOT], Event.UPDATE_NOC, Refusal.CONSTRAINT_ERROR),
    ([Event.ARM, Event.ADD_ROOT, Event.ADD_NOC], Event.ADD_NOC, Refusal.CONSTRAINT_ERROR),
    ([Event.ARM, Event.ADD_ROOT, Event.ADD_NOC], Event.CSR, Refusal.CONSTRAINT_ERROR),
    ([Event.ARM, Event.ADD_ROOT, Event.ADD_NOC], Event.ADD_ROOT, Refusal.CONSTRAINT_ERROR),
    ([Event.ARM, Event.UPDATE_NOC], Event.UPDATE_NOC, Refusal.CONSTRAINT_ERROR),
])
def test_illegal_steps_are_refused_and_change_nothing(steps: list[Event], event: Event,
                                                      refusal: Refusal) -> None:
    m = CommissioningMachine()
    for step in steps:
        m.advance(step)
    before = m.phase
    with pytest.raises(CommissioningRefused) as info:
        m.advance(event)
    assert info.value.refusal is refusal
    assert m.phase is before


def test_complete_without_a_noc_only_disarms() -> None:
    for steps in ([Event.ARM], [Event.ARM, Event.ADD_ROOT]):
        m = CommissioningMachine()
        for step in steps:
            m.advance(step)
        assert m.advance(Event.COMPLETE) is Phase.IDLE


def test_expiry_and_disarm_roll_back_from_every_armed_phase() -> None:
    for phase, event in itertools.product((Phase.ARMED, Phase.ROOT_ADDED, Phase.NOC_ADDED),
                                          (Event.EXPIRE, Event.DISARM)):
        m = CommissioningMachine(phase)
        assert m.advance(event) is Phase.IDLE


def test_tables_cover_every_pair_once() -> None:
    assert not set(TRANSITIONS) & set(REFUSALS)
    # Everything reachable in the idle phase is either arming or a refusal naming the spec.
    for event in Event:
        assert (Phase.IDLE, event) in TRANSITIONS or (Phase.IDLE, event) in REFUSALS


@given(st.lists(st.sampled_from(Event), max_size=30))
def test_random_sequences_follow_the_tables(events: list[Event]) -> None:
    m = CommissioningMachine()
    for event in events:
        before = m.phase
        expected = TRANSITIONS.get((before, event))
        if expected is None:
            with pytest.raises(CommissioningRefused):
                m.advance(event)
            assert m.phase is before
        else:
            assert m.advance(event) is expected
