"""The IRIS worker: receive from Azure Service Bus, load into the warehouse, then settle.

Guarantees, and how:

* **nothing lost** — PEEK_LOCK; a message is completed only after its rows are committed. If the
  worker dies first, the lock expires and Service Bus redelivers it.
* **nothing loaded twice** — the message id is written to a ledger in the same transaction as
  the rows, so a redelivery after "committed but not yet completed" is recognised and only
  completed; rows also carry a natural key per dataset.
* **slow writes** — while a batch is being written, its locks are renewed before they expire.
* **bad input** — an undecodable body or a record that fails typing is quarantined with its raw
  text and the message completed; if a batch fails as a whole, its messages are retried one by
  one and a message that still fails is dead-lettered with the reason. If the warehouse itself
  is unavailable, the batch is abandoned (redelivered later) and the worker backs off.
* **connection trouble** — any Service Bus error rebuilds the client after an exponential
  backoff with jitter, forever (or until stopped).
* **stopping** — :meth:`IrisWorker.stop` (SIGTERM/Ctrl-C in the CLI) lets the batch in hand
  finish (commit and complete) and returns; ``exit_when_idle`` returns once the queue has been
  empty that long.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from azure.servicebus import ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiveMode
from azure.servicebus.exceptions import MessageLockLostError, ServiceBusError
from tenacity import wait_random_exponential

from ingest.iris.config import IrisSettings
from ingest.iris.decode import Message
from ingest.iris.load import IrisLoader
from warehouse.base import WarehouseError

log = logging.getLogger(__name__)


@dataclass
class WorkerSummary:
    messages: int = 0
    duplicate_messages: int = 0
    batches: int = 0
    rows: int = 0
    duplicate_rows: int = 0
    quarantined: int = 0
    dead_lettered: int = 0
    reconnects: int = 0
    completion_failures: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        rate = self.messages / self.seconds if self.seconds else 0.0
        return [
            f"IRIS worker: {self.messages:,} messages in {self.batches:,} batches, {self.seconds:,.1f} s ({rate:,.0f} messages/s)",
            f"  rows            {self.rows:,} loaded, {self.duplicate_rows:,} duplicates skipped",
            f"  messages        {self.duplicate_messages:,} already loaded (redeliveries), {self.quarantined:,} quarantined, "
            f"{self.dead_lettered:,} dead-lettered",
            f"  connection      {self.reconnects:,} reconnects, {self.completion_failures:,} completions failed (redelivered later)",
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
    """Renews the locks of a batch, one message at a time, while the batch is being written."""

    def __init__(self, receiver, messages: list[ServiceBusReceivedMessage], margin_s: float):
        self.receiver, self.messages, self.margin_s = receiver, messages, margin_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="iris-lock-renewal", daemon=True)
        self.renewals = 0

    def __enter__(self) -> "_LockKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pending = list(self.messages)
        while pending and not self._stop.wait(0.25):
            now = dt.datetime.now(dt.timezone.utc)
            for msg in list(pending):
                if self._stop.is_set():
                    return
                until = msg.locked_until_utc
                if until is not None and (until - now).total_seconds() < self.margin_s:
                    try:
                        self.receiver.renew_message_lock(msg)
                        self.renewals += 1
                    except (MessageLockLostError, ServiceBusError) as exc:
                        pending.remove(msg)  # lost: Service Bus will redeliver it; the ledger skips it then
                        log.warning("could not renew the lock of %s: %s (it will be redelivered; the ledger "
                                    "keeps it from loading twice)", msg.message_id, exc)


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
                    prefetch_count=self.batch_size,
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
            except WarehouseError as exc:
                failures += 1
                delay = self.backoff(_RetryState(failures))
                log.error("warehouse unavailable (%s); the batch was abandoned and will be redelivered; retrying in %.1f s",
                          exc, delay)
                self._stop.wait(delay)
            except Exception as exc:  # noqa: BLE001 - Service Bus, network, credential: retry forever
                failures += 1
                self.summary.reconnects += 1
                delay = self.backoff(_RetryState(failures))
                level = logging.WARNING if isinstance(exc, (ServiceBusError, OSError, TimeoutError)) else logging.ERROR
                log.log(level, "IRIS connection problem (%s: %s); reconnecting in %.1f s", type(exc).__name__, exc, delay,
                        exc_info=level == logging.ERROR)
                self._stop.wait(delay)
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _process(self, receiver, batch: list[ServiceBusReceivedMessage]) -> None:
        messages = [received_to_message(m) for m in batch]
        try:
            with _LockKeeper(receiver, batch, self.lock_margin_s):
                result = self.loader.load(messages)
        except WarehouseError:
            self._settle(receiver, batch, "abandon")
            raise
        except Exception:  # noqa: BLE001 - isolate the message that breaks the batch
            log.exception("a batch of %d messages failed; retrying them one by one", len(batch))
            self._one_by_one(receiver, batch, messages)
            return
        self._count(result)
        self._settle(receiver, batch, "complete")

    def _one_by_one(self, receiver, batch, messages) -> None:
        for raw, msg in zip(batch, messages):
            try:
                with _LockKeeper(receiver, [raw], self.lock_margin_s):
                    result = self.loader.load([msg])
            except WarehouseError:
                self._settle(receiver, [raw], "abandon")
                raise
            except Exception as exc:  # noqa: BLE001
                log.error("message %s cannot be loaded (%s); dead-lettering it", msg.message_id, exc)
                try:
                    receiver.dead_letter_message(raw, reason="load failed", error_description=str(exc)[:1000])
                    self.summary.dead_lettered += 1
                except ServiceBusError as settle_exc:
                    log.warning("could not dead-letter %s: %s", msg.message_id, settle_exc)
                continue
            self._count(result)
            self._settle(receiver, [raw], "complete")

    def _settle(self, receiver, batch, how: str) -> None:
        for msg in batch:
            try:
                (receiver.complete_message if how == "complete" else receiver.abandon_message)(msg)
            except (MessageLockLostError, ServiceBusError) as exc:
                # committed but not completed: Service Bus redelivers it and the ledger skips it
                self.summary.completion_failures += 1
                log.warning("could not %s message %s: %s", how, msg.message_id, exc)

    def _count(self, result) -> None:
        s = self.summary
        s.batches += 1
        s.messages += result.messages
        s.duplicate_messages += result.duplicate_messages
        s.rows += result.inserted
        s.duplicate_rows += result.duplicate_rows
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
