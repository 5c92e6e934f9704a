"""The ``session-parameter-struct`` that PASE and CASE exchange (Matter Core spec 4.12.8, 4.14).

Carried as field 5 of PBKDFParamRequest / PBKDFParamResponse and in Sigma1 / Sigma2. On the wire
the intervals are milliseconds; :class:`matter_ota.messaging.session.SessionParameters` holds
seconds. Absent MRP fields mean "the default" (4.12.8).
"""

from __future__ import annotations

from dataclasses import dataclass

from matter_ota import tlv
from matter_ota.messaging.session import DEFAULT_PARAMETERS, SessionParameters


@dataclass(kw_only=True)
class SessionParametersTLV(tlv.Struct):
    """session-parameter-struct (4.12.8 / 4.14.1.1); every field optional."""

    idle_interval_ms: int | None = tlv.field(1, tlv.U32, optional=True)
    active_interval_ms: int | None = tlv.field(2, tlv.U32, optional=True)
    active_threshold_ms: int | None = tlv.field(3, tlv.U16, optional=True)
    data_model_revision: int | None = tlv.field(4, tlv.U16, optional=True)
    interaction_model_revision: int | None = tlv.field(5, tlv.U16, optional=True)
    specification_version: int | None = tlv.field(6, tlv.U32, optional=True)
    max_paths_per_invoke: int | None = tlv.field(7, tlv.U16, optional=True)

    @classmethod
    def local(cls, params: SessionParameters = DEFAULT_PARAMETERS) -> SessionParametersTLV:
        """What this node announces about itself: its MRP intervals.

        The revision fields are left out; the node layer adds them once it has a data model.
        """
        return cls(
            idle_interval_ms=round(params.idle_interval * 1000),
            active_interval_ms=round(params.active_interval * 1000),
            active_threshold_ms=round(params.active_threshold * 1000),
        )

    def to_session_parameters(self) -> SessionParameters:
        """The peer's MRP parameters, defaults where a field is absent."""
        d = DEFAULT_PARAMETERS
        return SessionParameters(
            idle_interval=(self.idle_interval_ms / 1000 if self.idle_interval_ms is not None
                           else d.idle_interval),
            active_interval=(self.active_interval_ms / 1000
                             if self.active_interval_ms is not None else d.active_interval),
            active_threshold=(self.active_threshold_ms / 1000
                              if self.active_threshold_ms is not None else d.active_threshold),
        )


def peer_parameters(announced: SessionParametersTLV | None) -> SessionParameters:
    """The MRP parameters of a peer that announced ``announced`` (defaults if it sent none)."""
    return announced.to_session_parameters() if announced is not None else DEFAULT_PARAMETERS
