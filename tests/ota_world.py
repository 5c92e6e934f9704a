"""A whole provider in memory for end-to-end tests: config files, state store, release console,
the provider node and emulated requestors (``from ota_world import World``).

Releases go through the real console (YAML edits, audit log); the provider's state is rebuilt
from config + store with :func:`matter_ota.facts.build_state` whenever the files change, as
the daemon's reload does.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from matter_ota.config import load_config
from matter_ota.emulator.fleet import Fleet, FleetFabric
from matter_ota.emulator.requestor import Behaviour, Identity, Requestor
from matter_ota.facts import build_state
from matter_ota.operations import Console
from matter_ota.ota_image import build_image
from matter_ota.policy.engine import decide
from matter_ota.policy.model import Product, ReleaseKey, ReleaseState
from matter_ota.provider.core import Decider, OtaProvider, ProviderSettings
from matter_ota.provider.images import DclResolver, ImageFiles
from matter_ota.store import Store

VID, PID = 0xFFF1, 0x8001
PRODUCT = Product(VID, PID)
KEY = ReleaseKey("production", PRODUCT)
CERT_NOW = 1_750_000_000  # certificates' notBefore; the nodes check CASE against it


def make_image(path: Path, version: int, size: int = 40_000, **kw: Any) -> bytes:
    payload = random.Random(version).randbytes(size)
    data = build_image(payload, vendor_id=VID, product_id=PID, software_version=version,
                       software_version_string=f"{version}.0", **kw)
    path.write_bytes(data)
    return data


@dataclass
class World:
    root: Path
    max_transfers: int | None = None
    settings: ProviderSettings = ProviderSettings()
    provider_yaml: dict[str, Any] = field(default_factory=dict)
    decide: Decider = decide
    dcl: DclResolver | None = None
    fleet: Fleet = field(init=False)
    store: Store = field(init=False)
    console: Console = field(init=False)
    provider: OtaProvider = field(init=False)
    _state: ReleaseState | None = None
    _stamp: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        (self.root / "firmware").mkdir()
        (self.root / "in").mkdir()
        doc: dict[str, Any] = {"state_dir": "state", "firmware_dir": "firmware",
                               "releases_file": "releases.yaml",
                               "dcl": {"url": "https://127.0.0.1:9"}}
        if self.max_transfers is not None:
            doc["limits"] = {"max_concurrent_transfers": self.max_transfers}
        doc.update(self.provider_yaml)
        (self.root / "provider.yaml").write_text(yaml.safe_dump(doc))
        (self.root / "releases.yaml").write_text("releases: []\n")
        config = load_config(self.root / "provider.yaml")
        self.store = Store.open(config.provider.state_dir)
        self.console = Console(config.provider, self.store, actor="test",
                               clock=lambda: CERT_NOW + self.fleet.now)
        fabric = FleetFabric.create(CERT_NOW)
        fabrics, provider_fabric = Fleet.provider_fabrics(fabric)
        self.provider = OtaProvider(
            self.store, self.state, fabrics, ImageFiles(config.provider.firmware_dir, self.dcl),
            decide=self.decide, wall=lambda now: CERT_NOW + now, settings=self.settings,
            auto_stop=lambda key, reason: self.console.auto_stop(key, reason) and None,
        )
        self.fleet = Fleet(self.provider, fabric, provider_fabric, cert_time=CERT_NOW + 1)

    def close(self) -> None:
        self.store.close()

    # -- state, as the daemon's reload keeps it -----------------------------------------------

    def state(self) -> ReleaseState:
        files = [self.root / "provider.yaml", self.root / "releases.yaml"]
        stamp = tuple(p.stat().st_mtime_ns for p in files) + tuple(
            p.stat().st_size for p in files)
        if self._state is None or stamp != self._stamp:
            config = load_config(self.root / "provider.yaml")
            self._state = build_state(config.provider, config.releases, self.store)
            self._stamp = stamp
        return self._state

    def reload(self) -> None:
        self._state = None

    # -- operator -----------------------------------------------------------------------------

    def release(self, version: int, percent: int = 100, *, same_set: bool | None = False,
                size: int = 40_000, extra: dict[str, Any] | None = None, **kw: Any) -> bytes:
        image = self.root / "in" / f"fw-{version}.ota"
        data = make_image(image, version, size, **kw)
        self.console.release(channel="production", image=image, percent=percent,
                             same_set=same_set, product=None)
        if extra:
            doc = yaml.safe_load((self.root / "releases.yaml").read_text())
            doc["releases"][0].update(extra)
            (self.root / "releases.yaml").write_text(yaml.safe_dump(doc))
        self.reload()
        return data

    # -- devices ------------------------------------------------------------------------------

    def requestor(self, version: int = 1, behaviour: Behaviour | None = None,
                  **identity: Any) -> Requestor:
        return self.fleet.add_requestor(Identity(software_version=version, **identity),
                                        behaviour)

    def start(self, *requestors: Requestor) -> None:
        for r in requestors:
            r.start(self.fleet.now)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
