"""A local Azure Service Bus queue, spoken to over AMQP 1.0 by the real ``azure-servicebus`` SDK.

Built on python-qpid-proton, listening on 127.0.0.1 without TLS; clients connect with
``Endpoint=sb://127.0.0.1:PORT;SharedAccessKeyName=x;SharedAccessKey=y;UseDevelopmentEmulator=true``.
What it does (see ../shared/reference/TESTING-EXTERNALS.md, Part 1):

* SASL ANONYMOUS; a ``$cbs`` put-token request is answered 202 (tokens are not checked);
* a queue receive link (``…/<queue>`` or ``…/<queue>/$DeadLetterQueue``) hands out messages in
  PEEK_LOCK: the delivery tag is the lock token (a UUID's little-endian bytes), message annotations
  carry ``x-opt-sequence-number``, ``x-opt-enqueued-time`` and ``x-opt-locked-until``, the header
  the delivery count;
* dispositions are echoed and settled: accepted = complete, modified = abandon (or defer),
  rejected = dead-letter; a lock that expires puts the message back with its delivery count + 1;
  after ``max_delivery_count`` deliveries it is dead-lettered (``MaxDeliveryCountExceeded``);
* ``$management``: ``renew-lock`` and ``update-disposition``;
* test controls: ``send``, ``snapshot``, ``hold_settlements`` (receive dispositions but do not
  answer, like a broker that is slow to confirm), ``latency_s`` (every management reply and
  settlement echo is sent that much later, as over a real network), ``refuse_renewals``, ``drop_connections`` (cut
  every socket, keep the queue) and ``stop``/``start`` (a broker restart: the queue survives, like
  the real durable queue).

Queue state lives in this object, not in the proton container, so it survives restarts.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from proton import Condition, Delivery, Message, symbol, timestamp
from proton.handlers import MessagingHandler
from proton.reactor import ApplicationEvent, Container, EventInjector


@dataclass
class QueuedMessage:
    body: bytes
    message_id: str
    subject: str | None
    properties: dict
    sequence_number: int
    enqueued_ms: int
    delivery_count: int = 0
    lock_token: uuid.UUID | None = None
    locked_until: float = 0.0
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None


@dataclass
class Queue:
    name: str
    lock_duration_s: float = 30.0
    max_delivery_count: int = 10
    available: deque = field(default_factory=deque)
    locked: dict = field(default_factory=dict)  # lock token -> QueuedMessage
    dead_letters: deque = field(default_factory=deque)
    completed: list = field(default_factory=list)


class FakeServiceBus:
    """An in-process Service Bus namespace with queues; see the module docstring."""

    def __init__(self, port: int = 0, lock_duration_s: float = 30.0, max_delivery_count: int = 10,
                 latency_s: float = 0.0):
        self.port = port or _free_port()
        self.latency_s = latency_s
        self.lock_duration_s = lock_duration_s
        self.max_delivery_count = max_delivery_count
        self.queues: dict[str, Queue] = {}
        self.lock = threading.RLock()
        self._seq = itertools.count(1)
        self.hold_settlements = False
        self.refuse_renewals = False
        self.held: list = []  # dispositions received but not answered: (delivery, outcome) or a held request
        self.settlements: list[tuple[str, str]] = []  # (message_id, outcome) in order
        self.delivered: list[tuple[str, int, float, int]] = []  # (message_id, delivery count, time, connection)
        self.connection_events: list[tuple[str, int, float]] = []  # (opened | disconnected, connection, time)
        self.connections_opened = 0
        self._container: Container | None = None
        self._thread: threading.Thread | None = None
        self._injector: EventInjector | None = None
        self._handler: _Handler | None = None

    # ------------------------------------------------------------------ control
    @property
    def connection_string(self) -> str:
        return (f"Endpoint=sb://127.0.0.1:{self.port};SharedAccessKeyName=test;"
                "SharedAccessKey=dGVzdA==;UseDevelopmentEmulator=true")

    def queue(self, name: str) -> Queue:
        with self.lock:
            if name not in self.queues:
                self.queues[name] = Queue(name, self.lock_duration_s, self.max_delivery_count)
            return self.queues[name]

    def send(self, queue: str, body: bytes | str, message_id: str | None = None, subject: str | None = None,
             properties: dict | None = None) -> str:
        """Enqueue one message (body bytes go into one AMQP data section)."""
        data = body.encode() if isinstance(body, str) else body
        with self.lock:
            msg = QueuedMessage(data, message_id or str(uuid.uuid4()), subject, properties or {}, next(self._seq),
                                int(time.time() * 1000))
            self.queue(queue).available.append(msg)
        self._wake()
        return msg.message_id

    def snapshot(self, queue: str) -> dict:
        with self.lock:
            q = self.queue(queue)
            return {
                "available": [m.message_id for m in q.available],
                "locked": [m.message_id for m in q.locked.values()],
                "dead_lettered": [(m.message_id, m.dead_letter_reason) for m in q.dead_letters],
                "completed": list(q.completed),
            }

    def start(self) -> "FakeServiceBus":
        handler = _Handler(self)
        container = Container(handler)
        container.container_id = "fake-servicebus"
        self._injector = EventInjector()
        container.selectable(self._injector)
        self._container, self._handler = container, handler
        ready = threading.Event()
        handler.ready = ready
        self._thread = threading.Thread(target=container.run, name="fake-servicebus", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Service Bus did not start")
        return self

    def stop(self) -> None:
        """Stop listening and cut every connection; the queues and their messages survive."""
        if self._container is None:
            return
        self._inject("shutdown")
        self._thread.join(10)
        self._container = self._thread = self._injector = self._handler = None
        with self.lock:  # a restarted broker keeps locks until they expire, like the real one
            self.held.clear()

    def restart(self) -> None:
        self.stop()
        self.start()

    def drop_connections(self) -> None:
        """Cut every client socket (as a network failure would); the broker keeps running."""
        self._inject("drop")

    def discard_held(self) -> None:
        """Forget the held dispositions, as if they had been lost with the client's connection."""
        with self.lock:
            self.held.clear()
        self.hold_settlements = False

    def release_held(self) -> None:
        """Answer the dispositions held back by ``hold_settlements``."""
        self.hold_settlements = False
        self._inject("release")

    def _wake(self) -> None:
        self._inject("wake")

    def _inject(self, name: str) -> None:
        if self._injector is not None:
            self._injector.trigger(ApplicationEvent(name))

    # ------------------------------------------------------------------ queue logic (holding self.lock)
    def _expire_locks(self) -> None:
        now = time.time()
        with self.lock:
            for q in self.queues.values():
                for token, msg in list(q.locked.items()):
                    if msg.locked_until <= now:
                        del q.locked[token]
                        self._return(q, msg)

    def _return(self, q: Queue, msg: QueuedMessage) -> None:
        """A delivery failed (abandon or lock lost): back to the queue, or dead-lettered."""
        msg.delivery_count += 1
        msg.lock_token = None
        if msg.delivery_count >= q.max_delivery_count:
            msg.dead_letter_reason = "MaxDeliveryCountExceeded"
            msg.dead_letter_description = f"delivered {msg.delivery_count} times"
            q.dead_letters.append(msg)
        else:
            # keep sequence order, as Service Bus does for redeliveries
            items = sorted([*q.available, msg], key=lambda m: m.sequence_number)
            q.available.clear()
            q.available.extend(items)

    def _settle(self, q: Queue, token: uuid.UUID, outcome: str, reason: str | None = None,
                description: str | None = None) -> bool:
        with self.lock:
            msg = q.locked.pop(token, None)
            if msg is None:
                return False
            self.settlements.append((msg.message_id, outcome))
            if outcome == "completed":
                q.completed.append(msg.message_id)
            elif outcome == "abandoned":
                self._return(q, msg)
            elif outcome == "dead-lettered":
                msg.dead_letter_reason, msg.dead_letter_description = reason, description
                q.dead_letters.append(msg)
            elif outcome == "released":
                msg.lock_token = None
                items = sorted([*q.available, msg], key=lambda m: m.sequence_number)
                q.available.clear()
                q.available.extend(items)
            elif outcome == "deferred":
                q.completed.append(msg.message_id)  # not modelled further
            return True


class _Handler(MessagingHandler):
    def __init__(self, bus: FakeServiceBus):
        super().__init__(prefetch=0, auto_accept=False, auto_settle=False)
        self.bus = bus
        self.ready: threading.Event | None = None
        self.acceptor = None
        self.senders: list = []  # queue links we deliver on
        self.deliveries: dict = {}  # proton Delivery -> (queue, lock token)

    # ---------------------------------------------------------------- lifecycle
    def on_start(self, event):
        self.container = event.container
        event.container.allowed_mechs = "ANONYMOUS"
        event.container.sasl_enabled = True
        self.acceptor = event.container.listen(f"127.0.0.1:{self.bus.port}")
        event.container.schedule(0.1, self)
        if self.ready:
            self.ready.set()

    def on_timer_task(self, event):
        self.bus._expire_locks()
        self._forget_settled()
        self._pump()
        event.container.schedule(0.1, self)

    def on_connection_opening(self, event):
        self.bus.connections_opened += 1
        self.bus.connection_events.append(("opened", _address(event.connection), time.time()))

    def on_wake(self, event):
        self._pump()

    def on_release(self, event):
        for dlv, outcome in list(self.bus.held):
            if callable(outcome):
                outcome()  # a held management request (dlv is its connection): apply and answer it now
            elif dlv.link.state & dlv.link.REMOTE_ACTIVE:  # the client may have gone meanwhile
                self._answer(dlv, outcome)
        self.bus.held.clear()

    def on_disconnected(self, event):
        gone = event.connection
        self.bus.connection_events.append(("disconnected", _address(gone), time.time()))
        with self.bus.lock:
            self.bus.held[:] = [(d, o) for d, o in self.bus.held
                                if (d if callable(o) else d.link.connection) != gone]
        # proton wraps an endpoint in a new Python object on every access: compare with ==, never `is`
        for dlv in [d for d in self.deliveries if d.link.connection == gone]:
            self.deliveries.pop(dlv, None)  # its message stays locked until the lock expires
        self.senders[:] = [link for link in self.senders if link.connection != gone]

    def on_drop(self, event):
        for conn in list(self._connections()):
            transport = conn.transport
            if transport is not None:
                transport.close_tail()
                transport.close_head()
        self.senders.clear()
        self.deliveries.clear()

    def on_shutdown(self, event):
        self.on_drop(event)
        if self.acceptor is not None:
            self.acceptor.close()
        self.container.stop()

    def _connections(self):
        seen = set()
        for link in list(self.senders):
            if link.connection not in seen:
                seen.add(link.connection)
                yield link.connection
        for conn in getattr(self, "_all_connections", []):
            if conn not in seen:
                seen.add(conn)
                yield conn

    def on_connection_opened(self, event):
        self._all_connections = [c for c in getattr(self, "_all_connections", []) if c.state]
        self._all_connections.append(event.connection)

    # ---------------------------------------------------------------- links
    def on_link_opening(self, event):
        link = event.link
        if link.is_sender:
            link.source.address = link.remote_source.address
            link.target.address = link.remote_target.address
            address = link.remote_source.address or ""
            if address == "$cbs" or address.endswith("$management"):
                return
            queue, _, sub = address.split("//", 1)[-1].split("/", 1)[-1].partition("/")
            link.fake_queue = queue
            link.fake_dead_letter = sub.lower() == "$deadletterqueue"
            self.senders.append(link)
        else:
            link.target.address = link.remote_target.address
            link.source.address = link.remote_source.address
            link.flow(100)

    def on_link_closed(self, event):
        if event.link in self.senders:
            self.senders.remove(event.link)

    def on_sendable(self, event):
        self._pump()

    def on_link_flow(self, event):
        self._pump()
        link = event.link
        if link.is_sender and link.drain_mode and link.credit > 0:
            link.drained()  # nothing more to send: give the credit back as the client asked

    def _pump(self) -> None:
        bus = self.bus
        for link in list(self.senders):
            if not link.state & link.LOCAL_ACTIVE or link.state & link.REMOTE_CLOSED:
                continue
            while link.credit > 0:
                with bus.lock:
                    q = bus.queue(link.fake_queue)
                    source = q.dead_letters if link.fake_dead_letter else q.available
                    if not source:
                        break
                    msg = source.popleft()
                    msg.lock_token = uuid.uuid4()
                    msg.locked_until = time.time() + q.lock_duration_s
                    q.locked[msg.lock_token] = msg
                out = Message(
                    body=msg.body,
                    id=msg.message_id,
                    subject=msg.subject,
                    properties=dict(msg.properties) | (
                        {"DeadLetterReason": msg.dead_letter_reason,
                         "DeadLetterErrorDescription": msg.dead_letter_description or ""}
                        if link.fake_dead_letter else {}
                    ),
                    annotations={
                        symbol("x-opt-sequence-number"): msg.sequence_number,
                        symbol("x-opt-enqueued-time"): timestamp(msg.enqueued_ms),
                        symbol("x-opt-locked-until"): timestamp(int(msg.locked_until * 1000)),
                    },
                    delivery_count=msg.delivery_count,
                    durable=True,  # forces a header section, so delivery-count 0 is sent as the service does
                )
                out.inferred = True  # bytes body → one AMQP data section
                dlv = link.send(out, tag=msg.lock_token.bytes_le)
                self.deliveries[dlv] = (q, msg.lock_token)
                bus.delivered.append((msg.message_id, msg.delivery_count, time.time(), _address(link.connection)))

    # ---------------------------------------------------------------- settlement
    def on_accepted(self, event):
        self._disposed(event.delivery, "completed")

    def on_rejected(self, event):
        self._disposed(event.delivery, "dead-lettered")

    def on_released(self, event):  # released or modified
        dlv = event.delivery
        if dlv.remote_state == Delivery.RELEASED:
            self._disposed(dlv, "released")  # not delivered: back to the queue, delivery count unchanged
        elif dlv.remote.undeliverable and not dlv.remote.failed:
            self._disposed(dlv, "deferred")
        else:
            self._disposed(dlv, "abandoned")

    def _disposed(self, dlv, outcome: str) -> None:
        if self.bus.hold_settlements and outcome != "released" and not dlv.settled:
            self.bus.held.append((dlv, outcome))
            return
        if self.bus.latency_s and outcome != "released":
            self.container.schedule(self.bus.latency_s, _Later(lambda: self._answer(dlv, outcome)))
            return
        self._answer(dlv, outcome)

    def _answer(self, dlv, outcome: str) -> None:
        """Apply the client's outcome to the queue, then echo it and settle (rcv-settle-mode second)."""
        entry = self.deliveries.pop(dlv, None)
        if entry is None:
            dlv.settle()
            return
        q, token = entry
        reason = description = None
        if outcome == "dead-lettered" and dlv.remote.condition is not None:
            info = dlv.remote.condition.info or {}
            reason = info.get("DeadLetterReason") or info.get(symbol("DeadLetterReason"))
            description = info.get("DeadLetterErrorDescription") or info.get(symbol("DeadLetterErrorDescription"))
        applied = self.bus._settle(q, token, outcome, reason, description)
        if not dlv.settled:
            state = dlv.remote_state
            if applied:
                dlv.local.condition = None
                if state == Delivery.MODIFIED:
                    dlv.local.failed = dlv.remote.failed
                    dlv.local.undeliverable = dlv.remote.undeliverable
                dlv.update(state)
            else:  # the lock expired meanwhile: tell the client it was lost
                dlv.local.condition = Condition("com.microsoft:message-lock-lost", "The lock supplied is invalid.")
                dlv.update(Delivery.REJECTED)
        dlv.settle()
        self._pump()

    def _forget_settled(self) -> None:
        held = {id(d) for d, o in self.bus.held if not callable(o)}
        for dlv in [d for d in self.deliveries if d.settled and id(d) not in held]:
            self.deliveries.pop(dlv, None)

    # ---------------------------------------------------------------- requests ($cbs, $management)
    def on_message(self, event):
        request = event.message
        address = event.link.remote_target.address or ""
        props = request.properties or {}
        if address == "$cbs":
            reply = Message(correlation_id=request.id, properties={"status-code": 202, "status-description": "Accepted"})
            self._reply(event, "$cbs", reply)
        elif address.endswith("$management"):
            operation = props.get("operation")
            if self.bus.hold_settlements and operation == "com.microsoft:update-disposition":
                # a broker that is slow to confirm: the settlement is neither applied nor answered yet
                connection = event.connection
                self.bus.held.append((connection, lambda: self._send_reply(
                    connection, address, self._management(address, operation, request))))
            elif self.bus.latency_s:
                reply, connection = self._management(address, operation, request), event.connection
                self.container.schedule(self.bus.latency_s,
                                        _Later(lambda: self._send_reply(connection, address, reply)))
            else:
                self._reply(event, address, self._management(address, operation, request))
        event.delivery.update(Delivery.ACCEPTED)
        event.delivery.settle()
        if event.link.credit < 50:
            event.link.flow(100 - event.link.credit)  # keep granting credit for requests

    def _reply(self, event, address: str, reply: Message) -> None:
        self._send_reply(event.connection, address, reply)

    def _send_reply(self, connection, address: str, reply: Message) -> None:
        link = connection.link_head(0)
        while link:
            if link.is_sender and (link.remote_source.address or "") == address and link.state & link.REMOTE_ACTIVE:
                link.send(reply)
                return
            link = link.next(0)

    def _management(self, address: str, operation: str, request: Message) -> Message:
        queue = address.split("/")[-2] if "/" in address else address
        q = self.bus.queue(queue.split("//")[-1])
        body = request.body or {}
        status, description, out = 200, "OK", {}
        if operation == "com.microsoft:renew-lock":
            if self.bus.refuse_renewals:
                status, description = 410, "The lock supplied is invalid."
            else:
                expirations = []
                with self.bus.lock:
                    for raw in body.get("lock-tokens", []):
                        token = raw if isinstance(raw, uuid.UUID) else uuid.UUID(bytes=bytes(raw))
                        msg = q.locked.get(token)
                        if msg is None:
                            status, description = 410, "The lock supplied is invalid."
                            break
                        msg.locked_until = time.time() + q.lock_duration_s
                        expirations.append(timestamp(int(msg.locked_until * 1000)))
                out = {"expirations": expirations}
        elif operation == "com.microsoft:update-disposition":
            outcome = {"completed": "completed", "abandoned": "abandoned", "suspended": "dead-lettered",
                       "defered": "deferred"}.get(body.get("disposition-status"), "completed")
            for raw in body.get("lock-tokens", []):
                token = raw if isinstance(raw, uuid.UUID) else uuid.UUID(bytes=bytes(raw))
                if not self.bus._settle(q, token, outcome, body.get("deadletter-reason"),
                                        body.get("deadletter-description")):
                    status, description = 410, "The lock supplied is invalid."
        else:
            status, description = 501, f"operation {operation} not supported by the fake"
        props = {"statusCode": status, "statusDescription": description}
        if status == 410:
            props["errorCondition"] = symbol("com.microsoft:message-lock-lost")
        return Message(correlation_id=request.id, properties=props, body=out)


class _Later:
    """A proton timer task that runs ``action`` on the reactor thread (delayed replies)."""

    def __init__(self, action):
        self.action = action

    def on_timer_task(self, event):
        self.action()


def _address(endpoint) -> int:
    """A stable identity for a proton endpoint (its Python wrapper is a new object on every access)."""
    return hash(endpoint)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    """Run the fake as its own process (as a real broker would be): ``python -m tests.peers.servicebus``."""
    import argparse
    import datetime as dt
    import signal

    parser = argparse.ArgumentParser(description="a local Service Bus queue for the real azure-servicebus SDK")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--queue", default="iris.test")
    parser.add_argument("--lock-duration", type=float, default=30.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply and settlement echo")
    parser.add_argument("--preload", type=int, default=0, help="enqueue this many generated IRIS messages")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bus = FakeServiceBus(port=args.port, lock_duration_s=args.lock_duration, latency_s=args.latency)
    if args.preload:
        from ingest.iris.generate import IrisGenerator

        gen = IrisGenerator(dt.datetime(2026, 5, 6, 3, 0, tzinfo=dt.timezone.utc), seed=args.seed)
        for msg in gen.messages(args.preload):
            bus.send(args.queue, msg.body(), message_id=msg.message_id, subject=msg.subject)
    bus.start()
    print(f"READY {bus.port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    while not done.wait(0.5):
        pass
    snap = bus.snapshot(args.queue)
    print("SNAPSHOT " + " ".join(f"{k}={len(v)}" for k, v in snap.items()), flush=True)
    bus.stop()


if __name__ == "__main__":
    main()
