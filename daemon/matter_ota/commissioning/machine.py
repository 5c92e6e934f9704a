"""The commissioning state machine (Matter Core spec 11.10.7 fail-safe, 11.18.6 credentials).

One table, indexed by (phase, event), gives the next phase; another gives the refusal of an
event that is illegal in a phase. An illegal event raises :class:`CommissioningRefused` with the
spec's answer and leaves the phase unchanged (the h11 model). The phases::

    IDLE --ARM--> ARMED --ADD_ROOT--> ROOT_ADDED --ADD_NOC--> NOC_ADDED --COMPLETE--> IDLE
                  ARMED --UPDATE_NOC-----------------------> NOC_ADDED
    any armed phase --COMPLETE--> IDLE (commits what was added; with no NOC, only disarms)
    any armed phase --ARM--> same phase (re-arm / extend)
    any armed phase --DISARM / EXPIRE--> IDLE (everything added under the fail-safe rolled back)
    ARMED, ROOT_ADDED --CSR--> same phase (a new operational key)

The machine holds no data; :class:`~.commissionee.Commissionee` keeps what each step added and
undoes it when DISARM / EXPIRE roll back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Phase(enum.Enum):
    IDLE = "idle"
    ARMED = "armed"
    ROOT_ADDED = "root_added"
    NOC_ADDED = "noc_added"


class Event(enum.Enum):
    ARM = "arm"  # ArmFailSafe with a non-zero expiry
    DISARM = "disarm"  # ArmFailSafe with expiry 0 (11.10.7.2)
    EXPIRE = "expire"  # the fail-safe timer ran out
    CSR = "csr"  # CSRRequest
    ADD_ROOT = "add_root"  # AddTrustedRootCertificate
    ADD_NOC = "add_noc"  # AddNOC
    UPDATE_NOC = "update_noc"  # UpdateNOC
    COMPLETE = "complete"  # CommissioningComplete


class Refusal(enum.Enum):
    """How a command refuses an illegal step; the clusters map each to the spec's answer."""

    FAILSAFE_REQUIRED = "failsafe_required"  # IM status FAILSAFE_REQUIRED (11.18.6.x)
    CONSTRAINT_ERROR = "constraint_error"  # IM status CONSTRAINT_ERROR (step repeated)
    NO_FAILSAFE = "no_failsafe"  # CommissioningErrorEnum NoFailSafe (11.10.5.1)
    BUSY_WITH_OTHER_ADMIN = "busy_with_other_admin"  # CommissioningErrorEnum 4
    INVALID_AUTHENTICATION = "invalid_authentication"  # CommissioningErrorEnum 2
    MISSING_ROOT = "missing_root"  # NOCResponse InvalidNOC: no root under this fail-safe
    MISSING_CSR = "missing_csr"  # NOCResponse MissingCsr (11.18.4.2)


class CommissioningRefused(Exception):
    """An illegal step; the phase is unchanged."""

    def __init__(self, refusal: Refusal, reason: str = "") -> None:
        self.refusal = refusal
        self.reason = reason
        super().__init__(reason or refusal.value)


P, E = Phase, Event
ARMED_PHASES = (P.ARMED, P.ROOT_ADDED, P.NOC_ADDED)

TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (P.IDLE, E.ARM): P.ARMED,
    **{(p, E.ARM): p for p in ARMED_PHASES},
    **{(p, E.DISARM): P.IDLE for p in ARMED_PHASES},
    **{(p, E.EXPIRE): P.IDLE for p in ARMED_PHASES},
    (P.ARMED, E.CSR): P.ARMED,
    (P.ROOT_ADDED, E.CSR): P.ROOT_ADDED,
    (P.ARMED, E.ADD_ROOT): P.ROOT_ADDED,
    (P.ROOT_ADDED, E.ADD_NOC): P.NOC_ADDED,
    (P.ARMED, E.UPDATE_NOC): P.NOC_ADDED,
    # 11.10.7.6: CommissioningComplete commits whatever the fail-safe holds; an administrator
    # who armed it over CASE without adding a NOC just disarms it (connectedhomeip agrees).
    **{(p, E.COMPLETE): P.IDLE for p in ARMED_PHASES},
}

# 11.18.6: AddTrustedRootCertificate / CSRRequest / AddNOC / UpdateNOC need an armed
# fail-safe and are each allowed once per fail-safe; 11.10.7.6: CommissioningComplete needs an
# armed one (and, checked by the Commissionee, CASE on the fabric that holds it:
# InvalidAuthentication otherwise).
REFUSALS: dict[tuple[Phase, Event], Refusal] = {
    (P.IDLE, E.DISARM): Refusal.NO_FAILSAFE,  # answered OK by the cluster: nothing to disarm
    (P.IDLE, E.EXPIRE): Refusal.NO_FAILSAFE,
    (P.IDLE, E.CSR): Refusal.FAILSAFE_REQUIRED,
    (P.IDLE, E.ADD_ROOT): Refusal.FAILSAFE_REQUIRED,
    (P.IDLE, E.ADD_NOC): Refusal.FAILSAFE_REQUIRED,
    (P.IDLE, E.UPDATE_NOC): Refusal.FAILSAFE_REQUIRED,
    (P.IDLE, E.COMPLETE): Refusal.NO_FAILSAFE,
    (P.NOC_ADDED, E.CSR): Refusal.CONSTRAINT_ERROR,
    (P.ROOT_ADDED, E.ADD_ROOT): Refusal.CONSTRAINT_ERROR,
    (P.NOC_ADDED, E.ADD_ROOT): Refusal.CONSTRAINT_ERROR,
    (P.ARMED, E.ADD_NOC): Refusal.MISSING_ROOT,
    (P.NOC_ADDED, E.ADD_NOC): Refusal.CONSTRAINT_ERROR,
    (P.ROOT_ADDED, E.UPDATE_NOC): Refusal.CONSTRAINT_ERROR,
    (P.NOC_ADDED, E.UPDATE_NOC): Refusal.CONSTRAINT_ERROR,
}


@dataclass
class CommissioningMachine:
    """The current phase; :meth:`check` / :meth:`advance` consult the tables."""

    phase: Phase = Phase.IDLE

    def check(self, event: Event) -> Phase:
        """The phase ``event`` would lead to; :class:`CommissioningRefused` if illegal."""
        nxt = TRANSITIONS.get((self.phase, event))
        if nxt is None:
            refusal = REFUSALS.get((self.phase, event), Refusal.CONSTRAINT_ERROR)
            raise CommissioningRefused(refusal, f"{event.value} in phase {self.phase.value}")
        return nxt

    def advance(self, event: Event) -> Phase:
        """Take ``event``: the new phase, or :class:`CommissioningRefused` (phase unchanged)."""
        self.phase = self.check(event)
        return self.phase

    @property
    def armed(self) -> bool:
        return self.phase is not Phase.IDLE
