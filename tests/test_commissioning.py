"""Commissioning over the IM server, in memory: a commissioner's whole sequence on a PASE
session, refusals of illegal steps with the spec's answers, fail-safe expiry rolling back
everything, the fabric committed to the state store and back after a restart."""

from __future__ import annotations

import contextlib
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from im_client import Client, Conversation
from msg_pair import KEYS, drain_events, make_node, secure_pair

from matter_ota import tlv
from matter_ota.clusters.basic_information import BasicInfo
from matter_ota.clusters.general_commissioning import GeneralCommissioningCluster
from matter_ota.clusters.group_key_management import GroupKeyManagementCluster
from matter_ota.clusters.network_commissioning import NetworkCommissioningCluster
from matter_ota.clusters.operational_credentials import OperationalCredentialsCluster
from matter_ota.clusters.ota_provider import NothingAvailable
from matter_ota.clusters.root import build_root_node
from matter_ota.commissioning.commissionee import (
    Commissionee,
    CommissioningCompleted,
    FabricAdded,
    FabricRemoved,
    FabricStore,
    FailSafeExpired,
    MemoryFabricStore,
    NocRefused,
    NocStatus,
)
from matter_ota.commissioning.machine import Phase
from matter_ota.commissioning.persist import StoreFabrics
from matter_ota.crypto import attestation, certs
from matter_ota.crypto.certs import CertificateError
from matter_ota.crypto.certs_x509 import signature_to_der
from matter_ota.fabrics import CertificateAuthority, FabricTable
from matter_ota.im.acl import AccessControl, AccessControlEntry, AuthMode, Privilege
from matter_ota.im.messages import (
    CommandDataIB,
    CommandPathIB,
    InvokeRequest,
    InvokeResponse,
    Opcode,
    Status,
)
from matter_ota.im.server import InteractionServer
from matter_ota.messaging.session import SecureSession, SessionKind
from matter_ota.node import Node
from matter_ota.store import Store
from matter_ota.store.records import Fabric as StoredFabric

GC, OC = 0x0030, 0x003E
ADMIN = 112233
NOW = 1_800_000_000  # Unix seconds, for certificates


def _self_signed(cn: str, key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=9000))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def identity() -> attestation.DeviceAttestation:
    """A throw-away PAA and CD signer (the real test PAA is for the interop test)."""
    paa, cd = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    return attestation.mint_development_identity(
        paa_cert_pem=_self_signed("PAA", paa), paa_key_pem=_pem(paa),
        cd_signer_cert_pem=_self_signed("CD", cd), cd_signer_key_pem=_pem(cd),
        vendor_id=0xFFF1, product_id=0x8000, device_type_id=0x0014,
        now=datetime.datetime.now(datetime.UTC))


@dataclass
class Device:
    node: Node
    commissionee: Commissionee
    fabrics: FabricTable
    access: AccessControl
    store: FabricStore


def make_device(identity: attestation.DeviceAttestation,
                store: FabricStore | None = None) -> Device:
    node = make_node()
    fabrics, access = FabricTable(), AccessControl()
    info = BasicInfo(vendor_name="v", vendor_id=0xFFF1, product_name="p", product_id=0x8000,
                     unique_id="U")
    model = build_root_node(info, access, NothingAvailable())
    store = store or MemoryFabricStore()
    commissionee = Commissionee(node, fabrics, access, store, identity,
                                cert_time=lambda _now: NOW)
    for cluster in (GeneralCommissioningCluster(commissionee), NetworkCommissioningCluster(),
                    OperationalCredentialsCluster(commissionee),
                    GroupKeyManagementCluster(fabrics)):
        model.endpoints[0].add(cluster)
    InteractionServer(node, model, access)
    return Device(node, commissionee, fabrics, access, store)


def connect(device: Device, kind: SessionKind = SessionKind.PASE, fabric_index: int = 0,
            peer: int = 0) -> tuple[Client, SecureSession]:
    controller = make_node()
    c, s = secure_pair(controller, device.node, kind=kind, client_node_id=peer)
    s.fabric_index, s.peer_node_id = fabric_index, peer
    return Client(controller, device.node, c), s


def invoke(client: Client, cluster: int, command: int, fields: dict[int, Any]
           ) -> tuple[int | None, dict[Any, Any] | None]:
    """(IM status, None) or (None, response fields)."""
    request = InvokeRequest(suppress_response=False, timed_request=False, invoke_requests=[
        CommandDataIB(path=CommandPathIB(endpoint=0, cluster=cluster, command=command),
                      fields=fields)])
    conv: Conversation = client.send(Opcode.INVOKE_REQUEST, request.encode())
    ib = InvokeResponse.decode(conv.last().payload).invoke_responses[0]
    if ib.status is not None:
        return ib.status.status.status, None
    assert ib.command is not None
    return None, ib.command.fields


def arm(client: Client, seconds: int = 60) -> int:
    _, r = invoke(client, GC, 0x00, {0: tlv.uint(seconds), 1: tlv.uint(7)})
    assert r is not None
    return int(r[0])


def verify(identity: attestation.DeviceAttestation, message: bytes, signature: bytes) -> None:
    public = x509.load_der_x509_certificate(identity.dac).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature_to_der(signature), message, ec.ECDSA(hashes.SHA256()))


def commission_to_noc(client: Client, identity: attestation.DeviceAttestation,
                      ca: CertificateAuthority) -> dict[Any, Any]:
    """ArmFailSafe .. AddNOC as connectedhomeip's AutoCommissioner orders them."""
    assert arm(client) == 0
    _, r = invoke(client, GC, 0x02, {0: tlv.uint(2), 1: "XX", 2: tlv.uint(8)})
    assert r is not None and r[0] == 0
    for kind, expected in ((2, identity.pai), (1, identity.dac)):
        _, r = invoke(client, OC, 0x02, {0: tlv.uint(kind)})
        assert r is not None and r[0] == expected
    nonce = b"\x01" * 32
    _, r = invoke(client, OC, 0x00, {0: nonce})
    assert r is not None
    verify(identity, r[0] + KEYS.attestation_challenge, r[1])
    elements = tlv.decode(r[0])
    assert elements[1] == identity.certification_declaration and elements[2] == nonce
    _, r = invoke(client, OC, 0x04, {0: b"\x02" * 32})
    assert r is not None
    verify(identity, r[0] + KEYS.attestation_challenge, r[1])
    nocsr = tlv.decode(r[0])
    assert nocsr[2] == b"\x02" * 32
    noc = certs.make_noc_from_csr(nocsr[1], issuer=ca.icac, issuer_key=ca.icac_key,  # type: ignore[arg-type]
                                  node_id=0x4321, fabric_id=ca.fabric_id, now=NOW)
    status, _ = invoke(client, OC, 0x0B, {0: ca.rcac.to_tlv()})
    assert status == Status.SUCCESS
    assert ca.icac is not None
    _, r = invoke(client, OC, 0x06, {0: noc.to_tlv(), 1: ca.icac.to_tlv(),
                                     2: ca.ipk_epoch_key, 3: tlv.uint(ADMIN),
                                     4: tlv.uint(0xFFF1)})
    assert r is not None
    return r


def test_full_commissioning(identity: attestation.DeviceAttestation) -> None:
    device = make_device(identity)
    client, pase = connect(device)
    ca = CertificateAuthority(fabric_id=1, now=NOW)
    r = commission_to_noc(client, identity, ca)
    assert (r[0], r[1]) == (0, 1)  # NOCResponse OK, fabric index 1
    assert pase.fabric_index == 1  # the PASE session joined the new fabric
    fabric = device.fabrics.get(1)
    assert fabric is not None and fabric.node_id == 0x4321
    entries = device.access.entries(1)
    assert [(e.privilege, e.auth_mode, e.subjects) for e in entries] == [
        (Privilege.ADMINISTER, AuthMode.CASE, (ADMIN,))]
    assert any(isinstance(e, FabricAdded) for e in drain_events(device.node))
    # CommissioningComplete over PASE: InvalidAuthentication (it must come over CASE).
    _, r2 = invoke(client, GC, 0x04, {})
    assert r2 is not None and r2[0] == 2
    assert device.store.fabrics == {}  # type: ignore[attr-defined]
    # Over CASE but on another fabric: InvalidAuthentication too.
    device.access.set_entries(7, [AccessControlEntry(7, Privilege.ADMINISTER, AuthMode.CASE,
                                                     (5,))])
    stranger, _ = connect(device, SessionKind.CASE, fabric_index=7, peer=5)
    _, r2 = invoke(stranger, GC, 0x04, {})
    assert r2 is not None and r2[0] == 2
    case_client, _ = connect(device, SessionKind.CASE, fabric_index=1, peer=ADMIN)
    _, r3 = invoke(case_client, GC, 0x04, {})
    assert r3 is not None and r3[0] == 0
    assert device.commissionee.phase is Phase.IDLE
    assert set(device.store.fabrics) == {1}  # type: ignore[attr-defined]
    assert any(isinstance(e, CommissioningCompleted) for e in drain_events(device.node))
    # A second CommissioningComplete: no fail-safe any more.
    _, r4 = invoke(case_client, GC, 0x04, {})
    assert r4 is not None and r4[0] == 3


def test_illegal_steps_answer_with_the_spec_status(identity: attestation.DeviceAttestation
                                                   ) -> None:
    device = make_device(identity)
    client, _ = connect(device)
    ca = CertificateAuthority(fabric_id=1, now=NOW)
    # Not armed: FAILSAFE_REQUIRED for the credential commands.
    assert invoke(client, OC, 0x0B, {0: ca.rcac.to_tlv()})[0] == Status.FAILSAFE_REQUIRED
    assert invoke(client, OC, 0x04, {0: b"\x00" * 32})[0] == Status.FAILSAFE_REQUIRED
    assert arm(client) == 0
    # AddNOC before a root: NOCResponse InvalidNOC; after a root but without CSR: MissingCsr.
    noc = ca.issue(0x99).noc
    _, r = invoke(client, OC, 0x06, {0: noc, 2: bytes(16), 3: tlv.uint(ADMIN),
                                     4: tlv.uint(0xFFF1)})
    assert r is not None and r[0] == 3
    assert invoke(client, OC, 0x0B, {0: ca.rcac.to_tlv()})[0] == Status.SUCCESS
    assert invoke(client, OC, 0x0B, {0: ca.rcac.to_tlv()})[0] == Status.CONSTRAINT_ERROR
    _, r = invoke(client, OC, 0x06, {0: noc, 2: bytes(16), 3: tlv.uint(ADMIN),
                                     4: tlv.uint(0xFFF1)})
    assert r is not None and r[0] == 4
    # A NOC for another key than the CSR's: InvalidPublicKey.
    invoke(client, OC, 0x04, {0: b"\x00" * 32})
    _, r = invoke(client, OC, 0x06, {0: noc, 2: bytes(16), 3: tlv.uint(ADMIN),
                                     4: tlv.uint(0xFFF1)})
    assert r is not None and r[0] == 1
    assert len(device.fabrics) == 0
    # Not a root certificate: INVALID_COMMAND (in a fresh fail-safe).
    device2 = make_device(identity)
    client2, _ = connect(device2)
    arm(client2)
    assert invoke(client2, OC, 0x0B, {0: noc})[0] == Status.INVALID_COMMAND
    # A key for UpdateNOC over PASE: INVALID_COMMAND.
    assert invoke(client2, OC, 0x04, {0: bytes(32), 1: True})[0] == Status.INVALID_COMMAND
    # Bad nonce length: INVALID_COMMAND from the schema.
    assert invoke(client2, OC, 0x00, {0: b"short"})[0] == Status.INVALID_COMMAND


def test_expiry_rolls_back_everything(identity: attestation.DeviceAttestation) -> None:
    device = make_device(identity)
    client, pase = connect(device)
    ca = CertificateAuthority(fabric_id=1, now=NOW)
    commission_to_noc(client, identity, ca)
    assert len(device.fabrics) == 1 and device.access.entries(1)
    drain_events(device.node)
    client.advance(59)
    assert len(device.fabrics) == 1
    client.advance(2)
    assert len(device.fabrics) == 0 and device.access.entries(1) == ()
    assert pase.fabric_index == 0 and device.commissionee.phase is Phase.IDLE
    assert device.commissionee.breadcrumb == 0
    events = drain_events(device.node)
    assert FabricRemoved(1) in events and any(isinstance(e, FailSafeExpired) for e in events)
    assert device.store.fabrics == {}  # type: ignore[attr-defined]
    # A fresh fail-safe can commission again from the start.
    r = commission_to_noc(client, identity, CertificateAuthority(fabric_id=2, now=NOW))
    assert (r[0], r[1]) == (0, 1)


def test_disarm_rolls_back_and_other_admin_is_busy(identity: attestation.DeviceAttestation
                                                   ) -> None:
    device = make_device(identity)
    client, _ = connect(device)
    commission_to_noc(client, identity, CertificateAuthority(fabric_id=1, now=NOW))
    # An administrator of another fabric cannot arm while this fail-safe runs.
    device.access.set_entries(7, [AccessControlEntry(7, Privilege.ADMINISTER, AuthMode.CASE,
                                                     (5,))])
    other, _ = connect(device, SessionKind.CASE, fabric_index=7, peer=5)
    assert arm(other) == 4  # BusyWithOtherAdmin
    # The commissioner (its PASE session is on the new fabric now) re-arms, then disarms:
    # ArmFailSafe(0) rolls everything back at once.
    assert arm(client, 120) == 0
    assert arm(client, 0) == 0
    assert len(device.fabrics) == 0 and device.access.entries(1) == ()
    assert device.commissionee.phase is Phase.IDLE


def test_committed_fabric_survives_restart(identity: attestation.DeviceAttestation,
                                           tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    device = make_device(identity, StoreFabrics(store))
    client, _ = connect(device)
    commission_to_noc(client, identity, CertificateAuthority(fabric_id=1, now=NOW))
    case_client, _ = connect(device, SessionKind.CASE, fabric_index=1, peer=ADMIN)
    _, r = invoke(case_client, GC, 0x04, {})
    assert r is not None and r[0] == 0
    fabric = device.fabrics.get(1)
    store.close()
    again = StoreFabrics(Store.open(tmp_path)).load()
    assert len(again) == 1
    loaded, acl = again[0]
    assert loaded.to_dict() == fabric.to_dict()  # type: ignore[union-attr]
    assert [(e.privilege, e.subjects) for e in acl] == [(Privilege.ADMINISTER, (ADMIN,))]
    again_store = StoreFabrics(Store.open(tmp_path))
    # RemoveFabric over CASE removes it from the store too.
    device2 = make_device(identity, again_store)
    device2.fabrics.add(loaded)
    device2.access.set_entries(1, acl)
    device2.commissionee.committed.add(1)
    c2, _ = connect(device2, SessionKind.CASE, fabric_index=1, peer=ADMIN)
    _, r = invoke(c2, OC, 0x0A, {0: tlv.uint(1)})
    assert r is not None and r[0] == 0
    assert again_store.load() == [] and len(device2.fabrics) == 0
    # The fabric's sessions close once the response is out.
    c2.advance(0.1)
    assert all(s.fabric_index != 1 for s in device2.node.sessions)


def commissioned(identity: attestation.DeviceAttestation, store: FabricStore | None = None
                 ) -> tuple[Device, CertificateAuthority, Client]:
    """A device commissioned onto one fabric; the commissioner's CASE client."""
    device = make_device(identity, store)
    pase_client, _ = connect(device)
    ca = CertificateAuthority(fabric_id=1, now=NOW)
    commission_to_noc(pase_client, identity, ca)
    case_client, _ = connect(device, SessionKind.CASE, fabric_index=1, peer=ADMIN)
    _, r = invoke(case_client, GC, 0x04, {})
    assert r is not None and r[0] == 0
    return device, ca, case_client


def test_an_administrator_arms_and_completes_without_changes(
        identity: attestation.DeviceAttestation) -> None:
    store = MemoryFabricStore()
    device, _, client = commissioned(identity, store)
    saved = dict(store.fabrics)
    drain_events(device.node)
    assert arm(client) == 0
    _, r = invoke(client, GC, 0x04, {})
    assert r is not None and r[0] == 0
    assert device.commissionee.phase is Phase.IDLE and store.fabrics == saved
    assert not any(isinstance(e, CommissioningCompleted) for e in drain_events(device.node))


def test_update_noc_replaces_the_key_and_rolls_back(identity: attestation.DeviceAttestation
                                                    ) -> None:
    device, ca, client = commissioned(identity)
    old = device.fabrics.get(1)
    assert old is not None and ca.icac is not None and ca.icac_key is not None

    def update() -> dict[Any, Any]:
        assert arm(client) == 0
        _, r = invoke(client, OC, 0x04, {0: b"\x03" * 32, 1: True})
        assert r is not None
        csr = tlv.decode(r[0])[1]
        noc = certs.make_noc_from_csr(csr, issuer=ca.icac, issuer_key=ca.icac_key,  # type: ignore[arg-type]
                                      node_id=0x4321, fabric_id=1, now=NOW)
        _, r = invoke(client, OC, 0x07, {0: noc.to_tlv(), 1: ca.icac.to_tlv()})  # type: ignore[union-attr]
        assert r is not None
        return r

    r = update()
    assert (r[0], r[1]) == (0, 1)
    assert device.fabrics.get(1).operational_key != old.operational_key  # type: ignore[union-attr]
    client.advance(61)  # no CommissioningComplete: the old NOC and key come back
    assert device.fabrics.get(1) == old
    r = update()
    _, done = invoke(client, GC, 0x04, {})
    assert done is not None and done[0] == 0
    assert device.fabrics.get(1).operational_key != old.operational_key  # type: ignore[union-attr]
    # AddNOC-style CSR for UpdateNOC (IsForUpdateNOC false): MissingCsr.
    assert arm(client) == 0
    invoke(client, OC, 0x04, {0: b"\x04" * 32})
    _, r = invoke(client, OC, 0x07, {0: old.noc})
    assert r is not None and r[0] == 4


def test_labels_are_unique_and_acl_writes_persist(identity: attestation.DeviceAttestation
                                                  ) -> None:
    store = MemoryFabricStore()
    device, ca, client = commissioned(identity, store)
    _, r = invoke(client, OC, 0x09, {0: "home"})
    assert r is not None and (r[0], r[1]) == (0, 1)
    assert store.fabrics[1][0].label == "home"
    # A second fabric may not take the same label.
    pase2, _ = connect(device)
    commission_to_noc(pase2, identity, CertificateAuthority(fabric_id=2, now=NOW))
    case2, _ = connect(device, SessionKind.CASE, fabric_index=2, peer=ADMIN)
    invoke(case2, GC, 0x04, {})
    _, r = invoke(case2, OC, 0x09, {0: "home"})
    assert r is not None and r[0] == 10  # LabelConflict
    # The same fabric again (same root key, same fabric id): FabricConflict.
    pase3, _ = connect(device)
    r = commission_to_noc(pase3, identity, CertificateAuthority(fabric_id=1, now=NOW,
                                                                root_key=ca.root_key))
    assert r[0] == 9 and len(device.fabrics) == 2
    assert arm(pase3, 0) == 0
    # An ACL change of a committed fabric is saved with it.
    entries = device.access.entries(1)
    device.access.set_entries(1, [*entries, AccessControlEntry(1, Privilege.VIEW,
                                                               AuthMode.CASE, (0x77,))])
    assert [e.subjects for e in store.fabrics[1][1]] == [(ADMIN,), (0x77,)]


def test_an_unreadable_stored_fabric_is_skipped(identity: attestation.DeviceAttestation,
                                                tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    fabrics = StoreFabrics(store)
    device, _, _ = commissioned(identity, fabrics)
    good = device.fabrics.get(1)
    assert good is not None
    broken = dict(good.to_dict(), fabric_index=2, noc="00")
    store.put_fabric(StoredFabric(2, "0011223344556677", "", None, 1, broken), 0.0)
    loaded = fabrics.load()
    assert [f.fabric_index for f, _ in loaded] == [1]
    store.close()


_CA = CertificateAuthority(fabric_id=1, now=NOW)
_VALID_NOC = _CA.issue(0x55).noc


def _mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with one byte changed, truncated, or as is."""
    return st.one_of(
        st.just(data),
        st.integers(0, len(data) - 1).map(lambda n: data[:n]),
        st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)).map(
            lambda p: data[:p[0]] + bytes([data[p[0]] ^ p[1]]) + data[p[0] + 1:]),
    )


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(root=st.one_of(st.binary(max_size=300), _mutated(_CA.rcac.to_tlv())),
       noc=st.one_of(st.binary(max_size=300), _mutated(_VALID_NOC)),
       icac=st.one_of(st.none(), st.binary(max_size=300),
                      _mutated(_CA.icac.to_tlv())))  # type: ignore[union-attr]
def test_random_certificates_are_refused_cleanly(identity: attestation.DeviceAttestation,
                                                 root: bytes, noc: bytes,
                                                 icac: bytes | None) -> None:
    """Whatever a commissioner sends as certificates, the answer is a refusal with a status,
    never another exception (which the IM server would turn into FAILURE). The NOC is never
    for the CSR's key here, so no fabric is ever added."""
    device = make_device(identity)
    c = device.commissionee
    c.arm(60, 0, 0, None, 0.0)
    c.csr(bytes(32), False, bytes(16))
    with contextlib.suppress(CertificateError):
        c.add_root(root)
    with pytest.raises(NocRefused) as info:
        c.add_noc(noc, icac, bytes(16), ADMIN, 0xFFF1, None, 0.0)
    assert info.value.status in (NocStatus.INVALID_PUBLIC_KEY, NocStatus.INVALID_NOC)
    assert len(device.fabrics) == 0 and c.phase in (Phase.ARMED, Phase.ROOT_ADDED)


def test_group_key_management_reports_the_ipk_key_set(identity: attestation.DeviceAttestation
                                                      ) -> None:
    _, _, client = commissioned(identity)
    gkm = 0x003F
    _, r = invoke(client, gkm, 0x04, {})
    assert r is not None and r[0] == [0]
    _, r = invoke(client, gkm, 0x01, {0: tlv.uint(0)})
    assert r is not None
    key_set = r[0]
    assert key_set[0] == 0 and key_set[1] == 0  # key set 0, TrustFirst
    assert key_set[2] is None and key_set[4] is None and key_set[6] is None  # keys unreadable
    status, _ = invoke(client, gkm, 0x01, {0: tlv.uint(5)})
    assert status == Status.NOT_FOUND
