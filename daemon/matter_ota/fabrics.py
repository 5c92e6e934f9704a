"""The node's fabrics (spec 11.18 Operational Credentials, 4.3.2.2, 4.17.2) and a small CA.

:class:`FabricInfo` is one row of the fabric table: the trusted root, the node's NOC (and ICAC),
its operational key, the IPK epoch key and the identifiers derived from them. It is a plain
frozen dataclass with :meth:`FabricInfo.to_dict` / :meth:`FabricInfo.from_dict` (JSON-safe) so the
state store can persist it. :class:`FabricTable` finds the fabric a Sigma1 destination id names.
:class:`CertificateAuthority` issues NOCs: the emulator's fabric admin and the tests use it.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from matter_ota.crypto import case_keys, certs
from matter_ota.crypto.certs import CertificateError, MatterCertificate

MIN_FABRIC_INDEX, MAX_FABRIC_INDEX = 1, 254  # 7.5.2 fabric-idx


def private_key_from_bytes(scalar: bytes) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from its 32-octet scalar."""
    return ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())


def private_key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The 32-byte big-endian scalar of a P-256 private key."""
    return key.private_numbers().private_value.to_bytes(32, "big")


@dataclass(frozen=True)
class FabricInfo:
    """One fabric this node belongs to. Certificates are in Matter TLV form."""

    fabric_index: int
    rcac: bytes
    noc: bytes
    icac: bytes | None
    operational_key: bytes  # the 32-octet P-256 private scalar
    ipk_epoch_key: bytes  # 16 octets, from AddNOC's IPKValue
    vendor_id: int
    label: str = ""
    # derived in __post_init__
    fabric_id: int = field(init=False)
    node_id: int = field(init=False)
    root_public_key: bytes = field(init=False)
    compressed_fabric_id: bytes = field(init=False)
    ipk: bytes = field(init=False, repr=False)
    cats: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not MIN_FABRIC_INDEX <= self.fabric_index <= MAX_FABRIC_INDEX:
            raise ValueError(f"fabric index {self.fabric_index} outside 1..254")
        if len(self.ipk_epoch_key) != 16 or len(self.operational_key) != 32:
            raise ValueError("IPK epoch key must be 16 octets and the operational key 32")
        rcac = MatterCertificate.from_tlv(self.rcac)
        noc = MatterCertificate.from_tlv(self.noc)
        icac = MatterCertificate.from_tlv(self.icac) if self.icac is not None else None
        info = certs.validate_chain(noc, icac, rcac, now=None)
        key = private_key_from_bytes(self.operational_key)
        if certs.public_key_bytes(key) != noc.public_key:
            raise CertificateError("operational key does not match the NOC")
        cfid = case_keys.compressed_fabric_id(rcac.public_key, info.fabric_id)
        derived = {
            "fabric_id": info.fabric_id,
            "node_id": info.node_id,
            "root_public_key": rcac.public_key,
            "compressed_fabric_id": cfid,
            "ipk": case_keys.operational_group_key(self.ipk_epoch_key, cfid),
            "cats": info.cats,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_key", key)

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The node's operational private key on this fabric (its NOC's key)."""
        key: ec.EllipticCurvePrivateKey = self.__dict__["_key"]
        return key

    def destination_id(self, initiator_random: bytes, node_id: int | None = None) -> bytes:
        """The destination id naming ``node_id`` (default: this node) on this fabric."""
        return case_keys.destination_id(
            self.ipk,
            initiator_random,
            self.root_public_key,
            self.fabric_id,
            self.node_id if node_id is None else node_id,
        )

    def operational_instance_name(self) -> str:
        """The DNS-SD instance name ``<compressed fabric id>-<node id>`` (4.3.1)."""
        return f"{self.compressed_fabric_id.hex().upper()}-{self.node_id:016X}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form; :meth:`from_dict` restores it."""
        return {
            "fabric_index": self.fabric_index,
            "rcac": self.rcac.hex(),
            "icac": None if self.icac is None else self.icac.hex(),
            "noc": self.noc.hex(),
            "operational_key": self.operational_key.hex(),
            "ipk_epoch_key": self.ipk_epoch_key.hex(),
            "vendor_id": self.vendor_id,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FabricInfo:
        """The inverse of :meth:`to_dict`."""
        return cls(
            fabric_index=int(d["fabric_index"]),
            rcac=bytes.fromhex(d["rcac"]),
            icac=None if d.get("icac") is None else bytes.fromhex(d["icac"]),
            noc=bytes.fromhex(d["noc"]),
            operational_key=bytes.fromhex(d["operational_key"]),
            ipk_epoch_key=bytes.fromhex(d["ipk_epoch_key"]),
            vendor_id=int(d["vendor_id"]),
            label=str(d.get("label", "")),
        )


class FabricTable:
    """The fabrics of this node, by fabric index."""

    def __init__(self, fabrics: list[FabricInfo] | None = None) -> None:
        self._by_index: dict[int, FabricInfo] = {}
        for f in fabrics or []:
            self.add(f)

    def __iter__(self) -> Iterator[FabricInfo]:
        return iter(list(self._by_index.values()))

    def __len__(self) -> int:
        return len(self._by_index)

    def get(self, fabric_index: int) -> FabricInfo | None:
        """The fabric at ``fabric_index``, or None."""
        return self._by_index.get(fabric_index)

    def next_index(self) -> int:
        """The lowest unused fabric index."""
        for i in range(MIN_FABRIC_INDEX, MAX_FABRIC_INDEX + 1):
            if i not in self._by_index:
                return i
        raise ValueError("fabric table is full")

    def add(self, fabric: FabricInfo) -> None:
        """Add or replace the fabric at its index; one entry per (root key, fabric id)."""
        for other in self._by_index.values():
            same = (other.root_public_key, other.fabric_id) == (
                fabric.root_public_key,
                fabric.fabric_id,
            )
            if same and other.fabric_index != fabric.fabric_index:
                raise ValueError("this fabric is already in the table")
        self._by_index[fabric.fabric_index] = fabric

    def remove(self, fabric_index: int) -> FabricInfo | None:
        """Remove the fabric at ``fabric_index``; the removed entry, or None."""
        return self._by_index.pop(fabric_index, None)

    def find_by_destination_id(
        self, destination_id: bytes, initiator_random: bytes
    ) -> FabricInfo | None:
        """The fabric whose IPK, root, fabric id and our node id produce ``destination_id``."""
        for fabric in self._by_index.values():
            if hmac.compare_digest(fabric.destination_id(initiator_random), destination_id):
                return fabric
        return None


@dataclass
class CertificateAuthority:
    """A fabric's root (and optional intermediate) CA, issuing NOCs.

    What a commissioner's fabric admin does: the emulator and tests build fabrics with it.
    """

    fabric_id: int
    now: int
    vendor_id: int = 0xFFF1
    with_icac: bool = True
    ipk_epoch_key: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    root_key: ec.EllipticCurvePrivateKey = field(default_factory=certs.generate_key)
    rcac: MatterCertificate = field(init=False)
    icac_key: ec.EllipticCurvePrivateKey | None = field(init=False, default=None)
    icac: MatterCertificate | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.rcac = certs.make_rcac(self.root_key, rcac_id=1, now=self.now)
        if self.with_icac:
            self.icac_key = certs.generate_key()
            self.icac = certs.make_icac(
                certs.public_key_bytes(self.icac_key),
                issuer=self.rcac,
                issuer_key=self.root_key,
                icac_id=2,
                now=self.now,
            )

    def issue(
        self,
        node_id: int,
        *,
        fabric_index: int = 1,
        key: ec.EllipticCurvePrivateKey | None = None,
        cats: tuple[int, ...] = (),
        not_after: int | None = None,
        label: str = "",
    ) -> FabricInfo:
        """A :class:`FabricInfo` for ``node_id`` with a freshly issued NOC (CSR round trip)."""
        key = key or certs.generate_key()
        issuer, issuer_key = (
            (self.icac, self.icac_key)
            if self.icac is not None and self.icac_key is not None
            else (self.rcac, self.root_key)
        )
        noc = certs.make_noc(
            certs.csr_public_key(certs.make_csr(key)),
            issuer=issuer,
            issuer_key=issuer_key,
            node_id=node_id,
            fabric_id=self.fabric_id,
            now=self.now,
            cats=cats,
            not_after=not_after,
        )
        return FabricInfo(
            fabric_index=fabric_index,
            rcac=self.rcac.to_tlv(),
            icac=None if self.icac is None else self.icac.to_tlv(),
            noc=noc.to_tlv(),
            operational_key=private_key_bytes(key),
            ipk_epoch_key=self.ipk_epoch_key,
            vendor_id=self.vendor_id,
            label=label,
        )
