"""Working through a campaign's outbox: N connections, a shared pace, retries, and honest bookkeeping.

Each connection is a thread with its own transport and its own database connection. Threads claim small
batches of rows (see :mod:`newsletter.delivery.ledger`), send them one by one and commit every outcome at once,
so a crash loses at most the message in flight on each connection.

What happens to a message, by what the transport says:

- accepted: ``sent``.
- temporary failure (4xx, no connection): retried in this run after ``retry_base`` seconds, doubling,
  up to ``max_attempts`` attempts and ``retry_max_time`` seconds; then left ``pending`` for a later run.
- connection lost before the reply: the same, and the row is flagged ``possibly_duplicated``.
- permanent failure (5xx): ``failed``; a hard one (the address does not exist, by
  :mod:`newsletter.delivery.outcomes`) also marks the subscriber as bounced. A policy block
  (``550 5.7.1``) or a full mailbox does not.
- any other exception from a transport: that message ``failed``, the run goes on.
- a transport configuration error (wrong password, untrusted certificate): the run stops, and the
  rows it had claimed go back to ``pending``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from newsletter.delivery.ledger import (
    Claim,
    Counts,
    Ledger,
    counts,
    finish_run,
    heartbeat,
    mark_complete_if_done,
    reclaim_abandoned,
    skip_departed,
    start_run,
)
from newsletter.delivery.outcomes import Outcome, Severity, classify
from newsletter.delivery.transports import (
    ConnectionLost,
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
    Transport,
    TransportConfigError,
    TransportFactory,
)
from newsletter.store.engine import Store
from newsletter.store.models import StartedCampaign, Subscriber, utcnow
from newsletter.subscribers import service as subscriber_service

CLAIM_BATCH = 25


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base: float = 1.0
    max_time: float = 300.0

    def delay(self, tries: int) -> float:
        return self.base * 2.0 ** (tries - 1)


class RateLimiter:
    """Spaces sends evenly across all connections: at most ``rate`` per second, without bursts."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        if not self.interval:
            return
        with self._lock:
            slot = max(self._next, time.monotonic())
            self._next = slot + self.interval
        delay = slot - time.monotonic()
        if delay > 0:
            stop.wait(delay)


@dataclass
class _RunState:
    """What the connection threads share."""

    limit: int | None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: int = 0
    fatal: BaseException | None = None
    warnings: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)  # what this run did: sent, failed, retry, deferred
    tries: dict[int, int] = field(default_factory=dict)
    first_try: dict[int, float] = field(default_factory=dict)

    def take_turn(self) -> bool:
        """Reserve one send under --limit; False once the limit is spent."""
        with self.lock:
            if self.limit is not None and self.started >= self.limit:
                return False
            self.started += 1
            return True


MessageBuilder = Callable[[Claim], OutgoingMessage]


class DeliveryRun:
    """One run over one campaign's outbox. Build it, call :meth:`run`, read the counts."""

    def __init__(
        self,
        store: Store,
        campaign: StartedCampaign,
        build: MessageBuilder,
        transport: TransportFactory,
        *,
        connections: int = 1,
        rate: float = 0.0,
        policy: RetryPolicy = RetryPolicy(),
        limit: int | None = None,
        progress: Callable[[str], None] | None = None,
        lease: timedelta = timedelta(seconds=60),
        heartbeat_interval: float = 5.0,
    ) -> None:
        self.store = store
        self.campaign = campaign
        self.build = build
        self.transport = transport
        self.connections = max(1, connections)
        self.rate = RateLimiter(rate)
        self.policy = policy
        self._progress = progress or (lambda outcome: None)
        self.lease = lease
        self.heartbeat_interval = heartbeat_interval
        self.state = _RunState(limit)
        self.run_id = ""

    def run(self) -> Counts:
        with self.store.session() as session:
            reclaim_abandoned(session, self.campaign, lease=self.lease)
            self.run_id = start_run(session, self.campaign)
        beat_stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(beat_stop,), name="send-heartbeat", daemon=True)
        beat.start()
        workers = [
            threading.Thread(target=self._worker, name=f"send-{n}", daemon=True) for n in range(self.connections)
        ]
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.2)  # short joins keep Ctrl-C responsive
        except KeyboardInterrupt:
            self.state.stop.set()
            for worker in workers:
                worker.join()
            raise
        finally:
            beat_stop.set()
            beat.join()
            with self.store.session() as session:
                skip_departed(session, self.campaign)
                finish_run(session, self.run_id)
                mark_complete_if_done(session, self.campaign)
        if self.state.fatal is not None:
            raise self.state.fatal
        with self.store.session() as session:
            return counts(session, self.campaign)

    def progress(self, outcome: str) -> None:
        with self.state.lock:
            self.state.outcomes[outcome] += 1
        self._progress(outcome)

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_interval):
            with self.store.session() as session:
                heartbeat(session, self.run_id)

    def _worker(self) -> None:
        try:
            transport = self.transport()
            try:
                transport.open()
            except TemporaryFailure as exc:
                # The server is unreachable for now: nothing was claimed, the rows stay pending for
                # a later run, and the run reports why.
                with self.state.lock:
                    self.state.warnings.append(str(exc))
                return
            # One database connection per thread, held for the run: each outcome is one short
            # transaction on it, which costs far less than a new ORM session per message.
            with transport, self.store.engine.connect() as db:
                self._work(transport, Ledger(db, self.campaign.id, self.run_id))
        except BaseException as exc:  # noqa: BLE001 - a thread must not die silently: stop the run and report it
            self._fail_run(exc)

    def _fail_run(self, exc: BaseException) -> None:
        with self.state.lock:
            if self.state.fatal is None:
                self.state.fatal = exc
        self.state.stop.set()

    def _work(self, transport: Transport, ledger: Ledger) -> None:
        state, db = self.state, ledger.db
        while not state.stop.is_set():
            with db.begin():
                claims = ledger.claim(CLAIM_BATCH)
                if claims:
                    ledger.begin(claims[0].outbox_id)
            if not claims:
                if not self._wait_for_retries(ledger):
                    return
                continue
            for index, item in enumerate(claims):
                if not self._next_turn():
                    with db.begin():
                        ledger.release([c.outbox_id for c in claims[index:]])
                    return
                following = claims[index + 1].outbox_id if index + 1 < len(claims) else None
                try:
                    self._deliver(transport, ledger, item, following)
                except TransportConfigError:
                    with db.begin():
                        ledger.release([c.outbox_id for c in claims[index:]])
                    raise

    def _next_turn(self) -> bool:
        """Wait for this thread's next slot; False once --limit is spent or the run is stopping.

        A spent limit does not stop the other threads: each finds out at its own next turn, so no
        thread's wait for its slot is cut short (that would send a message early).
        """
        state = self.state
        if state.stop.is_set() or not state.take_turn():
            return False
        self.rate.wait(state.stop)
        return not state.stop.is_set()

    def _wait_for_retries(self, ledger: Ledger) -> bool:
        """Sleep until a row of ours may be retried; False when nothing is left for this run."""
        with ledger.db.begin():
            due = ledger.next_retry_at()
        if due is None:
            return False
        self.state.stop.wait(min(max((due - utcnow()).total_seconds(), 0.05), 1.0))
        return True

    @contextlib.contextmanager
    def _outcome(self, ledger: Ledger, following: int | None) -> Iterator[Connection]:
        """One transaction that records a message's outcome and marks the next one as in flight."""
        with ledger.db.begin():
            yield ledger.db
            if following is not None:
                ledger.begin(following)

    def _deliver(self, transport: Transport, ledger: Ledger, item: Claim, following: int | None) -> None:
        try:
            message = self.build(item)
            result = transport.send(message)
        except ConnectionLost as exc:
            self._temporary(ledger, item, following, exc.code, str(exc), possibly_duplicated=True)
        except TemporaryFailure as exc:
            self._temporary(ledger, item, following, exc.code, str(exc), possibly_duplicated=False)
        except PermanentFailure as exc:
            self._permanent(ledger, item, following, exc.code, str(exc))
        except TransportConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken message must not stop the campaign
            self._permanent(ledger, item, following, None, f"{type(exc).__name__}: {exc}")
        else:
            with self._outcome(ledger, following):
                ledger.sent(item.outbox_id, message.message_id, result.code)
            self.progress("sent")

    def _temporary(
        self,
        ledger: Ledger,
        item: Claim,
        following: int | None,
        code: int | None,
        error: str,
        *,
        possibly_duplicated: bool,
    ) -> None:
        state = self.state
        with state.lock:
            tries = state.tries[item.outbox_id] = state.tries.get(item.outbox_id, 0) + 1
            first = state.first_try.setdefault(item.outbox_id, time.monotonic())
        delay = self.policy.delay(tries)
        give_up = tries >= self.policy.max_attempts or time.monotonic() - first + delay > self.policy.max_time
        retry_after = None if give_up else utcnow() + timedelta(seconds=delay)
        with self._outcome(ledger, following):
            ledger.retry(
                item.outbox_id,
                code=code,
                error=error,
                retry_after=retry_after,
                possibly_duplicated=possibly_duplicated,
            )
        self.progress("deferred" if give_up else "retry")

    def _permanent(self, ledger: Ledger, item: Claim, following: int | None, code: int | None, error: str) -> None:
        with self._outcome(ledger, following) as db:
            ledger.failed(item.outbox_id, code, error)
            outcome = classify(code=code, diagnostic=error) if code is not None else None
            if outcome is not None and outcome.severity is Severity.HARD:
                # In the same transaction: the failure and the bounce are recorded together or not at all.
                with Session(bind=db) as session:
                    self._bounce(session, item, code, error, outcome)
                    session.flush()
        self.progress("failed")

    def _bounce(self, session: Session, item: Claim, code: int | None, error: str, outcome: Outcome) -> None:
        subscriber = session.get(Subscriber, item.subscriber_id)
        if subscriber is not None:
            subscriber_service.hard_bounce(
                session,
                subscriber,
                actor="delivery",
                via="smtp",
                campaign=self.campaign.slug,
                code=code,
                status_code=outcome.status,
                diagnostic=error[:500],
                reason=outcome.reason,
            )
