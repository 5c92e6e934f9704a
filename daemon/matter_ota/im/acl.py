"""Access control, Matter Core spec 6.6: privileges, subjects, per-fabric entries.

:meth:`AccessControl.allowed` is asked on every attribute and command path the Interaction
Model server touches. The rules:

- A PASE session is a commissioning session and holds an implicit Administer privilege
  (6.6.2.9, connectedhomeip ``AccessControl::Check``): the commissioner must be able to install
  the first ACL entry on a node that has none.
- A CASE session gets what the entries of its own fabric grant: an entry matches when its auth
  mode is CASE, its subjects list is empty or holds the peer's node id or one of its CASE
  Authenticated Tags (same identifier, version not lower, 6.6.2.1.2), and its targets list is
  empty or names the endpoint / cluster / device type of the path.
- Privileges imply others (6.6.2.2): Administer ⊇ Manage ⊇ Operate ⊇ View, Administer ⊇
  ProxyView ⊇ View.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from matter_ota.messaging.session import SecureSession, SessionKind

# 9.10.5 Access Control cluster limits (the spec's minimums).
SUBJECTS_PER_ENTRY = 4
TARGETS_PER_ENTRY = 3
ENTRIES_PER_FABRIC = 4

# 2.5.5 node id ranges / 6.6.2.1.2 CASE Authenticated Tags.
_OPERATIONAL_MAX = 0xFFFF_FFEF_FFFF_FFFF
_CAT_PREFIX = 0xFFFF_FFFD


class Privilege(enum.IntEnum):
    """AccessControlEntryPrivilegeEnum (9.10.4.2)."""

    VIEW = 1
    PROXY_VIEW = 2
    OPERATE = 3
    MANAGE = 4
    ADMINISTER = 5


class AuthMode(enum.IntEnum):
    """AccessControlEntryAuthModeEnum (9.10.4.3)."""

    PASE = 1
    CASE = 2
    GROUP = 3


# 6.6.2.2: which privileges each granted privilege includes.
_GRANTS: dict[Privilege, frozenset[Privilege]] = {
    Privilege.VIEW: frozenset({Privilege.VIEW}),
    Privilege.PROXY_VIEW: frozenset({Privilege.PROXY_VIEW, Privilege.VIEW}),
    Privilege.OPERATE: frozenset({Privilege.OPERATE, Privilege.VIEW}),
    Privilege.MANAGE: frozenset({Privilege.MANAGE, Privilege.OPERATE, Privilege.VIEW}),
    Privilege.ADMINISTER: frozenset(Privilege),
}


def grants(granted: Privilege, required: Privilege) -> bool:
    """True if holding ``granted`` satisfies ``required``."""
    return required in _GRANTS[granted]


def is_operational_node_id(node_id: int) -> bool:
    """2.5.5.1: 0x0000_0000_0000_0001 .. 0xFFFF_FFEF_FFFF_FFFF."""
    return 1 <= node_id <= _OPERATIONAL_MAX


def is_cat_subject(subject: int) -> bool:
    """A CAT subject: 0xFFFF_FFFD in the upper half, a non-zero version in the low 16 bits."""
    return subject >> 32 == _CAT_PREFIX and subject & 0xFFFF != 0


@dataclass(frozen=True, slots=True)
class Subject:
    """Who is asking: the secure session's authentication, as ACL checks need it."""

    auth_mode: AuthMode
    fabric_index: int
    node_id: int = 0
    cats: tuple[int, ...] = ()

    @classmethod
    def from_session(cls, session: SecureSession) -> Subject:
        mode = AuthMode.PASE if session.kind is SessionKind.PASE else AuthMode.CASE
        return cls(mode, session.fabric_index, session.peer_node_id, tuple(session.peer_cats))

    def matches(self, subject: int) -> bool:
        """Does one entry subject id name this subject (node id or CAT)?"""
        if is_cat_subject(subject):
            ident, version = (subject >> 16) & 0xFFFF, subject & 0xFFFF
            return any(c >> 16 == ident and c & 0xFFFF >= version for c in self.cats)
        return subject == self.node_id


@dataclass(frozen=True, slots=True)
class Target:
    """AccessControlTargetStruct (9.10.5.4): None fields match anything."""

    cluster: int | None = None
    endpoint: int | None = None
    device_type: int | None = None

    def matches(self, endpoint: int, cluster: int, device_types: Iterable[int]) -> bool:
        if self.cluster is not None and self.cluster != cluster:
            return False
        if self.endpoint is not None and self.endpoint != endpoint:
            return False
        return self.device_type is None or self.device_type in set(device_types)


@dataclass(frozen=True, slots=True)
class AccessControlEntry:
    """AccessControlEntryStruct (9.10.5.5); empty subjects / targets mean "any"."""

    fabric_index: int
    privilege: Privilege
    auth_mode: AuthMode
    subjects: tuple[int, ...] = ()
    targets: tuple[Target, ...] = ()

    def grants(self, subject: Subject, required: Privilege, endpoint: int, cluster: int,
               device_types: Sequence[int]) -> bool:
        if self.fabric_index != subject.fabric_index or self.auth_mode != subject.auth_mode:
            return False
        if not grants(self.privilege, required):
            return False
        if self.subjects and not any(subject.matches(s) for s in self.subjects):
            return False
        return not self.targets or any(
            t.matches(endpoint, cluster, device_types) for t in self.targets)


class InvalidEntry(ValueError):
    """An entry the Access Control cluster must refuse (CONSTRAINT_ERROR, 9.10.5.5)."""


def validate(entry: AccessControlEntry) -> None:
    """Check one entry against the cluster's constraints; :class:`InvalidEntry` if broken."""
    if entry.auth_mode is AuthMode.PASE:
        raise InvalidEntry("PASE is not a valid auth mode for an entry")
    if entry.auth_mode is AuthMode.GROUP and entry.privilege is Privilege.ADMINISTER:
        raise InvalidEntry("a group entry cannot grant Administer")
    if len(entry.subjects) > SUBJECTS_PER_ENTRY:
        raise InvalidEntry(f"more than {SUBJECTS_PER_ENTRY} subjects")
    if len(entry.targets) > TARGETS_PER_ENTRY:
        raise InvalidEntry(f"more than {TARGETS_PER_ENTRY} targets")
    for s in entry.subjects:
        if entry.auth_mode is AuthMode.CASE:
            if not (is_operational_node_id(s) or is_cat_subject(s)):
                raise InvalidEntry(f"subject 0x{s:016X} is neither a node id nor a CAT")
        elif not 1 <= s <= 0xFFFF:
            raise InvalidEntry(f"subject 0x{s:X} is not a group id")
    for t in entry.targets:
        if t.cluster is None and t.endpoint is None and t.device_type is None:
            raise InvalidEntry("a target must name a cluster, endpoint or device type")
        if t.endpoint is not None and t.device_type is not None:
            raise InvalidEntry("a target cannot name both an endpoint and a device type")


@dataclass
class AccessControl:
    """The ACL of a node: entries per fabric index, and the check the IM server calls."""

    _entries: dict[int, tuple[AccessControlEntry, ...]] = field(default_factory=dict)
    _listeners: list[Callable[[int], None]] = field(default_factory=list)

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(fabric_index)`` after every change (persistence, data versions)."""
        self._listeners.append(listener)

    def _changed(self, fabric_index: int) -> None:
        for listener in self._listeners:
            listener(fabric_index)

    def entries(self, fabric_index: int) -> tuple[AccessControlEntry, ...]:
        """The entries of one fabric, in order."""
        return self._entries.get(fabric_index, ())

    def fabrics(self) -> list[int]:
        return sorted(self._entries)

    def set_entries(self, fabric_index: int, entries: Sequence[AccessControlEntry]) -> None:
        """Replace one fabric's entries (all validated first; nothing changes on error)."""
        if len(entries) > ENTRIES_PER_FABRIC:
            raise InvalidEntry(f"more than {ENTRIES_PER_FABRIC} entries for fabric "
                               f"{fabric_index}")
        for e in entries:
            if e.fabric_index != fabric_index:
                raise InvalidEntry("entry of another fabric")
            validate(e)
        if entries:
            self._entries[fabric_index] = tuple(entries)
        else:
            self._entries.pop(fabric_index, None)
        self._changed(fabric_index)

    def remove_fabric(self, fabric_index: int) -> None:
        """Drop every entry of a fabric (RemoveFabric)."""
        if self._entries.pop(fabric_index, None) is not None:
            self._changed(fabric_index)

    def allowed(self, subject: Subject, required: Privilege, endpoint: int, cluster: int,
                device_types: Sequence[int] = ()) -> bool:
        """May ``subject`` act with ``required`` privilege on (``endpoint``, ``cluster``)?"""
        if subject.auth_mode is AuthMode.PASE:
            return True  # 6.6.2.9: implicit Administer for the commissioning session
        return any(e.grants(subject, required, endpoint, cluster, device_types)
                   for e in self._entries.get(subject.fabric_index, ()))
