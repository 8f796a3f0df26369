"""The send ledger and the delivery engine, on SQLite and PostgreSQL, with the shipped memory transport.

Faults that a real SMTP server produces are tested against one in test_send_smtp.py; here the memory
transport injects the faults a real part cannot produce on demand (a bug, a drop at a precise moment).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from newsletter.delivery import ledger
from newsletter.delivery.engine import DeliveryRun, RetryPolicy
from newsletter.delivery.ledger import Claim
from newsletter.delivery.pace import SharedPace
from newsletter.delivery.transports import (
    ConnectionLost,
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
)
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store.engine import Store
from newsletter.store.models import OutboxRow, SendRun, Source, Status, utcnow
from newsletter.subscribers import service
from newsletter.subscribers.service import ConsentInfo

FAST = RetryPolicy(max_attempts=3, base=0.01, max_time=5)


@pytest.fixture(autouse=True)
def clean_mailboxes() -> None:
    MemoryTransport.reset()


def populate(store: Store, count: int, *, tag: str | None = None) -> list[str]:
    emails = [f"reader{n:03}@example.org" for n in range(count)]
    with store.session() as session:
        for email in emails:
            service.add(
                session, email, consent=ConsentInfo(Source.MANUAL, "v1"), confirmed=True, tags=[tag] if tag else []
            )
    return emails


def build(item: Claim) -> OutgoingMessage:
    data = f"To: {item.email}\r\nSubject: hello\r\n\r\nHello {item.name}\r\n".encode()
    return OutgoingMessage("news@harvest.example", item.email, data, f"<o{item.outbox_id}@harvest.example>")


def start(store: Store, tags: list[str] | None = None, slug: str = "stories"):  # type: ignore[no-untyped-def]
    with store.session() as session:
        record = ledger.record_campaign(session, slug, "Stories", "<p>web</p>")
        ledger.materialise(session, record, tags or [])
    return record


def deliver(store: Store, record, **kwargs) -> ledger.Counts:  # type: ignore[no-untyped-def]
    kwargs.setdefault("policy", FAST)
    return DeliveryRun(store, record, build, lambda: MemoryTransport(), **kwargs).run()


def recipients() -> Counter[str]:
    return Counter(m.recipient for m in MemoryTransport.outbox())


def test_every_audience_member_gets_exactly_one_message(store: Store) -> None:
    emails = populate(store, 25)
    record = start(store)
    counts = deliver(store, record, connections=3)
    assert (counts.audience, counts.sent, counts.pending, counts.failed) == (25, 25, 0, 0)
    assert recipients() == Counter(emails)
    for message in MemoryTransport.outbox():
        assert message.data.count(b"\r\nTo: ") + message.data.startswith(b"To: ") == 1
    with store.session() as session:
        assert ledger.find_campaign(session, "stories").completed_at is not None  # type: ignore[union-attr]
    # a rerun, or materialising again, sends nothing
    with store.session() as session:
        assert ledger.materialise(session, record, []) == 0
    assert deliver(store, record).sent == 25
    assert len(MemoryTransport.outbox()) == 25


def test_audience_is_confirmed_unpaused_and_tagged(store: Store) -> None:
    populate(store, 3, tag="client-stories")
    with store.session() as session:
        service.add(session, "pending@example.org", consent=ConsentInfo(Source.MANUAL, "v1"), tags=["client-stories"])
        other = service.add(session, "other@example.org", consent=ConsentInfo(Source.MANUAL, "v1"), confirmed=True)
        paused = service.get(session, "reader000@example.org")
        paused.paused = True
        assert other.subscriber.status == Status.CONFIRMED
    counts = deliver(store, start(store, ["client-stories"]))
    assert counts.audience == 2
    assert set(recipients()) == {"reader001@example.org", "reader002@example.org"}


def test_a_temporary_failure_is_retried_then_sent(store: Store) -> None:
    populate(store, 2)
    MemoryTransport.fail_next(TemporaryFailure(451, "try again later"))
    counts = deliver(store, start(store))
    assert (counts.sent, counts.pending, counts.possibly_duplicated) == (2, 0, 0)
    with store.session() as session:
        attempts = sorted(session.scalars(select(OutboxRow.attempts)))
    assert attempts == [1, 2]


def test_persistent_temporary_failures_stay_pending_for_a_later_run(store: Store) -> None:
    populate(store, 2)
    MemoryTransport.fail_recipient("reader001@example.org", TemporaryFailure(452, "mailbox full"))
    record = start(store)
    counts = deliver(store, record)
    assert (counts.sent, counts.pending) == (1, 1)
    with store.session() as session:
        row = session.scalars(select(OutboxRow).where(OutboxRow.state == "pending")).one()
        assert (row.attempts, row.last_code) == (FAST.max_attempts, 452)
        assert ledger.find_campaign(session, "stories").completed_at is None  # type: ignore[union-attr]
    MemoryTransport.fail_recipient("reader001@example.org", None)
    assert deliver(store, record).pending == 0
    assert recipients() == Counter({"reader000@example.org": 1, "reader001@example.org": 1})


def test_address_failures_fail_the_row_and_bounce_the_subscriber(store: Store) -> None:
    populate(store, 3)
    MemoryTransport.fail_recipient("reader001@example.org", PermanentFailure(550, "no such user"))
    MemoryTransport.fail_recipient("reader002@example.org", PermanentFailure(554, "policy"))
    counts = deliver(store, start(store))
    assert (counts.sent, counts.failed, counts.pending) == (1, 2, 0)
    with store.session() as session:
        assert service.get(session, "reader001@example.org").status == Status.BOUNCED
        assert service.get(session, "reader001@example.org").events[-1].detail["code"] == 550
        assert service.get(session, "reader002@example.org").status == Status.CONFIRMED


def test_only_hard_refusals_bounce_the_subscriber_a_policy_block_or_full_mailbox_does_not(store: Store) -> None:
    emails = populate(store, 5)
    replies = {
        emails[0]: PermanentFailure(550, "RCPT TO:<x> refused: 5.7.1 Message rejected as spam"),
        emails[1]: PermanentFailure(552, "RCPT TO:<x> refused: 5.2.2 Mailbox full"),
        emails[2]: PermanentFailure(550, "RCPT TO:<x> refused: 5.1.1 User unknown"),
        emails[3]: PermanentFailure(550, "message refused: 4.4.7 Message expired in queue"),
    }
    for email, failure in replies.items():
        MemoryTransport.fail_recipient(email, failure)
    counts = deliver(store, start(store))
    assert (counts.sent, counts.failed) == (1, 4)
    with store.session() as session:
        statuses = {email: service.get(session, email).status for email in emails}
        event = service.get(session, emails[2]).events[-1]
    assert statuses == {e: Status.BOUNCED if e == emails[2] else Status.CONFIRMED for e in emails}
    assert event.detail["status_code"] == "5.1.1" and event.detail["via"] == "smtp"
    assert "does not exist" in event.detail["reason"] and event.detail["campaign"] == "stories"


def test_an_unknown_exception_fails_that_message_not_the_run(store: Store) -> None:
    populate(store, 3)
    MemoryTransport.fail_recipient("reader000@example.org", RuntimeError("plugin bug"))
    counts = deliver(store, start(store))
    assert (counts.sent, counts.failed) == (2, 1)
    with store.session() as session:
        error = session.scalar(select(OutboxRow.last_error).where(OutboxRow.state == "failed"))
    assert error == "RuntimeError: plugin bug"


def test_a_dropped_connection_is_retried_and_reported_as_possibly_duplicated(store: Store) -> None:
    populate(store, 2)
    MemoryTransport.fail_next(ConnectionLost(None, "connection lost after DATA"), delivered=True)
    counts = deliver(store, start(store))
    assert (counts.sent, counts.possibly_duplicated) == (2, 1)
    assert sorted(recipients().values()) == [1, 2]  # the duplicate really went out twice


def test_an_unsubscribe_committed_mid_run_is_honoured(store: Store) -> None:
    emails = populate(store, 30)
    record = start(store)
    sent: list[str] = []

    def build_and_unsubscribe_the_last(item: Claim) -> OutgoingMessage:
        if not sent:
            with store.session() as session:
                service.unsubscribe(session, service.get(session, emails[-1]), actor="web")
        sent.append(item.email)
        return build(item)

    counts = DeliveryRun(store, record, build_and_unsubscribe_the_last, lambda: MemoryTransport(), policy=FAST).run()
    assert emails[-1] not in recipients()
    assert (counts.sent, counts.skipped, counts.pending) == (29, 1, 0)


def test_limit_stops_early_and_leaves_the_rest_pending(store: Store) -> None:
    populate(store, 10)
    record = start(store)
    counts = deliver(store, record, limit=4, connections=2)
    assert (counts.sent, counts.pending) == (4, 6)
    assert deliver(store, record).pending == 0
    assert sum(recipients().values()) == 10


def test_rows_left_in_flight_by_a_dead_run_go_out_once_more_flagged(store: Store) -> None:
    populate(store, 5)
    record = start(store)
    with store.session() as session:
        run_id = ledger.start_run(session, record)
        dead_pid = 2**22 + 12345  # above pid_max on Linux: no such process
        session.execute(update(SendRun).where(SendRun.id == run_id).values(pid=dead_pid))
        dead = ledger.Ledger(session.connection(), record.id, run_id)
        claimed = dead.claim(3)
        dead.begin_many([claimed[0].outbox_id])
        dead.sent_many([(claimed[0].outbox_id, "<x@harvest.example>", 250)])
        dead.begin_many([claimed[1].outbox_id])  # handed to the transport, then the crash
    counts = deliver(store, record)
    assert (counts.sent, counts.pending, counts.possibly_duplicated) == (5, 0, 1)
    assert claimed[0].email not in recipients()  # recorded as sent: never again
    assert recipients()[claimed[1].email] == 1  # in flight at the "crash": once more, flagged
    assert recipients()[claimed[2].email] == 1  # claimed but never attempted: sent, not flagged


def test_a_live_runs_claims_are_left_alone(store: Store) -> None:
    populate(store, 3)
    record = start(store)
    with store.session() as session:
        live = ledger.start_run(session, record)  # this very process: alive, fresh heartbeat
        held = ledger.Ledger(session.connection(), record.id, live).claim(1)
    counts = deliver(store, record)
    assert counts.pending == 1 and held[0].email not in recipients()
    with store.session() as session:
        session.execute(update(SendRun).where(SendRun.id == live).values(heartbeat_at=utcnow() - timedelta(hours=1)))
    assert deliver(store, record).pending == 0


def test_two_runs_at_once_send_each_row_at_most_once(store: Store) -> None:
    populate(store, 60)
    record = start(store)
    results: list[ledger.Counts] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(deliver(store, record, connections=2))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(recipients().values()) == 60 and max(recipients().values()) == 1
    assert len(results) == 2


def test_an_unreachable_server_leaves_everything_pending(store: Store) -> None:
    populate(store, 2)

    class Unreachable(MemoryTransport):
        def _open(self) -> None:
            raise TemporaryFailure(None, "cannot connect to smtp://mail.harvest.example:587")

    delivery = DeliveryRun(store, start(store), build, lambda: Unreachable(), policy=FAST)
    counts = delivery.run()
    assert (counts.sent, counts.pending) == (0, 2)
    assert delivery.state.warnings == ["cannot connect to smtp://mail.harvest.example:587"]


def test_process_liveness_check_sees_this_process() -> None:
    assert ledger._process_alive(os.getpid())


def test_error_texts_are_stored_without_addresses(store: Store) -> None:
    populate(store, 2)
    MemoryTransport.fail_recipient(
        "reader000@example.org",
        PermanentFailure(550, "RCPT TO:<reader000@example.org> refused: 5.1.1 <reader000@example.org>: unknown"),
    )
    MemoryTransport.fail_recipient(
        "reader001@example.org", TemporaryFailure(451, "4.7.1 reader001@example.org is greylisted")
    )
    record = start(store)
    deliver(store, record, policy=RetryPolicy(max_attempts=1, base=0.01, max_time=5))
    with store.session() as session:
        errors = sorted(session.scalars(select(OutboxRow.last_error).where(OutboxRow.last_error.is_not(None))))
        why = ledger.reasons(session, record)
    assert errors == [
        "451 4.7.1 redacted is greylisted",
        "550 RCPT TO:<redacted> refused: 5.1.1 <redacted>: unknown",
    ]
    assert [r.line() for r in why] == [
        "451 4.7.1 redacted is greylisted \u00d71",
        "550 5.1.1 <redacted>: unknown \u00d71",
    ]


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("550 5.1.1 <ana@example.org>: Recipient address rejected", "550 5.1.1 <redacted>: Recipient address rejected"),
        ("452 4.2.2 mailbox of ana.b+news@example.org is full", "452 4.2.2 mailbox of redacted is full"),
        ("421 4.7.0 try again later", "421 4.7.0 try again later"),
        ("550 mailbox unavailable (ana@xn--bcher-kva.example)", "550 mailbox unavailable (redacted)"),
    ],
)
def test_redact(text: str, redacted: str) -> None:
    assert ledger.redact(text) == redacted


def test_two_workers_reserve_disjoint_slots_of_one_pace(store: Store) -> None:
    record = start(store)
    with store.engine.connect() as one, store.engine.connect() as two:
        first, second = SharedPace(one, record.id, 10.0), SharedPace(two, record.id, 10.0)
        slots = sorted(first.reserve(3) + second.reserve(2) + first.reserve(1))
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert len(slots) == 6 and all(gap == pytest.approx(0.1, abs=0.02) for gap in gaps)


def test_a_run_started_inside_a_running_event_loop_still_works(store: Store) -> None:
    """As from a notebook, or a test driven by Playwright's sync API: the run's loop gets its own thread."""
    emails = populate(store, 3)
    record = start(store)

    async def from_a_coroutine() -> ledger.Counts:
        return deliver(store, record, connections=2)

    counts = asyncio.run(from_a_coroutine())
    assert counts.sent == 3 and recipients() == Counter(emails)
