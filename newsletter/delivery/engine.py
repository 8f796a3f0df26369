"""Working through a campaign's outbox: N connections in one event loop, group commits, one shared pace.

One asyncio event loop drives every connection of a run from one thread. A transport that has an
asyncio connection (SMTP: :mod:`newsletter.delivery.transports.smtp_pipeline`) is driven directly;
any other transport's blocking ``send`` runs in a thread of its own per connection. The loop thread
owns the run's one database connection and does all the bookkeeping:

- claims: batches of rows (see :mod:`newsletter.delivery.ledger`), shared by the connections;
- group commit: each connection hands the loop what must be committed before its next message can
  be delivered (that message now in flight, and the outcome of the one before); everything handed
  in while the loop was busy goes into one transaction, and each connection carries on once it is
  committed. So a crash loses the outcome of at most one message per connection, the one in flight,
  and 20 connections cost one commit where they cost 20;
- the pace (``rate``), shared through the database with every other worker of the campaign
  (:mod:`newsletter.delivery.pace`), and ``--limit``.

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

import asyncio
import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

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
from newsletter.delivery.pace import SharedPace
from newsletter.delivery.transports import (
    ConnectionLost,
    OutgoingMessage,
    PermanentFailure,
    SendResult,
    TemporaryFailure,
    Transport,
    TransportConfigError,
    TransportError,
    TransportFactory,
)
from newsletter.delivery.transports.base import AsyncConnection
from newsletter.store.engine import Store
from newsletter.store.models import StartedCampaign, Subscriber, utcnow
from newsletter.subscribers import service as subscriber_service

PACE_AHEAD = 0.1  # seconds of slots reserved at once from the shared pace


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base: float = 1.0
    max_time: float = 300.0

    def delay(self, tries: int) -> float:
        return self.base * 2.0 ** (tries - 1)


@dataclass
class _RunState:
    """What the connections share, and what the run reports."""

    limit: int | None
    stop: bool = False
    started: int = 0
    fatal: BaseException | None = None
    warnings: list[str] = field(default_factory=list)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)  # sent, failed, retry, deferred
    tries: dict[int, int] = field(default_factory=dict)
    first_try: dict[int, float] = field(default_factory=dict)

    def take_turn(self) -> bool:
        """Reserve one send under --limit; False once the limit is spent or the run is stopping."""
        if self.stop or (self.limit is not None and self.started >= self.limit):
            return False
        self.started += 1
        return True


MessageBuilder = Callable[[Claim], OutgoingMessage]
# What a connection hands to the group commit: a row to mark in flight, an accepted message, or any
# other outcome as a function of the ledger (retries, failures and bounces are rare).
Begin = int
Sent = tuple[int, str, int | None]
Record = Begin | Sent | Callable[[Ledger], None]


class _GroupCommit:
    """Commits what every connection handed in while the loop was busy, in one transaction."""

    def __init__(self, ledger: Ledger, progress: Callable[[str], None], connections: int) -> None:
        self.ledger = ledger
        self.progress = progress
        self.active = connections  # connections still at work: when all of them wait, nobody else will join
        self._records: list[tuple[Record, str | None]] = []
        self._waiters: list[tuple[asyncio.Future[bool], int | None]] = []
        self._refused: set[int] = set()  # rows to begin whose subscriber had left, until their waiter learns it
        self._scheduled = False

    async def __call__(self, *records: tuple[Record, str | None]) -> bool:
        """Commit ``records`` (each with the outcome it reports, if any) with everyone else's.

        False if a row to begin among them was not marked in flight: its subscriber has left.
        """
        self._records += records
        future = asyncio.get_running_loop().create_future()
        begin = next((record for record, _ in records if isinstance(record, int)), None)
        self._waiters.append((future, begin))
        if len(self._waiters) >= self.active:
            self._flush()
        elif not self._scheduled:
            # Runs after every callback that is ready now: the other connections whose replies
            # arrived in this turn of the loop join the same transaction.
            asyncio.get_running_loop().call_soon(self._scheduled_flush)
            self._scheduled = True
        return bool(await future)

    def _scheduled_flush(self) -> None:
        self._scheduled = False
        self._flush()

    def _flush(self) -> None:
        if not self._waiters:
            return  # already flushed, when the last connection to wait came in
        waiters, self._waiters = self._waiters, []
        try:
            self.now()  # their records may already be committed, by a connection that was ending
        except BaseException as exc:  # noqa: BLE001 - every waiter learns of it
            for waiter, _ in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter, begin in waiters:
            if not waiter.done():
                waiter.set_result(begin not in self._refused)
            self._refused.discard(begin)

    def now(self, *records: tuple[Record, str | None]) -> None:
        """Commit ``records`` and everything handed in so far, at once (also when shutting down);
        the rows to begin whose subscriber has left are kept for their waiters."""
        batch, self._records = [*self._records, *records], []
        if not batch:
            return
        begins: list[int] = []
        sent: list[Sent] = []
        other: list[Callable[[Ledger], None]] = []
        for record, _ in batch:
            if isinstance(record, int):
                begins.append(record)
            elif isinstance(record, tuple):
                sent.append(record)
            else:
                other.append(record)
        ledger = self.ledger
        with ledger.db.begin():
            ledger.sent_many(sent)
            for apply in other:
                apply(ledger)
            refused = ledger.begin_many(begins)
        self._refused |= refused
        for _, outcome in batch:
            if outcome is not None:
                self.progress(outcome)


class _Pacer:
    """This run's turns at the campaign's shared pace."""

    def __init__(self, pace: SharedPace | None, connections: int) -> None:
        self.pace = pace
        self._slots: collections.deque[float] = collections.deque()
        self._ahead = 1 if pace is None else max(1, min(connections, round(PACE_AHEAD / pace.interval)))

    async def turn(self) -> None:
        if self.pace is None:
            return
        if not self._slots:
            self._slots.extend(self.pace.reserve(self._ahead))
        delay = self._slots.popleft() - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class _Threaded(AsyncConnection):
    """A transport without an asyncio connection, driven through its blocking ``send`` in a thread."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="send")
        self._message: OutgoingMessage | None = None

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    async def open(self) -> None:
        await self._call(self.transport.open)

    async def begin(self, message: OutgoingMessage) -> None:
        self._message = message  # refusals come from send(), after the row is marked in flight

    async def abandon(self) -> None:
        self._message = None

    async def finish(self, following: OutgoingMessage | None = None) -> SendResult:
        message, self._message = self._message, None
        result: SendResult = await self._call(self.transport.send, message)
        return result

    async def close(self) -> None:
        try:
            await self._call(self.transport.close)
        finally:
            self._thread.shutdown(wait=False)


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
        self.rate = rate
        self.policy = policy
        self._progress = progress or (lambda outcome: None)
        self.lease = lease
        self.heartbeat_interval = heartbeat_interval
        self.state = _RunState(limit)
        self.run_id = ""
        # Claims are shared by the connections; big enough to be cheap, small enough that several
        # workers end together. With a pace (shared with other workers), half a second's worth.
        self.claim_size = min(500, 50 * self.connections)
        if rate > 0:
            self.claim_size = min(self.claim_size, max(self.connections, round(rate / 2)))
        self._queue: collections.deque[Claim] = collections.deque()

    def run(self) -> Counts:
        with self.store.session() as session:
            reclaim_abandoned(session, self.campaign, lease=self.lease)
            self.run_id = start_run(session, self.campaign)
        try:
            self._drive()
        finally:
            with self.store.session() as session:
                skip_departed(session, self.campaign)
                finish_run(session, self.run_id)
                mark_complete_if_done(session, self.campaign)
        if self.state.fatal is not None:
            raise self.state.fatal
        with self.store.session() as session:
            return counts(session, self.campaign)

    def _drive(self) -> None:
        """Run the event loop; in a thread of its own when this thread runs one already (a notebook,
        a test driven by Playwright's sync API)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._loop()
            return
        failed: list[BaseException] = []

        def loop_thread() -> None:
            try:
                self._loop()
            except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                failed.append(exc)

        thread = threading.Thread(target=loop_thread, name="send-loop")
        thread.start()
        thread.join()
        if failed:
            raise failed[0]

    def _loop(self) -> None:
        # The run's one database connection lives in the loop's thread, like everything it does.
        with self.store.engine.connect() as db:
            ledger = Ledger(db, self.campaign.id, self.run_id)
            pace = SharedPace(db, self.campaign.id, self.rate) if self.rate > 0 else None
            asyncio.run(self._main(ledger, pace))

    def progress(self, outcome: str) -> None:
        self.state.outcomes[outcome] += 1
        self._progress(outcome)

    async def _main(self, ledger: Ledger, pace: SharedPace | None) -> None:
        self.ledger = ledger
        self.commit = _GroupCommit(ledger, self.progress, self.connections)
        self.pacer = _Pacer(pace, self.connections)
        beat = asyncio.create_task(self._heartbeat())
        try:
            await asyncio.gather(*(self._connection() for _ in range(self.connections)))
        finally:
            beat.cancel()
            self.commit.now()
            if self._queue:  # claimed but never handed to a transport: back to pending
                with ledger.db.begin():
                    ledger.release([item.outbox_id for item in self._queue])
                self._queue.clear()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            with self.ledger.db.begin():
                heartbeat_on(self.ledger)

    def _fail_run(self, exc: BaseException) -> None:
        if self.state.fatal is None:
            self.state.fatal = exc
        self.state.stop = True

    async def _connection(self) -> None:
        try:
            transport = self.transport()
            connection = transport.connection() or _Threaded(transport)
        except Exception as exc:  # noqa: BLE001 - a bad factory stops the run, reported once
            self.commit.active -= 1
            self._fail_run(exc)
            return
        try:
            try:
                await connection.open()
            except TemporaryFailure as exc:
                # The server is unreachable for now: nothing was claimed, the rows stay pending for
                # a later run, and the run reports why.
                self.state.warnings.append(str(exc))
                return
            await self._work(connection)
        except Exception as exc:  # noqa: BLE001 - a connection must not fail silently: stop the run and report it
            self._fail_run(exc)
        finally:
            self.commit.active -= 1
            await connection.close()

    # --- one connection's loop ----------------------------------------------------------------------

    async def _next(self) -> Claim | None:
        """The next row for a connection (claiming more when none is left), or None when done."""
        state = self.state
        while not state.stop:
            if self._queue:
                return self._queue.popleft() if state.take_turn() else None
            claim_size = self.claim_size
            if state.limit is not None:
                claim_size = max(1, min(claim_size, state.limit - state.started))
            with self.ledger.db.begin():
                claimed = self.ledger.claim(claim_size)
            if claimed:
                self._queue.extend(claimed)
                continue
            with self.ledger.db.begin():
                due = self.ledger.next_retry_at()
            if due is None:
                return None
            await asyncio.sleep(min(max((due - utcnow()).total_seconds(), 0.05), 1.0))
        return None

    def _next_ready(self) -> Claim | None:
        """The next row only if one is claimed already: its transaction can follow this one's end."""
        if self._queue and self.state.take_turn():
            return self._queue.popleft()
        return None

    def _message(self, item: Claim) -> OutgoingMessage | Callable[[Ledger], None]:
        """The item's message, or the record of its failure if it cannot be built."""
        try:
            return self.build(item)
        except Exception as exc:  # noqa: BLE001 - one broken message must not stop the campaign
            return self._permanent(item, None, f"{type(exc).__name__}: {exc}", counted=False)

    async def _work(self, connection: AsyncConnection) -> None:
        carry: list[tuple[Record, str | None]] = []  # the last outcome: committed with the next row's begin
        current: Claim | None = None
        delivering = False  # finish() was called for ``current``: it may have been delivered
        # Rows taken for this connection and their messages, built while the server works on the
        # previous one (off the critical path); the first one's envelope may already be on its way.
        ahead: collections.deque[tuple[Claim, OutgoingMessage | Callable[[Ledger], None]]] = collections.deque()
        unwanted: list[int] = []  # their subscriber left after the claim: back to pending, then skipped
        try:
            while True:
                if ahead:
                    item, built = ahead.popleft()
                else:
                    if carry:  # nothing follows at once: no reason to hold the outcome back
                        await self.commit(*carry)
                        carry = []
                    next_item = await self._next()
                    if next_item is None:
                        break
                    item, built = next_item, self._message(next_item)
                current, delivering = item, False
                if not isinstance(built, OutgoingMessage):
                    await self.commit(*carry, (built, "failed"))
                    carry, current = [], None
                    continue
                await self.pacer.turn()
                try:
                    await connection.begin(built)
                except TransportConfigError:
                    raise
                except TransportError as exc:  # refused before the point of no return: not delivered
                    await self.commit(*carry, self._outcome(item, exc, counted=False))
                    carry, current = [], None
                    continue
                # The point of no return comes next: the row is in flight, and the previous outcome
                # recorded, before it (one transaction, shared with the other connections).
                wanted = await self.commit(*carry, (item.outbox_id, None))
                carry = []
                if not wanted:  # unsubscribed since the claim: end the transaction undelivered
                    await connection.abandon()
                    current = None
                    unwanted.append(item.outbox_id)
                    continue
                delivering = True
                if self.pacer.pace is None:
                    self._take_ahead(ahead, 1)  # built now only when nothing was built ahead
                    asyncio.get_running_loop().call_soon(self._take_ahead, ahead, 2)  # while the server works
                following = ahead[0][1] if ahead and isinstance(ahead[0][1], OutgoingMessage) else None
                try:
                    result = await connection.finish(following)
                except TransportConfigError:
                    delivering = False  # the settings cannot work: nothing went out
                    raise
                except Exception as exc:  # noqa: BLE001 - a broken transport fails that message, not the run
                    carry = [self._outcome(item, exc, counted=True)]
                else:
                    carry = [((item.outbox_id, built.message_id, result.code), "sent")]
                current = None
        finally:
            records = list(carry)
            if current is not None and delivering:
                records.append((self._retry(current, None, "the run stopped", duplicated=True, counted=True), "retry"))
            self.commit.now(*records)
            unsent = [item.outbox_id for item, _ in ahead] + unwanted
            if current is not None and not delivering:
                unsent.append(current.outbox_id)
            if unsent:
                with self.ledger.db.begin():
                    self.ledger.release(unsent)

    def _take_ahead(self, ahead: collections.deque[tuple[Claim, Any]], count: int) -> None:
        while len(ahead) < count and (ready := self._next_ready()) is not None:
            ahead.append((ready, self._message(ready)))

    def _outcome(self, item: Claim, exc: Exception, *, counted: bool) -> tuple[Record, str | None]:
        if isinstance(exc, TemporaryFailure):
            return self._temporary(item, exc, duplicated=isinstance(exc, ConnectionLost), counted=counted)
        if isinstance(exc, PermanentFailure):
            return self._permanent(item, exc.code, str(exc), counted=counted), "failed"
        return self._permanent(item, None, f"{type(exc).__name__}: {exc}", counted=counted), "failed"

    def _temporary(
        self, item: Claim, exc: TemporaryFailure, *, duplicated: bool, counted: bool
    ) -> tuple[Record, str | None]:
        state = self.state
        tries = state.tries[item.outbox_id] = state.tries.get(item.outbox_id, 0) + 1
        first = state.first_try.setdefault(item.outbox_id, time.monotonic())
        delay = self.policy.delay(tries)
        give_up = tries >= self.policy.max_attempts or time.monotonic() - first + delay > self.policy.max_time
        retry_after = None if give_up else utcnow() + timedelta(seconds=delay)
        record = self._retry(item, exc.code, str(exc), duplicated=duplicated, counted=counted, after=retry_after)
        return record, "deferred" if give_up else "retry"

    def _retry(
        self,
        item: Claim,
        code: int | None,
        error: str,
        *,
        duplicated: bool,
        counted: bool,
        after: Any = None,
    ) -> Callable[[Ledger], None]:
        def record(ledger: Ledger) -> None:
            ledger.retry(
                item.outbox_id,
                code=code,
                error=error,
                retry_after=after,
                possibly_duplicated=duplicated,
                counted=counted,
            )

        return record

    def _permanent(self, item: Claim, code: int | None, error: str, *, counted: bool) -> Callable[[Ledger], None]:
        """Refused for good: the row fails; a hard refusal (the address or its domain no longer takes
        mail) also bounces the subscriber, in the same transaction (recorded together or not at all).
        A blocked refusal (policy, spam, authentication) is about us, and suppresses no one."""
        outcome = classify(code=code, diagnostic=error) if code is not None else None

        def record(ledger: Ledger) -> None:
            ledger.failed(item.outbox_id, code, error, counted=counted)
            if outcome is not None and outcome.severity is Severity.HARD:
                with Session(bind=ledger.db) as session:
                    self._bounce(session, item, code, error, outcome)
                    session.flush()

        return record

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


def heartbeat_on(ledger: Ledger) -> None:
    with Session(bind=ledger.db) as session:
        heartbeat(session, ledger.run_id)
        session.flush()
