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

import anyio
import pytest

from matter_ota.cli import CliError
from matter_ota.clusters.general_commissioning import GeneralCommissioningCluster
from matter_ota.commands import _mdns, serve
from matter_ota.commands._node_state import NodeState
from matter_ota.commissioning.commissionee import CommissioningCompleted, FabricAdded
from matter_ota.commissioning.persist import StoreFabrics
from matter_ota.config import Config, ProviderConfig, ReleasesConfig
from matter_ota.fabrics import CertificateAuthority, FabricInfo
from matter_ota.im.acl import AccessControlEntry, AuthMode, Privilege
from matter_ota.messaging.status import Protocol, SecureChannelOpcode
from matter_ota.provider.core import OtaProvider
from matter_ota.provider.node import requestor_access
from matter_ota.runtime.mdns import MdnsError
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


class _FakeAdvertiser:
    """Stands in for python-zeroconf: the companion's control flow is under test here (the
    real advertiser is tested in network namespaces: tests/interop/test_mdns.py)."""

    def __init__(self, **_kw: object) -> None:
        self.failing = False

    async def start(self) -> None:
        pass

    async def refresh_addresses(self) -> None:
        if self.failing:
            raise MdnsError("interface gone")

    async def close(self) -> None:
        pass


class _FakeDiscovery:
    calls: list[str]

    def __init__(self, _advertiser: object, _port: int) -> None:
        self.calls = _FakeDiscovery.calls

    async def open_commissioning_window(self, _params: object) -> object:
        self.calls.append("commissionable")
        return object()

    async def close_commissioning_window(self) -> None:
        self.calls.append("window_closed")

    async def advertise_fabric(self, fabric: FabricInfo) -> object:
        self.calls.append(f"fabric {fabric.fabric_index}")
        return type("Record", (), {"instance": "x"})()

    async def withdraw_fabric(self, fabric_index: int) -> None:
        self.calls.append(f"withdrawn {fabric_index}")


def _mdns_args(tmp_path: Path) -> argparse.Namespace:
    return argparse.Namespace(listen=None, config=tmp_path / "absent.yaml", mdns_interface=None,
                              passcode=20202021, discriminator=3840, no_mdns=False,
                              vendor_id=0xFFF1, product_id=0x8000, device_name=None)


async def _run_companion(args: argparse.Namespace, state: NodeState,
                         events: list[object]) -> None:
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_mdns._advertise, args, 5540, state)
            await anyio.sleep(0.05)
            for event in events:
                state.emit(event)
                await anyio.sleep(0.05)
            tg.cancel_scope.cancel()


def test_mdns_follows_the_window_and_commissioning(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_mdns, "Advertiser", _FakeAdvertiser)
    monkeypatch.setattr(_mdns, "NodeDiscovery", _FakeDiscovery)
    (tmp_path / "absent.yaml").write_text("{}\n")
    added = CertificateAuthority(fabric_id=1, now=NOW).issue(0x4321, fabric_index=1)
    # Open window: commissionable, then AddNOC's fabric at once, then the window closes.
    _FakeDiscovery.calls = []
    anyio.run(_run_companion, _mdns_args(tmp_path), NodeState(),
              [FabricAdded(added), CommissioningCompleted(1)])
    assert _FakeDiscovery.calls == ["commissionable", "fabric 1", "window_closed"]
    # Commissioned (window closed): no commissionable record, the stored fabric advertised.
    _FakeDiscovery.calls = []
    state = NodeState(window_open=False)
    state.fabrics.add(added)
    anyio.run(_run_companion, _mdns_args(tmp_path), state, [])
    assert _FakeDiscovery.calls == ["fabric 1"]


def test_an_mdns_failure_is_logged_and_the_companion_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failing = _FakeAdvertiser()
    failing.failing = True
    monkeypatch.setattr(_mdns, "Advertiser", lambda **_kw: failing)
    monkeypatch.setattr(_mdns, "NodeDiscovery", _FakeDiscovery)
    monkeypatch.setattr(_mdns, "ADDRESS_CHECK_INTERVAL", 0.01)
    (tmp_path / "absent.yaml").write_text("{}\n")
    _FakeDiscovery.calls = []
    anyio.run(_mdns._advertise, _mdns_args(tmp_path), 5540, NodeState())  # returns
    assert "event=mdns_failed error=interface gone" in caplog.text
