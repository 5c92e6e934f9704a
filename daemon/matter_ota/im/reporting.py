"""Reads: attribute path expansion (8.9.2), access checks, and ReportData chunking (8.4.3).

:func:`read_attributes` turns the requested paths into :class:`AttributeReportIB` blocks:
concrete paths that fail get a status (UNSUPPORTED_ENDPOINT / _CLUSTER / _ACCESS / _ATTRIBUTE),
wildcard expansions silently skip what does not exist or may not be seen (8.9.2.3).
:func:`chunk_reports` packs them into ReportData payloads that fit one message; a list too
large for one message is split into "replace with empty list" followed by appended items
(10.6.4.3.1), which clients reassemble.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from matter_ota import tlv
from matter_ota.im.acl import AccessControl, Privilege, Subject
from matter_ota.im.messages import (
    AttributeDataIB,
    AttributePathIB,
    AttributeReportIB,
    AttributeStatusIB,
    DataVersionFilterIB,
    EventPathIB,
    EventReportIB,
    EventStatusIB,
    ReportData,
    Status,
    StatusIB,
)
from matter_ota.im.model import Attribute, Cluster, Context, DataModel, IMStatusError
from matter_ota.messaging.header import MAX_SECURE_PAYLOAD
from matter_ota.messaging.session import SecureSession

log = logging.getLogger("matter_ota.im")

ConcretePath = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Reader:
    """Everything a read needs besides the paths: who asks, from where, and when."""

    model: DataModel
    acl: AccessControl
    subject: Subject
    session: SecureSession | None
    now: float
    fabric_filtered: bool = True

    def allowed(self, privilege: Privilege, endpoint: int, cluster: int) -> bool:
        return self.acl.allowed(self.subject, privilege, endpoint, cluster,
                                self.model.device_types(endpoint))

    def context(self, endpoint: int) -> Context:
        return Context(self.subject, self.session, endpoint, self.now, self.fabric_filtered)


@dataclass(frozen=True, slots=True)
class Report:
    """One report block with its TLV value and encoding, and the concrete path it is about
    (None for events). The value is built once and reused when the chunk is encoded."""

    block: AttributeReportIB | EventReportIB
    value: Any
    encoded: bytes
    path: ConcretePath | None

    @classmethod
    def of(cls, block: AttributeReportIB | EventReportIB, path: ConcretePath | None
           ) -> Report:
        value = block.to_value()
        return cls(block, value, tlv.encode(value), path)


def _status_report(path: AttributePathIB, status: Status,
                   cluster_status: int | None = None) -> AttributeReportIB:
    return AttributeReportIB(attribute_status=AttributeStatusIB(
        path=path, status=StatusIB(status=status, cluster_status=cluster_status)))


def _path(endpoint: int, cluster: int, attribute: int, *, append: bool = False
          ) -> AttributePathIB:
    return AttributePathIB(endpoint=endpoint, cluster=cluster, attribute=attribute,
                           list_append=append)


def _matching_clusters(reader: Reader, path: AttributePathIB
                       ) -> Iterator[tuple[int, Cluster]] | AttributeReportIB:
    model = reader.model
    # 8.4.3.2: only a concrete path earns a status; a wildcard one expands to what exists.
    if not path.is_wildcard:
        assert path.endpoint is not None and path.cluster is not None
        if path.endpoint not in model.endpoints:
            return _status_report(path, Status.UNSUPPORTED_ENDPOINT)
        if model.cluster(path.endpoint, path.cluster) is None:
            return _status_report(path, Status.UNSUPPORTED_CLUSTER)
    return ((ep.id, cl) for ep, cl in model.iter_clusters()
            if (path.endpoint is None or ep.id == path.endpoint)
            and (path.cluster is None or path.cluster == cl.ID))


def _encode_data(reader: Reader, endpoint: int, cluster: Cluster, attr: Attribute
                 ) -> list[AttributeReportIB]:
    """The data report(s) of one attribute; a list that cannot fit a message is split."""
    value = attr.type.to_value(attr.read(reader.context(endpoint)), f"attribute 0x{attr.id:X}")
    path = _path(endpoint, cluster.ID, attr.id)
    whole = AttributeReportIB(attribute_data=AttributeDataIB(
        data_version=cluster.data_version, path=path, data=value))
    if not isinstance(value, list) or len(whole.encode()) <= MAX_REPORT_BLOCK:
        return [whole]
    parts = [AttributeReportIB(attribute_data=AttributeDataIB(
        data_version=cluster.data_version, path=path, data=[]))]
    for item in value:
        parts.append(AttributeReportIB(attribute_data=AttributeDataIB(
            data_version=cluster.data_version,
            path=_path(endpoint, cluster.ID, attr.id, append=True), data=item)))
    return parts


def _version_filtered(filters: Sequence[DataVersionFilterIB], endpoint: int,
                      cluster: Cluster) -> bool:
    return any(f.path.endpoint == endpoint and f.path.cluster == cluster.ID
               and f.data_version == cluster.data_version for f in filters)


def read_attributes(reader: Reader, paths: Iterable[AttributePathIB],
                    filters: Sequence[DataVersionFilterIB] = ()) -> list[Report]:
    """Expand ``paths`` and read every attribute they name, in request order."""
    reports: list[Report] = []
    for path in paths:
        found = _matching_clusters(reader, path)
        if isinstance(found, AttributeReportIB):
            reports.append(Report.of(found, None))
            continue
        for endpoint, cluster in found:
            if _version_filtered(filters, endpoint, cluster):
                continue
            reports.extend(_read_cluster(reader, path, endpoint, cluster))
    return reports


def _read_cluster(reader: Reader, path: AttributePathIB, endpoint: int, cluster: Cluster
                  ) -> Iterator[Report]:
    concrete = not path.is_wildcard
    ids = cluster.attribute_ids() if path.attribute is None else [path.attribute]
    for attr_id in ids:
        attr = cluster.attribute(attr_id)
        where = (endpoint, cluster.ID, attr_id)
        if attr is None:
            if concrete:
                # Existence is only revealed to someone who may view the cluster.
                status = (Status.UNSUPPORTED_ATTRIBUTE
                          if reader.allowed(Privilege.VIEW, endpoint, cluster.ID)
                          else Status.UNSUPPORTED_ACCESS)
                block = _status_report(path, status)
                yield Report.of(block, where)
            continue
        if not reader.allowed(attr.read_privilege, endpoint, cluster.ID):
            if concrete:
                block = _status_report(path, Status.UNSUPPORTED_ACCESS)
                yield Report.of(block, where)
            continue
        try:
            blocks = _encode_data(reader, endpoint, cluster, attr)
        except IMStatusError as err:
            if concrete:
                block = _status_report(path, err.status, err.cluster_status)
                yield Report.of(block, where)
            continue
        except Exception:  # a cluster's bug fails its path, not the whole read
            log.exception("event=read_error endpoint=%d cluster=0x%04X attribute=0x%04X",
                          *where)
            if concrete:
                block = _status_report(path, Status.FAILURE)
                yield Report.of(block, where)
            continue
        for block in blocks:
            yield Report.of(block, where)


def read_events(reader: Reader, paths: Iterable[EventPathIB]) -> list[Report]:
    """We emit no events: concrete event paths get a status, wildcards expand to nothing."""
    reports = []
    model = reader.model
    for path in paths:
        if path.endpoint is None or path.cluster is None or path.event is None:
            continue
        if path.endpoint not in model.endpoints:
            status = Status.UNSUPPORTED_ENDPOINT
        elif model.cluster(path.endpoint, path.cluster) is None:
            status = Status.UNSUPPORTED_CLUSTER
        elif not reader.allowed(Privilege.VIEW, path.endpoint, path.cluster):
            status = Status.UNSUPPORTED_ACCESS
        else:
            status = Status.UNSUPPORTED_EVENT
        block = EventReportIB(event_status=EventStatusIB(path=path, status=StatusIB(
            status=status)))
        reports.append(Report.of(block, None))
    return reports


@functools.cache
def _overhead(subscribed: bool) -> int:
    """Bytes of a ReportData with every optional field set (the widest subscription id) but
    no reports."""
    empty = ReportData(subscription_id=0xFFFF_FFFF if subscribed else None,
                       attribute_reports=[], event_reports=[], more_chunked_messages=True,
                       suppress_response=True)
    return len(empty.encode())


# The largest single report block: what is left of a message after the ReportData frame.
MAX_REPORT_BLOCK = MAX_SECURE_PAYLOAD - _overhead(True)


def chunk_reports(reports: Sequence[Report], *, subscription_id: int | None,
                  suppress_final: bool, limit: int = MAX_SECURE_PAYLOAD) -> list[bytes]:
    """ReportData payloads carrying ``reports`` in order, each at most ``limit`` bytes.

    Every payload but the last says MoreChunkedMessages; the last says SuppressResponse when
    ``suppress_final`` (the end of a read). There is always at least one payload.
    """
    budget = limit - _overhead(subscription_id is not None)
    chunks: list[list[Report]] = [[]]
    used = 0
    for report in reports:
        size = len(report.encoded)
        if chunks[-1] and used + size > budget:
            chunks.append([])
            used = 0
        if size > budget:
            path = report.path or (0, 0, 0)
            log.warning("event=report_too_large endpoint=%d cluster=0x%04X attribute=0x%04X "
                        "size=%d", *path, size)
            status = _status_report(_path(*path), Status.RESOURCE_EXHAUSTED)
            report = Report.of(status, report.path)
            size = len(report.encoded)
        chunks[-1].append(report)
        used += size
    payloads = []
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        attrs = [r.value for r in chunk if isinstance(r.block, AttributeReportIB)]
        events = [r.value for r in chunk if isinstance(r.block, EventReportIB)]
        frame = ReportData(
            subscription_id=subscription_id,
            attribute_reports=[] if attrs else None,
            event_reports=[] if events else None,
            more_chunked_messages=None if last else True,
            suppress_response=True if last and suppress_final else None,
        ).to_value()
        # The blocks' values were built (and measured) already: put them in the frame.
        if attrs:
            frame[1] = attrs
        if events:
            frame[2] = events
        payloads.append(tlv.encode(frame))
    return payloads
