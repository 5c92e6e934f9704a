"""Access control: privilege implication, subject and target matching, entry validation."""

from __future__ import annotations

import pytest

from matter_ota.im.acl import (
    AccessControl,
    AccessControlEntry,
    AuthMode,
    InvalidEntry,
    Privilege,
    Subject,
    Target,
    grants,
)

NODE = 0x0000_0000_0001_B669
CAT_V2 = 0xFFFF_FFFD_ABCD_0002
P = Privilege


@pytest.mark.parametrize(("granted", "allowed"), [
    (P.VIEW, {P.VIEW}),
    (P.PROXY_VIEW, {P.VIEW, P.PROXY_VIEW}),
    (P.OPERATE, {P.VIEW, P.OPERATE}),
    (P.MANAGE, {P.VIEW, P.OPERATE, P.MANAGE}),
    (P.ADMINISTER, set(P)),
])
def test_privilege_implication(granted: Privilege, allowed: set[Privilege]) -> None:
    assert {p for p in P if grants(granted, p)} == allowed


def case(node: int = NODE, fabric: int = 1, cats: tuple[int, ...] = ()) -> Subject:
    return Subject(AuthMode.CASE, fabric, node, cats)


def test_pase_is_implicit_administer_even_with_no_entries() -> None:
    acl = AccessControl()
    assert acl.allowed(Subject(AuthMode.PASE, 0), P.ADMINISTER, 0, 0x1F)
    assert not acl.allowed(case(), P.VIEW, 0, 0x28)


def test_entry_matching() -> None:
    acl = AccessControl()
    acl.set_entries(1, [
        AccessControlEntry(1, P.OPERATE, AuthMode.CASE, (NODE,), (Target(cluster=0x29),)),
        AccessControlEntry(1, P.VIEW, AuthMode.CASE, (), (Target(endpoint=0),)),
        AccessControlEntry(1, P.MANAGE, AuthMode.CASE, (CAT_V2,), (Target(device_type=0x14),)),
    ])
    assert acl.allowed(case(), P.OPERATE, 0, 0x29)
    assert not acl.allowed(case(), P.OPERATE, 0, 0x28)
    assert acl.allowed(case(node=5), P.VIEW, 0, 0x28)  # empty subjects: any CASE peer
    assert not acl.allowed(case(node=5), P.VIEW, 1, 0x28)
    assert not acl.allowed(case(fabric=2), P.VIEW, 0, 0x28)  # entries are per fabric
    # CAT: same identifier, version at least the entry's.
    assert acl.allowed(case(node=5, cats=(0xABCD_0003,)), P.MANAGE, 0, 0x28, [0x14])
    assert not acl.allowed(case(node=5, cats=(0xABCD_0001,)), P.MANAGE, 0, 0x28, [0x14])
    assert not acl.allowed(case(node=5, cats=(0xABCD_0003,)), P.MANAGE, 0, 0x28, [0x16])


@pytest.mark.parametrize("entry", [
    AccessControlEntry(1, P.ADMINISTER, AuthMode.PASE),
    AccessControlEntry(1, P.ADMINISTER, AuthMode.GROUP, (1,)),
    AccessControlEntry(1, P.VIEW, AuthMode.CASE, (0,)),
    AccessControlEntry(1, P.VIEW, AuthMode.CASE, (0xFFFF_FFFD_ABCD_0000,)),  # CAT version 0
    AccessControlEntry(1, P.VIEW, AuthMode.CASE, (1, 2, 3, 4, 5)),
    AccessControlEntry(1, P.VIEW, AuthMode.CASE, (), (Target(),)),
    AccessControlEntry(1, P.VIEW, AuthMode.CASE, (), (Target(endpoint=0, device_type=0x16),)),
    AccessControlEntry(2, P.VIEW, AuthMode.CASE),  # another fabric's entry
])
def test_invalid_entries_change_nothing(entry: AccessControlEntry) -> None:
    acl = AccessControl()
    good = AccessControlEntry(1, P.VIEW, AuthMode.CASE)
    acl.set_entries(1, [good])
    with pytest.raises(InvalidEntry):
        acl.set_entries(1, [good, entry])
    assert acl.entries(1) == (good,)


def test_entries_per_fabric_limit_and_change_hook() -> None:
    changed: list[int] = []
    acl = AccessControl()
    acl.add_listener(changed.append)
    entry = AccessControlEntry(3, P.VIEW, AuthMode.CASE)
    acl.set_entries(3, [entry] * 4)
    with pytest.raises(InvalidEntry):
        acl.set_entries(3, [entry] * 5)
    acl.remove_fabric(3)
    assert changed == [3, 3] and acl.fabrics() == []
