"""The IRIS worker: receive from Azure Service Bus, load into the warehouse, then settle.

Guarantees, and how:

* **nothing lost** — PEEK_LOCK; a message is completed only after its rows are committed. If the
  worker dies first, the lock expires and Service Bus redelivers it.
* **nothing loaded twice** — the message id is written to a ledger in the same transaction as
  the rows, so a redelivery after "committed but not yet completed" is recognised and only
  completed; rows also carry a natural key per dataset.
* **locks kept, few round trips** — while a batch is in hand its locks are renewed before they come
  within ``lock_margin_s`` of expiring, all of them in one ``renew-lock`` request per 100 messages
  (a batch of 500 renews in 5 round trips, well inside the lock even at 50 ms a round trip), and it
  is completed the same way, one ``update-disposition`` request per 100 messages, so a backlog
  drains at the warehouse's speed rather than at one round trip per message.
* **bad input** — the loader quarantines what cannot be typed or what the warehouse rejects,
  message by message, with the raw body and the reason; the rest of the batch commits and every
  message is completed. Nothing is dead-lettered for bad data: it is in ``iris_quarantine``.
* **warehouse unavailable** (disk full, lock, network, credentials: a fault of ours) — the batch
  is *held*: its locks are renewed while the write is retried with exponential backoff, so no
  delivery attempt is used and nothing is quarantined or dead-lettered. When the warehouse is back
  the batch commits and the outage is recorded in ``iris_outages`` (``status`` shows it). New
  messages stay on the queue meanwhile (the worker receives nothing while it holds a batch; it
  prefetches nothing, so no message waits in a client buffer with a lock running out). Service Bus
  keeps them for the queue's time-to-live (3 days for IRIS): an outage longer than that loses the
  oldest waiting messages, which ``backfill iris`` then fetches from the Insights API. If a held
  lock is lost anyway (the broker refuses a renewal), that message is redelivered once the worker
  takes messages again and the ledger recognises it.
* **connection trouble** — any Service Bus error rebuilds the client after an exponential
  backoff with jitter, forever (or until stopped). A settlement that fails because the connection
  was rebuilt meanwhile is expected: the message is redelivered and the ledger recognises it.
* **stopping** — :meth:`IrisWorker.stop` (SIGTERM/Ctrl-C in the CLI) lets the batch in hand
  finish (commit and complete) and returns; a batch held by an outage is abandoned (redelivered
  later, one delivery attempt used). ``exit_when_idle`` returns once the queue has been empty that long.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
from azure.servicebus import ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiveMode
from azure.servicebus.exceptions import MessageAlreadySettled, MessageLockLostError, ServiceBusError
from tenacity import wait_random_exponential

from core.errors import WarehouseError
from ingest.iris.config import IrisSettings
from ingest.iris.decode import Message
from ingest.iris.load import BatchResult, IrisLoader
from ingest.iris.tables import OUTAGES

log = logging.getLogger(__name__)

RENEW_CHUNK = 100  # lock tokens per renew-lock request


@dataclass
class WorkerSummary:
    messages: int = 0
    duplicate_messages: int = 0
    batches: int = 0
    rows: int = 0
    duplicate_rows: int = 0
    corrections: int = 0
    quarantined: int = 0
    dead_lettered: int = 0
    reconnects: int = 0
    completion_failures: int = 0
    outages: int = 0
    outage_seconds: float = 0.0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        rate = self.messages / self.seconds if self.seconds else 0.0
        return [
            f"IRIS worker: {self.messages:,} messages in {self.batches:,} batches, {self.seconds:,.1f} s ({rate:,.0f} messages/s)",
            f"  rows            {self.rows:,} loaded, {self.corrections:,} corrections applied, "
            f"{self.duplicate_rows:,} duplicates skipped",
            f"  messages        {self.duplicate_messages:,} already loaded (redeliveries), {self.quarantined:,} records "
            f"quarantined, {self.dead_lettered:,} dead-lettered",
            f"  connection      {self.reconnects:,} reconnects, {self.completion_failures:,} completions failed (redelivered later)",
            f"  warehouse       {self.outages:,} outages held through ({self.outage_seconds:,.0f} s in all)",
        ]


def received_to_message(msg: ServiceBusReceivedMessage) -> Message:
    """A Service Bus message as a loader :class:`Message` (body bytes, id, subject, lineage)."""
    body = msg.body
    if isinstance(body, (bytes, bytearray)):
        raw = bytes(body)
    elif isinstance(body, str):
        raw = body.encode()
    elif hasattr(body, "__iter__") and not isinstance(body, (dict, list)):
        parts = list(body)
        raw = b"".join(p if isinstance(p, (bytes, bytearray)) else str(p).encode() for p in parts)
    else:  # an AMQP value section holding a structure
        raw = json.dumps(body, default=str).encode()
    return Message(
        message_id=str(msg.message_id or f"seq-{msg.sequence_number}"),
        body=raw,
        subject=msg.subject,
        source="iris",
        enqueued_at=msg.enqueued_time_utc,
        sequence_number=msg.sequence_number,
        delivery_count=msg.delivery_count or 0,
    )


class _LockKeeper:
    """Keeps the locks of a batch: renews them, in chunks of one request each, before they expire.

    As a context manager it renews on a thread while the batch is loaded (the main thread is in the
    warehouse then); during settlement :meth:`renew_due` is called between settlements instead, in
    the settling thread: the SDK does not tolerate two threads on one connection's links.
    """

    def __init__(self, receiver, messages: list[ServiceBusReceivedMessage], margin_s: float):
        self.receiver, self.margin_s = receiver, margin_s
        self.pending = list(messages)
        self.lost: list[ServiceBusReceivedMessage] = []
        self.renewals = 0
        self._checked = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="iris-lock-renewal", daemon=True)

    def __enter__(self) -> "_LockKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while self.pending and not self._stop.wait(0.25):
            self.renew_due(force=True)

    def renew_due(self, force: bool = False) -> None:
        """Renew every pending lock within the margin of expiring (checked at most every 0.25 s)."""
        if not force and time.monotonic() - self._checked < 0.25:
            return
        self._checked = time.monotonic()
        now = dt.datetime.now(dt.timezone.utc)
        due = [m for m in self.pending
               if m.locked_until_utc is not None and (m.locked_until_utc - now).total_seconds() < self.margin_s]
        for i in range(0, len(due), RENEW_CHUNK):
            if self._stop.is_set() and force:
                return
            self._renew(due[i:i + RENEW_CHUNK])

    def settled(self, message: ServiceBusReceivedMessage) -> None:
        if message in self.pending:
            self.pending.remove(message)

    def _renew(self, messages: list[ServiceBusReceivedMessage]) -> None:
        """One ``renew-lock`` request for all of ``messages``; if the broker refuses it, one by one to
        find the lost locks (the SDK's public call takes one message, the request takes many)."""
        try:
            response = self.receiver._renew_locks(*(m.lock_token for m in messages))  # noqa: SLF001
            expirations = response[b"expirations"]
            for message, expiry in zip(messages, expirations):
                message._expiry = dt.datetime.fromtimestamp(expiry / 1000, dt.timezone.utc)  # noqa: SLF001
            self.renewals += len(messages)
            return
        except (MessageLockLostError, ServiceBusError, AttributeError, KeyError, TypeError):
            if len(messages) == 1:
                return self._renew_one(messages[0])
        for message in messages:
            self._renew_one(message)

    def _renew_one(self, message: ServiceBusReceivedMessage) -> None:
        try:
            self.receiver.renew_message_lock(message)
            self.renewals += 1
        except (MessageLockLostError, ServiceBusError, ValueError) as exc:
            self.pending.remove(message)  # lost: Service Bus will redeliver it; the ledger skips it then
            self.lost.append(message)
            log.warning("could not renew the lock of %s: %s (it will be redelivered; the ledger keeps it from "
                        "loading twice)", message.message_id, exc)


@dataclass
class _Outage:
    started_at: dt.datetime
    error: str
    attempts: int = 0


class IrisWorker:
    """Consumes one IRIS queue into the warehouse (see the module docstring)."""

    def __init__(
        self,
        loader: IrisLoader,
        settings: IrisSettings,
        *,
        batch_size: int = 500,
        max_wait_s: float = 5.0,
        lock_margin_s: float = 10.0,
        exit_when_idle_s: float | None = None,
        backoff_max_s: float = 60.0,
        client_factory: Callable[[], ServiceBusClient] | None = None,
        on_batch: Callable[[WorkerSummary], None] | None = None,
        after_commit: Callable[[BatchResult], None] | None = None,
    ):
        self.loader = loader
        self.settings = settings
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.lock_margin_s = lock_margin_s
        self.exit_when_idle_s = exit_when_idle_s
        self.backoff = wait_random_exponential(multiplier=0.5, max=backoff_max_s)
        self.client_factory = client_factory or settings.client
        self.on_batch = on_batch
        self.after_commit = after_commit
        self.summary = WorkerSummary()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Finish the batch in hand, then return from :meth:`run`."""
        self._stop.set()

    # ------------------------------------------------------------------ main loop
    def run(self) -> WorkerSummary:
        started = time.perf_counter()
        last_message = time.monotonic()
        failures = 0
        while not self._stop.is_set():
            try:
                with self.client_factory() as client, client.get_queue_receiver(
                    self.settings.queue_name,
                    receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
                    prefetch_count=0,  # nothing waits in a client buffer while its lock runs out
                ) as receiver:
                    log.info("connected to IRIS queue %s", self.settings.queue_name)
                    while not self._stop.is_set():
                        batch = receiver.receive_messages(max_message_count=self.batch_size,
                                                          max_wait_time=self.max_wait_s)
                        failures = 0
                        if not batch:
                            self.loader.wh.idle()  # let other processes at a file warehouse meanwhile
                            if self.exit_when_idle_s is not None and time.monotonic() - last_message >= self.exit_when_idle_s:
                                self._stop.set()
                            continue
                        last_message = time.monotonic()
                        self._process(receiver, batch)
                        self.summary.seconds = time.perf_counter() - started
                        if self.on_batch:
                            self.on_batch(self.summary)
            except Exception as exc:  # noqa: BLE001 - Service Bus, network, credential: retry forever
                failures += 1
                self.summary.reconnects += 1
                delay = self.backoff(_RetryState(failures))
                level = logging.WARNING if isinstance(exc, (ServiceBusError, OSError, TimeoutError)) else logging.ERROR
                log.log(level, "IRIS connection problem, %s (%s: %s); reconnecting in %.1f s", self.settings.where,
                        type(exc).__name__, exc, delay, exc_info=level == logging.ERROR)
                self._stop.wait(delay)
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _process(self, receiver, batch: list[ServiceBusReceivedMessage]) -> None:
        messages = [received_to_message(m) for m in batch]
        with _LockKeeper(receiver, batch, self.lock_margin_s) as keeper:
            result = self._load_holding(messages, keeper)
        if result is None:  # stopped while the warehouse was unavailable: let Service Bus have them back
            self._settle(receiver, list(keeper.pending), "abandon", keeper)
            return
        self._count(result)
        self._settle(receiver, batch, "complete", keeper)
        if self.after_commit:
            try:
                self.after_commit(result)
            except Exception:  # noqa: BLE001 - what runs after a commit never holds up ingestion
                log.exception("the after-commit hook failed")

    def _load_holding(self, messages: list[Message], keeper: _LockKeeper) -> BatchResult | None:
        """Load the batch; while the warehouse is unavailable, keep it (locks renewed) and retry with
        backoff. None if asked to stop meanwhile."""
        outage: _Outage | None = None
        while True:
            try:
                result = self.loader.load(messages)
            except WarehouseError as exc:
                if outage is None:
                    outage = _Outage(dt.datetime.now(dt.timezone.utc), str(exc))
                    log.error("warehouse unavailable (%s): holding %d messages (their locks are renewed; nothing is "
                              "dead-lettered or quarantined) and retrying", exc, len(messages))
                outage.attempts += 1
                delay = self.backoff(_RetryState(outage.attempts))
                log.warning("warehouse still unavailable after %d attempt(s) (%s); next try in %.1f s",
                            outage.attempts, exc, delay)
                if self._stop.wait(delay):
                    log.warning("stopping during a warehouse outage: the %d held messages go back to the queue",
                                len(messages))
                    return None
                continue
            if outage is not None:
                self._record_outage(outage, len(messages), len(keeper.lost))
            return result

    def _record_outage(self, outage: _Outage, held: int, lost: int) -> None:
        ended = dt.datetime.now(dt.timezone.utc)
        seconds = (ended - outage.started_at).total_seconds()
        self.summary.outages += 1
        self.summary.outage_seconds += seconds
        log.warning("warehouse back after %.0f s (%d attempts): the %d held messages are committed", seconds,
                    outage.attempts, held)
        row = {"started_at": outage.started_at, "ended_at": ended, "seconds": seconds, "attempts": outage.attempts,
               "messages_held": held, "locks_lost": lost, "error": outage.error[:2000]}
        try:
            self.loader.wh.write({OUTAGES.name: OUTAGES.conform(pa.Table.from_pylist([row]))})
        except WarehouseError as exc:  # advisory: the data is in; the record of the outage is not essential
            log.warning("could not record the outage in %s: %s", OUTAGES.name, exc)

    def _settle(self, receiver, batch, how: str, keeper: _LockKeeper) -> None:
        if how == "complete":
            batch = self._complete_in_chunks(receiver, batch, keeper)
        for msg in batch:
            keeper.renew_due()  # completing 500 messages one round trip each can outlast a lock
            keeper.settled(msg)
            try:
                (receiver.complete_message if how == "complete" else receiver.abandon_message)(msg)
            except (MessageLockLostError, ServiceBusError, MessageAlreadySettled, ValueError) as exc:
                # committed but not completed: Service Bus redelivers it and the ledger skips it. After a
                # reconnect the old receiver is shut down ("handler has already been shutdown"): expected.
                self.summary.completion_failures += 1
                log.info("could not %s message %s (%s); it will be redelivered and recognised", how, msg.message_id,
                         exc)

    def _complete_in_chunks(self, receiver, batch, keeper: _LockKeeper) -> list:
        """Complete ``batch`` with one ``update-disposition`` request per 100 messages (the SDK's own
        settlement fallback, which takes many lock tokens) instead of one round trip per message.
        Returns the messages of chunks the broker refused, to be settled one by one."""
        settle = getattr(receiver, "_settle_message_via_mgmt_link", None)
        if settle is None:
            return list(batch)
        left = []
        for i in range(0, len(batch), RENEW_CHUNK):
            chunk = batch[i:i + RENEW_CHUNK]
            keeper.renew_due()
            try:
                settle("completed", [m.lock_token for m in chunk])
            except (MessageLockLostError, ServiceBusError, ValueError, TypeError) as exc:
                log.info("completing %d messages in one request failed (%s); completing them one by one",
                         len(chunk), exc)
                left += chunk
                continue
            for m in chunk:
                m._settled = True  # noqa: SLF001 - what complete_message records after its own settlement
                keeper.settled(m)
        return left

    def _count(self, result: BatchResult) -> None:
        s = self.summary
        s.batches += 1
        s.messages += result.messages
        s.duplicate_messages += result.duplicate_messages
        s.rows += result.inserted
        s.duplicate_rows += result.duplicate_rows
        s.corrections += result.corrections
        s.quarantined += result.quarantined


@dataclass
class _RetryState:
    """Just enough of tenacity's retry state for its wait strategies."""

    attempt_number: int


def install_stop_signals(worker: IrisWorker) -> None:
    """SIGTERM and SIGINT stop the worker cleanly (the batch in hand is finished first)."""
    import signal

    def handler(signum, frame):
        log.info("signal %s received: finishing the current batch, then stopping", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
