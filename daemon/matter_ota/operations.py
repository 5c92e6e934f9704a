"""The release console's operations: validated, atomic, audited edits of releases.yaml.

Each operation reads releases.yaml, applies one transition of the release state machine
(:mod:`matter_ota.policy.transitions`, pure), writes back only the values that changed
(:mod:`matter_ota.yamledit`: comments and layout stay), checks the result with the same
loader the daemon uses before the rename, and appends a row to the audit log with the
release before and after. A concurrent edit of the file makes the operation decide again
on the new content (or give up after a few attempts), never overwrite it.

The YAML is written before the audit row: a crash in between leaves the transition done and
unrecorded (never recorded and not done). The daemon picks the change up by itself
(:mod:`matter_ota.reload`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from matter_ota import yamledit
from matter_ota.config import (
    ProviderConfig,
    ReleasesConfig,
    load_releases,
    parse_releases,
    release_to_yaml,
)
from matter_ota.ota_image import OtaImageError, OtaImageHeader, read_header, verify_image
from matter_ota.policy import engine, transitions
from matter_ota.policy.model import (
    DEFAULT_CHANNEL,
    OutcomeCounts,
    Product,
    Release,
    ReleaseKey,
    Source,
)
from matter_ota.provider.uri import ImageUriError, check_designator
from matter_ota.store import Store
from matter_ota.yamlnodes import ConfigError

LIST_KEY = "releases"


class OperationError(Exception):
    """An operation refused or failed; the message says why and what to do."""


@dataclass(frozen=True)
class Change:
    """One release transition as written: the row before (None: new) and after."""

    action: str
    key: ReleaseKey
    before: Release | None
    after: Release


Transition = Callable[[Release | None], Release]


class Console:
    """The operations an operator runs on the releases of one provider config."""

    def __init__(
        self,
        provider: ProviderConfig,
        store: Store,
        *,
        actor: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.store = store
        self.actor = actor
        self.clock = clock

    @property
    def releases_path(self) -> Path:
        """releases.yaml, as provider.yaml names it."""
        return self.provider.releases_file

    def now(self) -> datetime:
        """The console clock as an aware UTC datetime, in whole seconds."""
        # Whole seconds: released_at is read by people and diffed in git.
        return datetime.fromtimestamp(int(self.clock()), UTC)

    # -- reading ----------------------------------------------------------------------------

    def load(self, path: Path | None = None) -> ReleasesConfig:
        """releases.yaml (or a candidate) validated against the provider's channels."""
        return load_releases(path or self.releases_path, self.provider.channel_names)

    def current(self) -> ReleasesConfig:
        """releases.yaml, which must be valid before an edit (OperationError otherwise)."""
        try:
            return self.load()
        except ConfigError as exc:
            raise OperationError(
                f"{exc}. The file must be valid before the CLI edits it; fix it by hand "
                "(`matter-ota releases` shows what is serving)"
            ) from None

    def serving(self) -> tuple[ReleasesConfig | None, list[str]]:
        """The releases on disk; if that file is invalid, the last valid version (what a
        running daemon keeps serving) and warnings that say so."""
        warnings = [f"{w.file}:{w.line or '-'}: {w.reason} (seen by the daemon)"
                    for w in self.store.config_warnings()]
        try:
            text = self.releases_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self.load(), warnings
        except (OSError, UnicodeDecodeError):
            text = None
        try:
            if text is None:
                return self.load(), warnings  # raises the loader's error for the message
            config = parse_releases(text, self.releases_path, self.provider.channel_names)
            if self.store.last_valid_config(str(self.releases_path)) != text:
                self.store.save_valid_config(str(self.releases_path), text, self.clock())
            return config, warnings
        except ConfigError as exc:
            warnings.append(f"{exc}. The file on disk is invalid: a running daemon keeps "
                            "serving the last valid version, shown here. Fix the file.")
        text = self.store.last_valid_config(str(self.releases_path))
        if text is None:
            return None, warnings
        try:
            return parse_releases(text, self.releases_path, self.provider.channel_names), warnings
        except ConfigError:
            return None, warnings

    def check_channel(self, channel: str) -> None:
        """OperationError unless provider.yaml defines ``channel``."""
        names = self.provider.channel_names
        if channel not in names:
            raise OperationError(
                f"unknown channel {channel!r}; channels in {self.provider.path}: "
                + ", ".join(sorted(names))
            )

    def resolve_product(self, channel: str, product: Product | None) -> Product:
        """The product named, or the channel's only release's product."""
        self.check_channel(channel)
        if product is not None:
            return product
        products = sorted(r.product for r in self.current().releases if r.channel == channel)
        if not products:
            raise OperationError(f"channel {channel!r} has no release yet")
        if len(products) > 1:
            raise OperationError(
                f"channel {channel!r} has releases for {', '.join(map(str, products))}; "
                "say which with --product VID:PID"
            )
        return products[0]

    # -- the operations ---------------------------------------------------------------------

    def release(
        self,
        *,
        channel: str,
        image: Path,
        percent: int | None,
        same_set: bool | None,
        product: Product | None,
    ) -> Change:
        """Release an image file: to a new set of devices (new seed) or the same set.

        Everything that can be refused is checked before the image is copied into the
        firmware folder; a copy made for a release that is then refused is removed again.
        """
        self.check_channel(channel)
        header = self._read_header(image)
        image_product = Product(header.vendor_id, header.product_id)
        if product is not None and product != image_product:
            raise OperationError(
                f"{image} is an image for {image_product}, not {product}; check the file or "
                "--product"
            )
        if percent is not None and not _is_percent(percent):
            _bad(percent)
        key = ReleaseKey(channel, image_product)
        existing = self.current().get(channel, image_product)
        if same_set is None and existing is not None:
            raise OperationError(
                f"{key} already has a release ({existing.status.value}, "
                f"{existing.rollout_percent} %); say --same-set (same devices, new image) or "
                "--new-set (a new random set)"
            )
        if not same_set and percent is None:
            raise OperationError("a release to a new set of devices needs --percent N (1-100)")
        name = image.name
        try:
            check_designator(name)  # the file name is the designator the ImageURI carries
        except ImageUriError as exc:
            raise OperationError(f"{exc}; rename {name[:40]!r} to a shorter name") from None
        version = header.software_version

        def transition(current: Release | None) -> Release:
            now = self.now()
            try:
                if same_set:
                    return transitions.release_same_set(
                        current, image=name, version=version, now=now, percent=percent)
                assert percent is not None
                return transitions.release_new_set(
                    current, channel=channel, product=image_product, image=name,
                    version=version, percent=percent, now=now)
            except transitions.ReleaseError as exc:
                raise OperationError(str(exc)) from None

        transition(existing)  # pure: refuses now, before anything is copied
        name, verified, created = self._import_image(image)
        if (verified.vendor_id, verified.product_id, verified.software_version) != (
                header.vendor_id, header.product_id, header.software_version):
            if created is not None:
                created.unlink(missing_ok=True)
            raise OperationError(f"{image} changed while it was being released; try again")
        action = "release --same-set" if same_set else "release --new-set"
        try:
            return self._apply(action, key, transition)
        except BaseException:
            if created is not None:
                created.unlink(missing_ok=True)
            raise

    def stop(self, channel: str, product: Product | None) -> Change:
        """Stop the channel's release: INACTIVE, no new offers (see :mod:`.policy.transitions`)."""
        key = ReleaseKey(channel, self.resolve_product(channel, product))
        return self._apply("stop", key, lambda r: transitions.stop(r, now=self.now()))

    def resume(self, channel: str, product: Product | None) -> Change:
        """Resume a stopped release: LIVE again with the same seed and percent."""
        key = ReleaseKey(channel, self.resolve_product(channel, product))
        return self._apply("resume", key, lambda r: transitions.resume(r, now=self.now()))

    def increase(self, channel: str, percent: int, product: Product | None) -> Change:
        """Grow the release's rollout to ``percent`` (never shrinks it)."""
        if not _is_percent(percent):
            _bad(percent)
        key = ReleaseKey(channel, self.resolve_product(channel, product))
        return self._apply(
            "increase", key, lambda r: transitions.increase(r, percent=percent, now=self.now()))

    def switch_source(
        self, channel: str, to: Source, product: Product | None, percent: int | None = None
    ) -> list[Change]:
        """Switch one product's release, or the whole channel, to the DCL or to local.

        For the whole channel, rows already where they should be are left alone (a DCL row
        when following the DCL; a local or already stopped DCL row when going local); the
        rest change together in one edit, or none does.
        """
        self.check_channel(channel)
        if percent is not None and not _is_percent(percent):
            _bad(percent)
        op = transitions.Op.SOURCE_DCL if to is Source.DCL else transitions.Op.SOURCE_LOCAL
        if product is not None:
            products = [product]
        else:
            rows = [r for r in self.current().releases if r.channel == channel]
            if not rows:
                raise OperationError(
                    f"channel {channel!r} has no release yet; name the product that should "
                    "follow the DCL with --product VID:PID"
                )
            pending = [r for r in rows if (transitions.row_state(r), op) in transitions.TRANSITIONS]
            products = sorted(r.product for r in (pending or rows[:1]))

        def transition(p: Product) -> Transition:
            def switch(current: Release | None) -> Release:
                return transitions.switch_source(
                    current, channel=channel, product=p, to=to, now=self.now(),
                    percent=percent if percent is not None else 100)

            return switch

        return self._apply_all(
            f"source {to.value}", [(ReleaseKey(channel, p), transition(p)) for p in products])

    # -- the daemon's automatic transitions ------------------------------------------------

    def auto_stop(self, key: ReleaseKey, reason: str) -> Change:
        """Failures crossed the release's threshold: INACTIVE, with the reason recorded in
        the YAML (shown by `releases`) and the audit log."""
        return self._apply(
            "auto-stop", key, lambda r: transitions.auto_stop(r, reason=reason, now=self.now()),
            reason=reason)

    def advance_ramp(self, key: ReleaseKey, counts: OutcomeCounts) -> Change | None:
        """Move a staged ramp to its next step if that step is due (None when not)."""
        current = self.current().get(key.channel, key.product)
        if current is None or engine.advance_ramp(current, counts, self.now()) is None:
            return None

        def step(release: Release | None) -> Release:
            after = None if release is None else engine.advance_ramp(release, counts,
                                                                     self.now())
            if after is None:  # the file changed meanwhile and the step is no longer due
                raise OperationError(f"{key}: the ramp step is no longer due")
            return after

        return self._apply("ramp", key, step, reason="ramp step due, failures under threshold")

    # -- the machinery ----------------------------------------------------------------------

    def _apply(
        self, action: str, key: ReleaseKey, transition: Transition, *, reason: str = ""
    ) -> Change:
        return self._apply_all(action, [(key, transition)], reason=reason)[0]

    def _apply_all(
        self, action: str, steps: list[tuple[ReleaseKey, Transition]], *, reason: str = ""
    ) -> list[Change]:
        """Apply transitions to releases in one edit of the file (all or none), then record
        one audit row per release."""
        done: list[Change] = []

        def transform(snap: yamledit.Snapshot) -> str:
            done.clear()
            config = self.current()
            text = snap.text
            for key, transition in steps:
                before = config.get(key.channel, key.product)
                try:
                    after = transition(before)
                except transitions.ReleaseError as exc:
                    raise OperationError(str(exc)) from None
                done.append(Change(action, key, before, after))
                text = _write_row(text, key, before, after)
            return text

        try:
            written = yamledit.edit(self.releases_path, transform, self._validate)
        except yamledit.YamlEditError as exc:
            raise OperationError(str(exc)) from None
        now = self.clock()
        for change in done:
            self.store.record_transition(
                file=str(self.releases_path), text=written.text,
                actor=self.actor, action=action, now=now, channel=change.key.channel,
                product=str(change.key.product),
                before=None if change.before is None else release_to_yaml(change.before),
                after=release_to_yaml(change.after), reason=reason,
            )
        return list(done)

    def _validate(self, candidate: Path) -> None:
        try:
            self.load(candidate)
        except ConfigError as exc:
            # A transition produced a file the loader refuses: a bug, never written.
            raise yamledit.YamlEditError(
                f"the edit would make {self.releases_path.name} invalid ({exc}); nothing "
                "was changed"
            ) from None

    def _verify_image(self, image: Path, shown: Path | None = None) -> OtaImageHeader:
        name = shown or image
        try:
            return verify_image(image)
        except OtaImageError as exc:
            raise OperationError(f"{name}: not a valid OTA image: {exc}") from None
        except OSError as exc:
            raise OperationError(f"{name}: cannot read: {exc.strerror}") from None

    def _read_header(self, image: Path) -> OtaImageHeader:
        """The image's header (cheap: the file's first bytes), or a one-line refusal."""
        try:
            return read_header(image)
        except OtaImageError as exc:
            raise OperationError(f"{image}: not a valid OTA image: {exc}") from None
        except OSError as exc:
            raise OperationError(f"{image}: cannot read: {exc.strerror}") from None

    def _import_image(self, image: Path) -> tuple[str, OtaImageHeader, Path | None]:
        """Verify the image and place it in the firmware folder: its name there, its header,
        and the path if this call created it (None: it was there already).

        An image from elsewhere is copied to a temporary file there and the *copy* is
        verified in full (what will be served is what was checked), then linked under its
        name: an identical file already there is reused, a different one refused, never
        replaced.
        """
        firmware = self.provider.firmware_dir
        source = image.resolve()
        if source.parent == firmware.resolve():
            return source.name, self._verify_image(source), None
        if not _valid_image_name(source.name):
            raise OperationError(f"{image.name!r} cannot be a file name in {firmware}")
        target = firmware / source.name
        try:
            firmware.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{source.name}.", dir=firmware)
        except OSError as exc:
            raise OperationError(f"cannot write into {firmware}: {exc.strerror}") from None
        tmp = Path(tmp_name)
        created: Path | None = target
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            header = self._verify_image(tmp, shown=image)
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, target)  # never replaces a file that is there
            except FileExistsError:
                created = None
                if _sha256(target) != _sha256(tmp):
                    raise OperationError(
                        f"{target} exists with different content; rename {image.name} (e.g. "
                        f"with its version, {header.software_version}) and release again"
                    ) from None
        except OSError as exc:
            raise OperationError(f"cannot copy {image} into {firmware}: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return source.name, header, created


def _write_row(text: str, key: ReleaseKey, before: Release | None, after: Release) -> str:
    """The YAML text with one release row added or changed (only the changed values)."""
    new_fields = _quoted(release_to_yaml(after))
    if before is None:
        return yamledit.append_item(text, LIST_KEY, new_fields)
    old_fields = release_to_yaml(before)
    changes: dict[str, Any] = {k: v for k, v in new_fields.items() if old_fields.get(k) != v}
    for gone in old_fields.keys() - new_fields.keys():
        changes[gone] = yamledit.DELETE
    return yamledit.set_fields(text, LIST_KEY, _yaml_index(text, key), changes)


# Written in double quotes, as the example releases.yaml shows them: hex ids and seeds that a
# YAML 1.1 reader could take for numbers (1234:5678 is sexagesimal, 1e10... a float).
_QUOTED_KEYS = ("product", "cohort_seed")


def _quoted(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: yamledit.Quoted(v) if k in _QUOTED_KEYS and isinstance(v, str) else v
            for k, v in fields.items()}


def _is_percent(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100


def _bad(value: object) -> int:
    raise OperationError(f"rollout percent must be an integer from 1 to 100, not {value!r}")


def _valid_image_name(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _yaml_index(text: str, key: ReleaseKey) -> int:
    """Where in the YAML list the release for ``key`` is (the loader found it there).

    Scalars are read as written (``1234:5678`` would be a YAML 1.1 sexagesimal integer)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    items: list[yaml.Node] = []
    if isinstance(root, yaml.MappingNode):
        for k, v in root.value:
            if k.value == LIST_KEY and isinstance(v, yaml.SequenceNode):
                items = v.value
    for i, item in enumerate(items):
        if not isinstance(item, yaml.MappingNode):
            continue
        fields = {k.value: v.value for k, v in item.value if isinstance(v, yaml.ScalarNode)}
        try:
            product = Product.parse(str(fields.get("product", "")))
        except ValueError:
            continue
        if fields.get("channel", DEFAULT_CHANNEL) == key.channel and product == key.product:
            return i
    raise OperationError(f"{key}: not found in the file")  # pragma: no cover - loader agreed


def parse_percent(text: str) -> int:
    """The operator's percent: digits only, 1..100 ("10", not "10%", "10.5" or "0")."""
    stripped = text.strip()
    if not re.fullmatch(r"[0-9]{1,3}", stripped) or not 1 <= int(stripped) <= 100:
        raise OperationError(
            f"rollout percent must be an integer from 1 to 100, not {text!r}")
    return int(stripped)
