"""What the `serve` installers share about one node: fabrics, ACL, data model, state store.

The CASE responder answers for the fabrics the commissioning clusters add; the IM server checks
the ACL AddNOC writes; both come back from the state store on restart. :func:`node_state` hands
every installer the same :class:`NodeState` for a node (created, and loaded from the store, on
first use). Node events (commissioning progress) reach the listeners of :meth:`NodeState.emit`
through the transport's ``on_event``.
"""

from __future__ import annotations

import argparse
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.commissioning.persist import StoreFabrics
from matter_ota.config import load_provider
from matter_ota.fabrics import FabricTable
from matter_ota.im.acl import AccessControl
from matter_ota.im.model import DataModel
from matter_ota.node import Node
from matter_ota.store import Store, StoreError
from matter_ota.yamlnodes import ConfigError

log = logging.getLogger("matter_ota.serve")


@dataclass
class NodeState:
    fabrics: FabricTable = field(default_factory=FabricTable)
    access: AccessControl = field(default_factory=AccessControl)
    store: StoreFabrics | None = None
    model: DataModel | None = None
    #: Is the node commissionable (PASE and ``_matterc`` advertisement)? False once a fabric
    #: is committed (11.10.7.6: CommissioningComplete closes the window).
    window_open: bool = True
    #: Fabrics provisioned by hand (``--fabric-file``): no commissioner wrote their ACL.
    provisioned: set[int] = field(default_factory=set)
    listeners: list[Callable[[object], None]] = field(default_factory=list)

    def emit(self, event: object) -> None:
        """Hand a node event to every listener (the transport's ``on_event``)."""
        for listener in list(self.listeners):
            listener(event)


_STATES: weakref.WeakKeyDictionary[Node, NodeState] = weakref.WeakKeyDictionary()


def _open_store(args: argparse.Namespace) -> StoreFabrics | None:
    """The daemon's store (``args.service``: one connection per process), else one opened on
    the state directory, else None (fabrics in memory only)."""
    service = getattr(args, "service", None)
    if service is not None:
        return StoreFabrics(service.store)
    directory = state_dir(args)
    if directory is None:
        log.warning("event=fabrics_not_persisted reason=no_state_dir")
        return None
    try:
        return StoreFabrics(Store.open(directory))
    except StoreError as exc:
        raise CliError(str(exc)) from None


def state_dir(args: argparse.Namespace) -> Path | None:
    """``--state-dir``, else the ``state_dir`` of an explicit ``--config``.

    Without either the node keeps fabrics in memory only (a warning says so): a development
    run from a checkout must not create a database beside it.
    """
    explicit: Path | None = getattr(args, "state_dir", None)
    if explicit is not None:
        return explicit
    config: Path | None = getattr(args, "config", None)
    if config is None:
        return None
    try:
        return load_provider(config).state_dir
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def node_state(node: Node, args: argparse.Namespace) -> NodeState:
    """The node's shared state; the first call loads the committed fabrics and their ACL."""
    state = _STATES.get(node)
    if state is None:
        state = NodeState(store=_open_store(args))
        if state.store is not None:
            for fabric, acl in state.store.load():
                state.fabrics.add(fabric)
                state.access.set_entries(fabric.fabric_index, acl)
                state.window_open = False
        _STATES[node] = state
    return state
