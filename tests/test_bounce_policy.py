"""The policy and the evidence, through the Python API, on SQLite and PostgreSQL: soft bounces counted
over a subscriber's latest sends, forged reports changing nothing, retention and erasure."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.delivery.verp import Verp
from newsletter.feedback.ingest import Ingestor
from newsletter.store.engine import Store
from newsletter.store.models import Bounce, Source, Status, utcnow
from newsletter.subscribers import retention, service
from newsletter.subscribers.service import ConsentInfo
from tests.support.bounces import BOUNCE_ADDRESS, Sent, dsn
from tests.support.bounces import record_sends as sends
from tests.support.campaigns import clinic_settings

SECRET = "test-secret-key-0123456789abcdef-long"
verp = Verp(SECRET, BOUNCE_ADDRESS)


@pytest.fixture
def policy_settings(tmp_path: Path) -> Settings:
    return clinic_settings(tmp_path, secret_key=SECRET, bounce_address=BOUNCE_ADDRESS)


def subscriber(store: Store, email: str) -> int:
    with store.session() as session:
        return service.add(session, email, consent=ConsentInfo(Source.MANUAL, "v1"), confirmed=True).subscriber.id


def message(email: str, outbox_id: int | None) -> Sent:
    return_path = verp.sender(outbox_id) if outbox_id is not None else BOUNCE_ADDRESS
    head = f"Return-Path: <{return_path}>\r\nTo: <{email}>\r\nMessage-ID: <n{outbox_id}@other.example>\r\nSubject: Hi\r\n\r\n"
    return Sent(head.encode())


def soft(sent: Sent, *, verp_kept: bool = True) -> bytes:
    return dsn(sent, status="4.2.2", diagnostic="smtp; 452 4.2.2 Mailbox full", verp=verp_kept)


def status_of(store: Store, email: str) -> str:
    with store.session() as session:
        return service.get(session, email).status


def ingest(store: Store, settings: Settings, *messages: bytes, now: datetime | None = None):  # type: ignore[no-untyped-def]
    ingestor = Ingestor(store, settings, now=(lambda: now) if now else utcnow)
    return ingestor.run([(f"m{n}", raw) for n, raw in enumerate(messages)], "file")


def test_three_soft_bounces_within_the_last_five_sends_mark_bounced(store: Store, policy_settings: Settings) -> None:
    subscriber(store, "ana@example.org")
    rows = sends(store, "ana@example.org", 7)
    # Two soft bounces on sends that are no longer among the last five do not count.
    ingest(store, policy_settings, soft(message("ana@example.org", rows[0])), soft(message("ana@example.org", rows[1])))
    assert status_of(store, "ana@example.org") == "confirmed"
    ingest(store, policy_settings, soft(message("ana@example.org", rows[3])), soft(message("ana@example.org", rows[4])))
    assert status_of(store, "ana@example.org") == "confirmed"
    # The same send bouncing twice (a relay's repeated notice) is one soft bounce.
    ingest(store, policy_settings, soft(message("ana@example.org", rows[4])))
    assert status_of(store, "ana@example.org") == "confirmed"
    report = ingest(store, policy_settings, soft(message("ana@example.org", rows[6])))
    assert (report.soft, report.suppressed) == (1, 1)
    with store.session() as session:
        person = service.get(session, "ana@example.org")
        event = person.events[-1]
        assert person.status == Status.BOUNCED
        assert (event.kind, event.detail["soft_bounces"], event.detail["window"]) == ("bounced", 3, 5)
        assert event.detail["status_code"] == "4.2.2"
        last = session.scalars(select(Bounce).order_by(Bounce.id.desc())).first()
        assert last is not None and last.changed == "bounced" and "3 soft bounces" in last.reason


def test_the_soft_bounce_numbers_are_settings(store: Store, tmp_path: Path) -> None:
    settings = clinic_settings(
        tmp_path, secret_key=SECRET, bounce_address=BOUNCE_ADDRESS, soft_bounce_limit=1, soft_bounce_window=1
    )
    subscriber(store, "ben@example.org")
    rows = sends(store, "ben@example.org", 2)
    ingest(store, settings, soft(message("ben@example.org", rows[0])))
    assert status_of(store, "ben@example.org") == "confirmed"  # not the latest send
    ingest(store, settings, soft(message("ben@example.org", rows[1])))
    assert status_of(store, "ben@example.org") == "bounced"


def test_a_soft_bounce_limit_of_0_never_marks_bounced(store: Store, tmp_path: Path) -> None:
    settings = clinic_settings(tmp_path, secret_key=SECRET, bounce_address=BOUNCE_ADDRESS, soft_bounce_limit=0)
    subscriber(store, "cy@example.org")
    for row in sends(store, "cy@example.org", 4):
        ingest(store, settings, soft(message("cy@example.org", row)))
    assert status_of(store, "cy@example.org") == "confirmed"


def test_a_report_about_someone_not_mailed_in_30_days_changes_nothing(store: Store, policy_settings: Settings) -> None:
    subscriber(store, "cy@example.org")
    subscriber(store, "dee@example.org")
    sends(store, "cy@example.org", 1, first=utcnow() - timedelta(days=31))
    forged = [
        dsn(message("cy@example.org", None), verp=False),  # mailed, but 31 days ago
        dsn(message("dee@example.org", None), verp=False),  # never mailed
    ]
    report = ingest(store, policy_settings, *forged)
    assert (report.hard, report.unmatched) == (0, 2)
    assert status_of(store, "cy@example.org") == status_of(store, "dee@example.org") == "confirmed"


def test_a_forged_verp_token_matches_nobody(store: Store, policy_settings: Settings) -> None:
    subscriber(store, "eve@example.org")
    [row] = sends(store, "eve@example.org", 1, first=utcnow() - timedelta(days=40))
    other_key = Verp("someone-elses-key", BOUNCE_ADDRESS).sender(row)
    forged = message("eve@example.org", None)
    forged.return_path = other_key
    report = ingest(store, policy_settings, dsn(forged))
    assert report.unmatched == 1 and status_of(store, "eve@example.org") == "confirmed"
    # while our own token matches even after 30 days
    report = ingest(store, policy_settings, dsn(message("eve@example.org", row)))
    assert report.hard == 1 and status_of(store, "eve@example.org") == "bounced"


def test_raw_messages_are_removed_after_the_retention_period(store: Store, policy_settings: Settings) -> None:
    subscriber(store, "fay@example.org")
    [row] = sends(store, "fay@example.org", 1)
    now = utcnow()
    old, recent = now - timedelta(days=91), now - timedelta(days=89)
    ingest(store, policy_settings, dsn(message("fay@example.org", row)), now=old)
    ingest(store, policy_settings, dsn(message("stranger@example.net", None), verp=False), now=old)
    ingest(store, policy_settings, soft(message("fay@example.org", row)), now=recent)
    assert policy_settings.bounce_retention_days == 90
    with store.session() as session:
        report = retention.apply_policy(session, policy_settings, now)
    assert report.count_of("raw-bounces") == 2
    with store.session() as session:
        kept = session.scalars(select(Bounce).order_by(Bounce.id)).all()
        # the matched old one keeps its classification, the unmatched old one is gone, the recent one is whole
        assert [(b.kind, b.raw is None) for b in kept] == [("hard", True), ("soft", False)]
        assert retention.apply_policy(session, policy_settings, now).count_of("raw-bounces") == 0


def test_erasure_removes_every_record_about_the_person(store: Store, policy_settings: Settings) -> None:
    subscriber(store, "gil@example.org")
    subscriber(store, "hal@example.org")
    [row] = sends(store, "gil@example.org", 1)
    [other] = sends(store, "hal@example.org", 1)
    ingest(
        store,
        policy_settings,
        dsn(message("gil@example.org", row)),  # matched to them
        dsn(message("GIL@example.org", None), verp=False, recipient="GIL@example.org"),  # unmatched, names them
        dsn(message("hal@example.org", other)),  # someone else's
        now=utcnow() + timedelta(days=45),  # past the 30 days, so the second stays unmatched
    )
    with store.session() as session:
        assert len(session.scalars(select(Bounce.id)).all()) == 3
        service.forget(session, "gil@example.org", secret_key=SECRET)
    with store.session() as session:
        left = session.scalars(select(Bounce.recipient)).all()
    assert left == ["hal@example.org"]
