"""`serve` builds one node whose installers share one fabric table, one ACL and one store.

CASE, the OTA provider, the IM server and commissioning must agree on which fabrics the node
belongs to and who may do what: a fabric AddNOC adds is one the provider answers, an ACL entry
an administrator writes is the one the IM server checks. Fabrics come from the state store
(commissioned earlier) and from ``--fabric-file`` (provisioned by hand) alike.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from matter_ota.cli import CliError
from matter_ota.clusters.general_commissioning import GeneralCommissioningCluster
from matter_ota.commands import serve
from matter_ota.commissioning.persist import StoreFabrics
from matter_ota.config import Config, ProviderConfig, ReleasesConfig
from matter_ota.fabrics import CertificateAuthority
from matter_ota.im.acl import AccessControlEntry, AuthMode, Privilege
from matter_ota.messaging.status import Protocol, SecureChannelOpcode
from matter_ota.provider.core import OtaProvider
from matter_ota.provider.node import requestor_access
from matter_ota.runtime.service import ProviderService
from matter_ota.store import Store

NOW = 1_750_000_000
ADMIN = 112233


def _args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--state-dir", str(tmp_path / "state"),
                              "--passcode", "20202021", "--discriminator", "3840", *extra])
    provider = ProviderConfig(tmp_path / "provider.yaml", state_dir=tmp_path / "state",
                              firmware_dir=tmp_path / "fw")
    serve._settings(args, provider)
    return args


def _service(args: argparse.Namespace, store: Store, tmp_path: Path) -> ProviderService:
    provider = ProviderConfig(tmp_path / "provider.yaml", state_dir=tmp_path / "state",
                              firmware_dir=tmp_path / "fw")
    service = ProviderService(Config(provider, ReleasesConfig(tmp_path / "releases.yaml")),
                              store)
    args.service = service
    return service


def test_one_fabric_table_one_acl_one_store(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state")
    try:
        # Commissioned earlier: fabric 1 in the store with its administrator's ACL.
        commissioned = CertificateAuthority(fabric_id=1, now=NOW).issue(0x4321, fabric_index=1)
        admin = [AccessControlEntry(1, Privilege.ADMINISTER, AuthMode.CASE, (ADMIN,))]
        StoreFabrics(store).save_fabric(commissioned, admin)
        # Provisioned by hand: fabric 2 from a --fabric-file.
        provisioned = CertificateAuthority(fabric_id=2, now=NOW).issue(0x99, fabric_index=2)
        path = tmp_path / "fabric.json"
        path.write_text(json.dumps(provisioned.to_dict()))
        args = _args(tmp_path, "--fabric-file", str(path))
        service = _service(args, store, tmp_path)
        node = serve.build_node(args)
        state = args.node_state

        assert sorted(f.fabric_index for f in state.fabrics) == [1, 2]
        out = io.StringIO()
        serve.banner(args, ("::", 5540), out)
        assert "commissioning window is closed" in out.getvalue()
        assert "setup passcode" not in out.getvalue()
        assert state.provisioned == {2}
        assert not state.window_open  # a committed fabric closes the window
        # CASE answers for exactly that table.
        route = node.route(Protocol.SECURE_CHANNEL, SecureChannelOpcode.CASE_SIGMA1)
        assert route is not None
        assert route.handler.__self__.fabrics is state.fabrics  # type: ignore[attr-defined]
        # The OTA provider looks the session's fabric up in the same table.
        provider = args.update_decider
        assert isinstance(provider, OtaProvider) and provider.fabrics is state.fabrics
        # One ACL: the stored administrator entry, and requestor access for the file's fabric.
        assert state.access.entries(1) == tuple(admin)
        assert state.access.entries(2) == tuple(requestor_access(2))
        # Commissioning works on the same table, ACL and the service's store (no second
        # connection), and never writes the hand-provisioned fabric into the store.
        assert state.model is not None
        general = state.model.endpoints[0].clusters[GeneralCommissioningCluster.ID]
        assert isinstance(general, GeneralCommissioningCluster)
        commissionee = general.commissionee
        assert commissionee.fabrics is state.fabrics and commissionee.access is state.access
        assert state.store is not None and state.store.store is service.store
        assert commissionee.committed == {1}
        # An ACL change on the provisioned fabric stays in memory; on the commissioned one it
        # is written through to the store.
        state.access.set_entries(2, [])
        assert [f.fabric_index for f, _ in StoreFabrics(store).load()] == [1]
        state.access.set_entries(1, admin + requestor_access(1))
        ((_, stored_acl),) = StoreFabrics(store).load()
        assert len(stored_acl) == 2
    finally:
        store.close()


def test_a_fabric_file_may_not_take_a_commissioned_index(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state")
    try:
        commissioned = CertificateAuthority(fabric_id=1, now=NOW).issue(0x4321, fabric_index=1)
        StoreFabrics(store).save_fabric(commissioned, [])
        other = CertificateAuthority(fabric_id=2, now=NOW).issue(0x99, fabric_index=1)
        path = tmp_path / "fabric.json"
        path.write_text(json.dumps(other.to_dict()))
        args = _args(tmp_path, "--fabric-file", str(path))
        _service(args, store, tmp_path)
        with pytest.raises(CliError, match="fabric index 1 is already a commissioned"):
            serve.build_node(args)
    finally:
        store.close()


def test_the_same_fabric_from_a_file_keeps_the_stored_acl(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state")
    try:
        fabric = CertificateAuthority(fabric_id=1, now=NOW).issue(0x4321, fabric_index=1)
        admin = [AccessControlEntry(1, Privilege.ADMINISTER, AuthMode.CASE, (ADMIN,))]
        StoreFabrics(store).save_fabric(fabric, admin)
        path = tmp_path / "fabric.json"
        path.write_text(json.dumps(fabric.to_dict()))
        args = _args(tmp_path, "--fabric-file", str(path))
        _service(args, store, tmp_path)
        serve.build_node(args)
        state = args.node_state
        assert len(state.fabrics) == 1 and state.provisioned == set()
        assert state.access.entries(1) == tuple(admin)
    finally:
        store.close()
