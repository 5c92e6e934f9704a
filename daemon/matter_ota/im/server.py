"""The Interaction Model server on the node: Read, Subscribe, Write, Invoke, Timed (ch. 8).

:class:`InteractionServer` registers the IM request opcodes for PASE and CASE sessions in the
node's dispatch table and routes each to one method through ``self._handlers``. Failures are
exceptions: :class:`~.messages.IMError` (a malformed message) and a message-level
:class:`~.model.IMStatusError` become one StatusResponse in :meth:`_run`, here and nowhere
else; an IMStatusError raised for one path (attribute write, command) becomes that path's
status in the response.

Timed interactions (8.7.2.1, 8.8.2.1): a TimedRequest opens a window of ``timeout`` ms on its
exchange; the Write or Invoke that follows on the same exchange must say TimedRequest=true and
arrive within the window (else TIMED_REQUEST_MISMATCH / TIMEOUT), and a command or attribute
that needs a timed interaction answers NEEDS_TIMED_INTERACTION outside one.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sized

from matter_ota import tlv
from matter_ota.im.acl import AccessControl, Privilege, Subject
from matter_ota.im.messages import (
    AttributeDataIB,
    AttributeStatusIB,
    CommandDataIB,
    CommandPathIB,
    CommandStatusIB,
    IMError,
    InvokeRequest,
    InvokeResponse,
    InvokeResponseIB,
    Opcode,
    ReadRequest,
    Status,
    StatusIB,
    SubscribeRequest,
    SubscribeResponse,
    TimedRequest,
    WriteRequest,
    WriteResponse,
    status_name,
)
from matter_ota.im.model import Cluster, CommandSpec, Context, DataModel, IMStatusError
from matter_ota.im.reporting import Reader, chunk_reports, read_attributes, read_events
from matter_ota.im.subscriptions import (
    STATUS_RESPONSE_TIMEOUT,
    ReportSender,
    Subscription,
    Subscriptions,
    send_status,
)
from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.session import SECURE_SESSIONS, SecureSession
from matter_ota.messaging.status import Protocol
from matter_ota.node import Node

log = logging.getLogger("matter_ota.im")

#: Basic Information MaxPathsPerInvoke (we announce 1: one command per InvokeRequest).
MAX_PATHS_PER_INVOKE = 1

#: Paths per Read or Subscribe request. 8.5.1 / 2.11.2: a node supports at least 9 attribute
#: paths per read (3 per subscription); a bound keeps one small request from expanding into
#: an unbounded report.
MAX_REQUEST_PATHS = 32

#: How long a timed exchange stays open after its window, to answer a late action TIMEOUT.
TIMED_GRACE = 5.0

IMHandler = Callable[[Exchange, Message, bool], None]


class _TimedWindow(ExchangeDelegate):
    """Waits on a TimedRequest's exchange for the Write or Invoke it announced."""

    def __init__(self, server: InteractionServer, deadline: float) -> None:
        self.server = server
        self.deadline = deadline

    def on_message(self, exchange: Exchange, message: Message) -> None:
        exchange.delegate = None
        self.server._run(exchange, message, timed_deadline=self.deadline)

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        log.info("event=timed_expired exchange=%d reason=%s", exchange.exchange_id,
                 reason.value)


class _WriteChunks(ExchangeDelegate):
    """Takes the next WriteRequest of a chunked write on the same exchange (8.7.3.3)."""

    def __init__(self, server: InteractionServer, timed: bool) -> None:
        self.server = server
        self.timed = timed

    def on_message(self, exchange: Exchange, message: Message) -> None:
        exchange.delegate = None
        if message.opcode != Opcode.WRITE_REQUEST or \
                message.protocol_id != Protocol.INTERACTION_MODEL:
            send_status(exchange, Status.INVALID_ACTION)
            exchange.close()
            return
        self.server._run(exchange, message, continued_write=self.timed)


class InteractionServer:
    """Serves ``model`` under ``acl`` on ``node``; see the module docstring."""

    def __init__(self, node: Node, model: DataModel, acl: AccessControl, *,
                 randbits: Callable[[int], int] = secrets.randbits) -> None:
        self.node = node
        self.model = model
        self.acl = acl
        self.subscriptions = Subscriptions(self._reader_for, self._session_alive,
                                           self._new_exchange, randbits)
        self._handlers: dict[int, IMHandler] = {
            Opcode.READ_REQUEST: self._read,
            Opcode.SUBSCRIBE_REQUEST: self._subscribe,
            Opcode.WRITE_REQUEST: self._write,
            Opcode.INVOKE_REQUEST: self._invoke,
            Opcode.TIMED_REQUEST: self._timed,
        }
        for opcode in self._handlers:
            node.register(Protocol.INTERACTION_MODEL, opcode, self._on_request, SECURE_SESSIONS)
        node.add_timer_source(self.subscriptions)
        model.subscribe_changes(self.subscriptions.changed)

    # -- the one place where failures become StatusResponses -----------------------------------

    def _on_request(self, exchange: Exchange, message: Message) -> None:
        self._run(exchange, message)

    def _run(self, exchange: Exchange, message: Message, *, timed_deadline: float | None = None,
             continued_write: bool | None = None) -> None:
        try:
            if continued_write is not None:
                self._write(exchange, message, continued_write)
            elif timed_deadline is not None:
                self._after_timed(exchange, message, timed_deadline)
            else:
                handler = self._handlers.get(message.opcode)
                if handler is None:
                    raise IMStatusError(Status.INVALID_ACTION, reason="not a request")
                handler(exchange, message, False)
        except (IMError, IMStatusError) as err:
            status = err.status if isinstance(err, IMStatusError) else Status.INVALID_ACTION
            log.info("event=im_status status=%s opcode=0x%02x exchange=%d reason=%s",
                     status_name(status), message.opcode, exchange.exchange_id, err)
            if not exchange.closed:
                exchange.delegate = None
                send_status(exchange, status)
        if exchange.delegate is None:
            exchange.close()

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _secure(message: Message) -> SecureSession:
        session = message.session
        if not isinstance(session, SecureSession):  # the route only admits secure sessions
            raise IMStatusError(Status.UNSUPPORTED_ACCESS, reason="unsecured session")
        return session

    def _reader(self, session: SecureSession, now: float, fabric_filtered: bool) -> Reader:
        return Reader(self.model, self.acl, Subject.from_session(session), session, now,
                      fabric_filtered)

    def _reader_for(self, sub: Subscription, now: float) -> Reader:
        return Reader(self.model, self.acl, sub.subject, sub.session, now, sub.fabric_filtered)

    def _session_alive(self, session: SecureSession) -> bool:
        return self.node.sessions.get(session.local_session_id) is session

    def _new_exchange(self, session: SecureSession, now: float) -> Exchange:
        return self.node.new_exchange(session, None, now)

    @staticmethod
    def _check_path_count(*lists: Sized | None) -> None:
        count = sum(len(paths or ()) for paths in lists)
        if count > MAX_REQUEST_PATHS:
            raise IMStatusError(Status.RESOURCE_EXHAUSTED,
                                reason=f"{count} paths, at most {MAX_REQUEST_PATHS}")

    @staticmethod
    def _check_timed(flag: bool, timed: bool) -> None:
        if flag != timed:
            raise IMStatusError(Status.TIMED_REQUEST_MISMATCH,
                                reason=f"TimedRequest flag {flag}, timed exchange {timed}")

    def _allowed(self, subject: Subject, privilege: Privilege, endpoint: int,
                 cluster: int) -> bool:
        return self.acl.allowed(subject, privilege, endpoint, cluster,
                                self.model.device_types(endpoint))

    def _cluster(self, endpoint: int, cluster: int) -> Cluster:
        if endpoint not in self.model.endpoints:
            raise IMStatusError(Status.UNSUPPORTED_ENDPOINT)
        found = self.model.cluster(endpoint, cluster)
        if found is None:
            raise IMStatusError(Status.UNSUPPORTED_CLUSTER)
        return found

    # -- Read and Subscribe (8.4, 8.5) --------------------------------------------------------

    def _read(self, exchange: Exchange, message: Message, _timed: bool) -> None:
        request = ReadRequest.decode(message.payload)
        if not request.attribute_requests and not request.event_requests:
            raise IMStatusError(Status.INVALID_ACTION, reason="read of no paths")
        self._check_path_count(request.attribute_requests, request.event_requests)
        reader = self._reader(self._secure(message), message.received_at,
                              request.fabric_filtered)
        reports = read_attributes(reader, request.attribute_requests or (),
                                  request.data_version_filters or ())
        reports += read_events(reader, request.event_requests or ())
        payloads = chunk_reports(reports, subscription_id=None, suppress_final=True)
        log.debug("event=read paths=%d reports=%d chunks=%d", len(
            request.attribute_requests or ()), len(reports), len(payloads))
        ReportSender(payloads, final_suppresses=True).start(exchange)

    def _subscribe(self, exchange: Exchange, message: Message, _timed: bool) -> None:
        request = SubscribeRequest.decode(message.payload)
        session = self._secure(message)
        if not request.attribute_requests and not request.event_requests:
            raise IMStatusError(Status.INVALID_ACTION, reason="subscription to no paths")
        if request.min_interval_floor > request.max_interval_ceiling:
            raise IMStatusError(Status.INVALID_ACTION, reason="min interval above max")
        self._check_path_count(request.attribute_requests, request.event_requests)
        subject = Subject.from_session(session)
        try:
            sub = self.subscriptions.create(
                session=session, subject=subject,
                attribute_paths=list(request.attribute_requests or ()),
                event_paths=list(request.event_requests or ()),
                filters=list(request.data_version_filters or ()),
                fabric_filtered=request.fabric_filtered,
                min_interval=request.min_interval_floor,
                # 8.5.1: the publisher picks MaxInterval in [floor, max(ceiling, 60 min)]; the
                # subscriber's ceiling is what it asked for.
                max_interval=request.max_interval_ceiling,
            )
        except OverflowError:
            raise IMStatusError(Status.RESOURCE_EXHAUSTED, reason="too many subscriptions"
                                ) from None
        if not request.keep_subscriptions:
            self.subscriptions.drop_for(subject, session, keep=sub)
        reader = self._reader(session, message.received_at, request.fabric_filtered)
        reports = read_attributes(reader, sub.attribute_paths, sub.filters)
        reports += read_events(reader, sub.event_paths)
        payloads = chunk_reports(reports, subscription_id=sub.id, suppress_final=False)

        def primed(ex: Exchange, ok: bool) -> None:
            if not ok:
                self.subscriptions.drop(sub, "priming_failed")
                return
            ex.send(Protocol.INTERACTION_MODEL, Opcode.SUBSCRIBE_RESPONSE, SubscribeResponse(
                subscription_id=sub.id, max_interval=sub.max_interval).encode())
            self.subscriptions.primed(sub, ex.now)
            log.info("event=subscribed id=0x%08X node=0x%016X min=%d max=%d paths=%d",
                     sub.id, subject.node_id, sub.min_interval, sub.max_interval,
                     len(sub.attribute_paths))

        ReportSender(payloads, final_suppresses=False, on_done=primed).start(exchange)

    # -- Timed (8.7.2.1 / 8.8.2.1) ------------------------------------------------------------

    def _timed(self, exchange: Exchange, message: Message, _timed: bool) -> None:
        request = TimedRequest.decode(message.payload)
        timeout = request.timeout / 1000.0
        send_status(exchange, Status.SUCCESS)
        exchange.delegate = _TimedWindow(self, message.received_at + timeout)
        # The exchange outlives the window a little so that a late action is told TIMEOUT
        # rather than taken for a new, mismatched request.
        exchange.set_response_timeout(timeout + TIMED_GRACE)

    def _after_timed(self, exchange: Exchange, message: Message, deadline: float) -> None:
        if message.protocol_id != Protocol.INTERACTION_MODEL or \
                message.opcode not in (Opcode.WRITE_REQUEST, Opcode.INVOKE_REQUEST):
            raise IMStatusError(Status.INVALID_ACTION, reason="timed request not followed by "
                                "write or invoke")
        if message.received_at > deadline:
            raise IMStatusError(Status.TIMEOUT, reason="timed window expired")
        self._handlers[message.opcode](exchange, message, True)

    # -- Write (8.7) --------------------------------------------------------------------------

    def _write(self, exchange: Exchange, message: Message, timed: bool) -> None:
        request = WriteRequest.decode(message.payload)
        self._check_timed(request.timed_request, timed)
        session = self._secure(message)
        subject = Subject.from_session(session)
        statuses = []
        for data in request.write_requests:
            path = data.path
            if path.endpoint is None or path.cluster is None or path.attribute is None:
                raise IMStatusError(Status.INVALID_ACTION, reason="wildcard write path")
            status = self._write_one(subject, session, data, timed, message.received_at)
            statuses.append(AttributeStatusIB(path=path, status=StatusIB(status=status[0],
                                                                         cluster_status=status[1])))
        if request.more_chunked_messages:
            exchange.delegate = _WriteChunks(self, timed)
            # A client that never sends the next chunk must not hold the exchange forever.
            exchange.set_response_timeout(STATUS_RESPONSE_TIMEOUT)
        if not request.suppress_response or request.more_chunked_messages:
            exchange.send(Protocol.INTERACTION_MODEL, Opcode.WRITE_RESPONSE,
                          WriteResponse(write_responses=statuses).encode())

    def _write_one(self, subject: Subject, session: SecureSession, data: AttributeDataIB,
                   timed: bool, now: float) -> tuple[int, int | None]:
        path = data.path
        assert path.endpoint is not None and path.cluster is not None \
            and path.attribute is not None
        try:
            cluster = self._cluster(path.endpoint, path.cluster)
            attr = cluster.attribute(path.attribute)
            if attr is None:
                visible = self._allowed(subject, Privilege.VIEW, path.endpoint, path.cluster)
                raise IMStatusError(Status.UNSUPPORTED_ATTRIBUTE if visible
                                    else Status.UNSUPPORTED_ACCESS)
            if not self._allowed(subject, attr.write_privilege, path.endpoint, path.cluster):
                raise IMStatusError(Status.UNSUPPORTED_ACCESS)
            if attr.write is None:
                raise IMStatusError(Status.UNSUPPORTED_WRITE)
            if attr.timed_write and not timed:
                raise IMStatusError(Status.NEEDS_TIMED_INTERACTION)
            if data.data_version is not None and data.data_version != cluster.data_version:
                raise IMStatusError(Status.DATA_VERSION_MISMATCH)
            ctx = Context(subject, session, path.endpoint, now)
            try:
                if path.list_append:
                    if not isinstance(attr.type, tlv.ArrayOf):
                        raise IMStatusError(Status.INVALID_ACTION, reason="append to non-list")
                    item = attr.type.inner.from_value(data.data, "item")
                    value = [*attr.read(ctx), item]
                else:
                    value = attr.type.from_value(data.data, f"attribute 0x{attr.id:X}")
            except tlv.TLVError as exc:
                raise IMStatusError(Status.CONSTRAINT_ERROR, reason=str(exc)) from None
            try:
                attr.write(ctx, value)
            except IMStatusError:
                raise
            except Exception:  # a cluster's bug fails its path, not the whole write
                log.exception("event=write_error endpoint=%d cluster=0x%04X attribute=0x%04X",
                              path.endpoint, path.cluster, path.attribute)
                raise IMStatusError(Status.FAILURE, reason="write handler error") from None
        except IMStatusError as err:
            log.info("event=write_refused endpoint=%d cluster=0x%04X attribute=0x%04X "
                     "status=%s reason=%s", path.endpoint, path.cluster, path.attribute,
                     status_name(err.status), err.reason or "-")
            return err.status, err.cluster_status
        cluster.changed(attr.id)
        log.info("event=attribute_written endpoint=%d cluster=0x%04X attribute=0x%04X node=0x%016X",
                 path.endpoint, path.cluster, path.attribute, subject.node_id)
        return Status.SUCCESS, None

    # -- Invoke (8.8) -------------------------------------------------------------------------

    def _invoke(self, exchange: Exchange, message: Message, timed: bool) -> None:
        request = InvokeRequest.decode(message.payload)
        self._check_timed(request.timed_request, timed)
        if not 1 <= len(request.invoke_requests) <= MAX_PATHS_PER_INVOKE:
            raise IMStatusError(Status.INVALID_ACTION,
                                reason=f"{len(request.invoke_requests)} commands in one invoke")
        session = self._secure(message)
        subject = Subject.from_session(session)
        responses = [self._invoke_one(subject, session, data, timed, message.received_at)
                     for data in request.invoke_requests]
        if not request.suppress_response:
            exchange.send(Protocol.INTERACTION_MODEL, Opcode.INVOKE_RESPONSE, InvokeResponse(
                suppress_response=False, invoke_responses=responses).encode())

    def _command(self, subject: Subject, path: CommandPathIB, timed: bool
                 ) -> tuple[Cluster, CommandSpec]:
        cluster = self._cluster(path.endpoint, path.cluster)
        spec = self.model.commands.get((path.cluster, path.command))
        if spec is None or path.command not in cluster.COMMANDS:
            raise IMStatusError(Status.UNSUPPORTED_COMMAND)
        if not self._allowed(subject, spec.privilege, path.endpoint, path.cluster):
            raise IMStatusError(Status.UNSUPPORTED_ACCESS)
        if spec.timed and not timed:
            raise IMStatusError(Status.NEEDS_TIMED_INTERACTION)
        return cluster, spec

    def _invoke_one(self, subject: Subject, session: SecureSession, data: CommandDataIB,
                    timed: bool, now: float) -> InvokeResponseIB:
        path = data.path
        try:
            cluster, spec = self._command(subject, path, timed)
            try:
                request = spec.request.from_value({} if data.fields is None else data.fields)
            except tlv.TLVError as exc:
                raise IMStatusError(Status.INVALID_COMMAND, reason=str(exc)) from None
            ctx = Context(subject, session, path.endpoint, now)
            try:
                response = spec.handler(cluster, ctx, request)
            except IMStatusError:
                raise
            except Exception:
                log.exception("event=command_error cluster=0x%04X command=0x%02X",
                              path.cluster, path.command)
                raise IMStatusError(Status.FAILURE, reason="handler error") from None
        except IMStatusError as err:
            log.info("event=command_status endpoint=%d cluster=0x%04X command=0x%02X "
                     "status=%s reason=%s", path.endpoint, path.cluster, path.command,
                     status_name(err.status), err.reason or "-")
            return InvokeResponseIB(status=CommandStatusIB(
                path=path, status=StatusIB(status=err.status, cluster_status=err.cluster_status),
                command_ref=data.command_ref))
        if response is None or spec.response_id is None:
            return InvokeResponseIB(status=CommandStatusIB(
                path=path, status=StatusIB(status=Status.SUCCESS), command_ref=data.command_ref))
        return InvokeResponseIB(command=CommandDataIB(
            path=CommandPathIB(endpoint=path.endpoint, cluster=path.cluster,
                               command=spec.response_id),
            fields=response.to_value(), command_ref=data.command_ref))
