"""``releases.yaml`` -> typed, validated releases, and back (what the CLI writes).

One release per (channel, product); unknown keys are errors; every error is a
:class:`~matter_ota.yamlnodes.ConfigError` naming file, line, column and what to do.
:func:`release_to_yaml` gives a release's canonical YAML values; :func:`parse_releases`
validates a document before it is written. :mod:`matter_ota.config` re-exports all of it.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path

import yaml

from matter_ota.policy.model import (
    DeviceMatch,
    FailurePolicy,
    MaintenanceWindow,
    Product,
    RampStep,
    Release,
    ReleaseKey,
    ReleaseStatus,
    Source,
)
from matter_ota.provider.uri import ImageUriError, check_designator
from matter_ota.yamlnodes import Doc, format_duration, is_null

__all__ = ["ReleasesConfig", "load_releases", "parse_releases", "release_to_yaml"]


@dataclass(frozen=True)
class ReleasesConfig:
    """``releases.yaml``: at most one release per (channel, product)."""

    path: Path
    releases: tuple[Release, ...] = ()
    lines: dict[ReleaseKey, int] = field(default_factory=dict, compare=False)

    def get(self, channel: str, product: Product) -> Release | None:
        """The release of ``product`` on ``channel``, or None."""
        for release in self.releases:
            if release.channel == channel and release.product == product:
                return release
        return None


_RELEASE_KEYS = (
    "channel", "product", "image", "version", "source", "status", "rollout_percent",
    "cohort_seed", "released_at", "allow_downgrade", "user_consent", "pinned", "excluded",
    "hardware_versions", "failure_threshold", "ramp", "percent_since", "maintenance_window",
    "stop_reason",
)
_FAILURE_KEYS = ("percent", "min_sample")
_RAMP_KEYS = ("percent", "after")
_WINDOW_KEYS = ("start", "end", "timezone", "days")
_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


def load_releases(path: Path, channels: frozenset[str] | None = None) -> ReleasesConfig:
    """Read and validate ``releases.yaml``; a missing file means no releases.

    With ``channels``, every release must name one of them.
    """
    path = Path(path)
    if not path.exists():
        return ReleasesConfig(path=path)
    return _releases(Doc.load(path), channels)


def parse_releases(text: str, path: Path,
                   channels: frozenset[str] | None = None) -> ReleasesConfig:
    """Validate releases YAML ``text`` as if read from ``path``."""
    return _releases(Doc.parse(text, Path(path)), channels)


def _releases(doc: Doc, channels: frozenset[str] | None) -> ReleasesConfig:
    top = doc.mapping(doc.root, "releases file", ("releases",))
    releases: list[Release] = []
    lines: dict[ReleaseKey, int] = {}
    for item in doc.sequence(top.get("releases"), "releases"):
        release = _release(doc, item, channels)
        if release.key in lines:
            doc.error(item, f"a second release for channel {release.channel!r} and product "
                      f"{release.product} (the first is on line {lines[release.key]})",
                      "one release per channel and product: delete one")
        lines[release.key] = item.start_mark.line + 1
        releases.append(release)
    return ReleasesConfig(path=doc.path, releases=tuple(releases), lines=lines)


def _release(doc: Doc, node: yaml.Node, channels: frozenset[str] | None) -> Release:
    m = doc.mapping(node, "release", _RELEASE_KEYS,
                    required=("channel", "product", "rollout_percent", "cohort_seed",
                              "released_at"))
    channel = doc.string(m["channel"], "release channel")
    if channels is not None and channel not in channels:
        doc.error(m["channel"], f"channel {channel!r} is not defined",
                  "define it under channels: in provider.yaml, or use one of "
                  + ", ".join(sorted(channels)))
    source = Source.LOCAL
    if "source" in m:
        text = doc.text(m["source"], "source").strip().lower()
        if text not in ("local", "dcl"):
            doc.error(m["source"], f"source {text!r} is neither local nor dcl",
                      "write source: local or source: dcl")
        source = Source(text)
    image = None
    if "image" in m and not is_null(m["image"]):
        image = doc.string(m["image"], "image", pattern=r"[^/\\\x00]+",
                           hint="a file name inside firmware_dir, without directories")
        if image in (".", ".."):
            doc.error(m["image"], "image must be a file name inside firmware_dir",
                      "write the file name only")
        try:
            check_designator(image)  # the name is the BDX designator in the ImageURI
        except ImageUriError as exc:
            doc.error(m["image"], str(exc), "rename the file to a shorter name")
    if source is Source.LOCAL and image is None:
        doc.error(node, "a local release needs an image", "add image: <file in firmware_dir>")
    if source is Source.DCL and image is not None:
        doc.error(m["image"], "a DCL release takes its images from the DCL",
                  "remove image, or set source: local")
    status = ReleaseStatus.LIVE
    if "status" in m:
        text = doc.text(m["status"], "status").strip().upper()
        if text not in ("LIVE", "INACTIVE"):
            doc.error(m["status"], f"status {text!r} is neither LIVE nor INACTIVE",
                      "write status: LIVE or status: INACTIVE")
        status = ReleaseStatus(text)
    seed = doc.text(m["cohort_seed"], "cohort_seed").strip().lower()
    if not re.fullmatch(r"(?:[0-9a-f]{2}){8,64}", seed):
        doc.error(m["cohort_seed"], "cohort_seed must be 16 to 128 hex digits (even count)",
                  "quote it; a new one: python3 -c 'import secrets; "
                  "print(secrets.token_hex(16))'")
    percent = doc.integer(m["rollout_percent"], "rollout_percent", 1, 100)
    ramp = _ramp(doc, m.get("ramp"))
    return Release(
        channel=channel,
        product=doc.product(m["product"], "product"),
        image=image,
        version=doc.integer(m["version"], "version", 0, 0xFFFFFFFF)
        if "version" in m and not is_null(m["version"]) else None,
        source=source,
        status=status,
        rollout_percent=percent,
        cohort_seed=seed,
        released_at=doc.timestamp(m["released_at"], "released_at"),
        allow_downgrade=doc.boolean(m["allow_downgrade"], "allow_downgrade")
        if "allow_downgrade" in m else False,
        user_consent=doc.boolean(m["user_consent"], "user_consent")
        if "user_consent" in m else False,
        pinned=_devices(doc, m.get("pinned"), "pinned"),
        excluded=_devices(doc, m.get("excluded"), "excluded"),
        hardware_versions=doc.int_ranges(m.get("hardware_versions"), "hardware_versions"),
        failure=_failure(doc, m.get("failure_threshold")),
        ramp=ramp,
        percent_since=doc.timestamp(m["percent_since"], "percent_since")
        if "percent_since" in m and not is_null(m["percent_since"]) else None,
        maintenance_window=_window(doc, m.get("maintenance_window")),
        stop_reason=doc.string(m["stop_reason"], "stop_reason")
        if "stop_reason" in m and not is_null(m["stop_reason"]) else None,
    )


def _devices(doc: Doc, node: yaml.Node | None, what: str) -> tuple[DeviceMatch, ...]:
    devices = []
    for item in doc.sequence(node, what):
        text = doc.text(item, f"{what} entry").strip()
        if ":" in text:
            fabric_text, node_text = text.split(":", 1)
            if not (re.fullmatch(r"[0-9A-Fa-f]{1,16}", fabric_text)
                    and re.fullmatch(r"[0-9A-Fa-f]{1,16}", node_text)):
                doc.error(item, f"{what} entry {text!r} is not FABRIC:NODE in hex",
                          'write a node id (0x12) or "2906C908D115D362:0000000000000012"')
            devices.append(DeviceMatch(int(node_text, 16), int(fabric_text, 16)))
        else:
            devices.append(DeviceMatch(doc.integer(item, f"{what} entry", 0, 2**64 - 1)))
    return tuple(devices)


def _failure(doc: Doc, node: yaml.Node | None) -> FailurePolicy | None:
    if node is None or is_null(node):
        return None
    m = doc.mapping(node, "failure_threshold", _FAILURE_KEYS, required=("percent",))
    return FailurePolicy(
        threshold_percent=doc.number(m["percent"], "failure_threshold.percent", 0, 100),
        min_sample=doc.integer(m["min_sample"], "failure_threshold.min_sample", 1, 10**9)
        if "min_sample" in m else FailurePolicy(0).min_sample,
    )


def _ramp(doc: Doc, node: yaml.Node | None) -> tuple[RampStep, ...]:
    steps: list[RampStep] = []
    for item in doc.sequence(node, "ramp"):
        m = doc.mapping(item, "ramp step", _RAMP_KEYS, required=("percent", "after"))
        percent = doc.integer(m["percent"], "ramp step percent", 1, 100)
        if steps and percent <= steps[-1].percent:
            doc.error(m["percent"], f"ramp step {percent} % does not grow the rollout "
                      f"(the step before is {steps[-1].percent} %)",
                      "list the steps in increasing percent")
        steps.append(RampStep(percent, doc.duration(m["after"], "ramp step after")))
    return tuple(steps)


def _window(doc: Doc, node: yaml.Node | None) -> MaintenanceWindow | None:
    if node is None or is_null(node):
        return None
    m = doc.mapping(node, "maintenance_window", _WINDOW_KEYS, required=("start", "end"))

    def clock(key: str) -> time:
        text = doc.text(m[key], f"maintenance_window.{key}").strip()
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text)
        if match is None:
            doc.error(m[key], f"maintenance_window.{key} {text!r} is not HH:MM",
                      'quote it: "01:30"')
        return time(int(match.group(1)), int(match.group(2)))

    zone = "UTC"
    if "timezone" in m:
        zone = doc.text(m["timezone"], "maintenance_window.timezone").strip()
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            doc.error(m["timezone"], f"unknown time zone {zone!r}",
                      "use an IANA name such as Europe/Berlin or UTC")
    days = set()
    for item in doc.sequence(m.get("days"), "maintenance_window.days"):
        text = doc.text(item, "maintenance_window.days entry").strip().lower()[:3]
        if text not in _DAYS:
            doc.error(item, f"day {item.value!r} is not a weekday", "write mon, tue, ... sun")
        days.add(_DAYS[text])
    start, end = clock("start"), clock("end")
    if start == end:
        doc.error(m["end"], "maintenance_window start and end are equal (an empty window)",
                  "remove the window to allow updates at any time")
    return MaintenanceWindow(start=start, end=end, timezone=zone, days=frozenset(days))


def release_to_yaml(release: Release) -> dict[str, object]:
    """A release as the plain YAML values the CLI writes, in the canonical key order.

    Keys left at their default are omitted. Parsing the result gives the release back.
    """
    out: dict[str, object] = {
        "channel": release.channel,
        "product": str(release.product),
    }
    if release.image is not None:
        out["image"] = release.image
    if release.version is not None:
        out["version"] = release.version
    out["source"] = release.source.value
    out["status"] = release.status.value
    out["rollout_percent"] = release.rollout_percent
    out["cohort_seed"] = release.cohort_seed
    out["released_at"] = _iso(release.released_at)
    if release.allow_downgrade:
        out["allow_downgrade"] = True
    if release.user_consent:
        out["user_consent"] = True
    if release.pinned:
        out["pinned"] = [str(d) for d in release.pinned]
    if release.excluded:
        out["excluded"] = [str(d) for d in release.excluded]
    if release.hardware_versions:
        out["hardware_versions"] = [str(r) for r in release.hardware_versions]
    if release.failure is not None:
        out["failure_threshold"] = {"percent": release.failure.threshold_percent,
                                    "min_sample": release.failure.min_sample}
    if release.ramp:
        out["ramp"] = [{"percent": s.percent, "after": format_duration(s.after)}
                       for s in release.ramp]
    if release.percent_since is not None:
        out["percent_since"] = _iso(release.percent_since)
    window = release.maintenance_window
    if window is not None:
        w: dict[str, object] = {"start": window.start.strftime("%H:%M"),
                                "end": window.end.strftime("%H:%M"),
                                "timezone": window.timezone}
        if window.days:
            names = {v: k for k, v in _DAYS.items()}
            w["days"] = [names[d] for d in sorted(window.days)]
        out["maintenance_window"] = w
    if release.stop_reason is not None:
        out["stop_reason"] = release.stop_reason
    return out


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
