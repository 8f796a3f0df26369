"""Retention, with a frozen clock, on SQLite and PostgreSQL: what goes, what stays, and when.

Every record a rule looks at gets an explicit time relative to ``NOW``, the moment the policy is
applied at; the machine's own clock plays no part in what is removed.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.delivery import schedule
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store.engine import Store
from newsletter.store.models import (
    Bounce,
    Consent,
    OutboxRow,
    OutboxState,
    SignupRequest,
    Source,
    StartedCampaign,
    Status,
    Subscriber,
)
from newsletter.subscribers import service
from newsletter.subscribers.addresses import normalise_address
from newsletter.subscribers.consent import ConsentInfo
from newsletter.subscribers.retention import apply_policy
from tests.conftest import Newsletter
from tests.support.campaigns import clinic_settings

KEY = "retention-test-secret-key-0123456789"
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
IP_HASH = "a" * 64


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def form_request(store: Store, email: str, *, days_ago: float, created_days_ago: float | None = None) -> str:
    """A request from the form, made ``days_ago``; a new subscriber is dated ``created_days_ago``."""
    with store.session() as session:
        outcome = service.request_signup(
            session,
            normalise_address(email),
            name="",
            topics=("faq-updates",),
            consent=ConsentInfo(Source.FORM, "v1", origin="https://harvest.example/", ip_hash=IP_HASH),
            secret_key=KEY,
        )
        request = service.find_request(session, outcome.request_token)
        assert request is not None
        request.created_at = request.consent.given_at = ago(days_ago)
        subscriber = request.subscriber
        if created_days_ago is not None:
            subscriber.created_at = subscriber.updated_at = ago(created_days_ago)
        return outcome.request_token


def confirm(store: Store, token: str, *, days_ago: float) -> None:
    with store.session() as session:
        request = service.find_request(session, token)
        assert request is not None
        assert service.confirm_request(session, request, topic_choices=["faq-updates"])
        request.confirmed_at = request.consent.confirmed_at = request.subscriber.confirmed_at = ago(days_ago)


def leave(store: Store, email: str, status: Status, *, days_ago: float) -> None:
    with store.session() as session:
        subscriber = service.get(session, email)
        service.unsubscribe(session, subscriber, actor="test", status=status)
        subscriber.updated_at = ago(days_ago)
        if status is Status.UNSUBSCRIBED:
            subscriber.unsubscribed_at = ago(days_ago)


@dataclasses.dataclass
class World:
    outbox_old: int
    outbox_recent: int


def build(store: Store) -> World:
    # Signups never confirmed.
    form_request(store, "stale@example.org", days_ago=40, created_days_ago=40)
    form_request(store, "asked-again@example.org", days_ago=40, created_days_ago=40)
    form_request(store, "asked-again@example.org", days_ago=10)
    form_request(store, "recent@example.org", days_ago=10, created_days_ago=10)
    for email, status in (
        ("refused@example.org", Status.UNSUBSCRIBED),
        ("complained@example.org", Status.COMPLAINED),
        ("bounced@example.org", Status.BOUNCED),
    ):
        form_request(store, email, days_ago=40, created_days_ago=40)
        leave(store, email, status, days_ago=39)
    # Subscribers, and people who left long ago or lately.
    confirm(store, form_request(store, "member@example.org", days_ago=400, created_days_ago=400), days_ago=399)
    confirm(store, form_request(store, "member2@example.org", days_ago=100, created_days_ago=100), days_ago=99)
    for email, left in (("left-long-ago@example.org", 4 * 365), ("left-lately@example.org", 365)):
        confirm(store, form_request(store, email, days_ago=5 * 365, created_days_ago=5 * 365), days_ago=5 * 365)
        leave(store, email, Status.UNSUBSCRIBED, days_ago=left)
    confirm(
        store,
        form_request(store, "came-back@example.org", days_ago=6 * 365, created_days_ago=6 * 365),
        days_ago=6 * 365,
    )
    leave(store, "came-back@example.org", Status.UNSUBSCRIBED, days_ago=4 * 365)
    form_request(store, "came-back@example.org", days_ago=10)  # asks to come back, not confirmed yet
    # Outbox rows with a server's error text, old and recent.
    with store.session() as session:
        campaign = StartedCampaign(slug="autumn", subject="Autumn", web_html="", created_at=ago(200))
        session.add(campaign)
        session.flush()
        member = service.get(session, "member@example.org")
        member2 = service.get(session, "member2@example.org")
        old = OutboxRow(
            campaign_id=campaign.id, subscriber_id=member.id, state=OutboxState.FAILED.value, attempts=1,
            claimed_at=ago(100), last_code=550, last_error="550 5.1.1 <member@example.org>: no such user",
        )  # fmt: skip
        recent = OutboxRow(
            campaign_id=campaign.id, subscriber_id=member2.id, state=OutboxState.PENDING.value, attempts=1,
            claimed_at=ago(10), last_code=451, last_error="451 4.7.1 try again later",
        )  # fmt: skip
        session.add_all([old, recent])
        # What came back: an old bounce about member (its classification stays), an old report about no
        # one on the list (it goes), and a recent one (untouched).
        session.add_all(
            [
                Bounce(key="old-matched", source="file", kind="hard", subscriber_id=member.id, campaign_id=campaign.id,
                       raw=b"old evidence", received_at=ago(100)),
                Bounce(key="old-unmatched", source="file", kind="hard", recipient="stranger@example.net",
                       raw=b"a stranger", received_at=ago(100)),
                Bounce(key="recent", source="file", kind="soft", subscriber_id=member2.id, raw=b"recent",
                       received_at=ago(10)),
            ]
        )  # fmt: skip
        session.flush()
        return World(old.id, recent.id)


def counts(report_dict: dict[str, object]) -> dict[str, int]:
    return {rule["rule"]: rule["count"] for rule in report_dict["rules"]}  # type: ignore[attr-defined, index]


def settings_for(tmp_path: Path, **extra: object) -> Settings:
    return clinic_settings(tmp_path, secret_key=KEY, **extra)


EXPECTED = {
    # stale, refused, complained, bounced
    "pending-signups": 4,
    # asked-again's first (40 days, with its unconfirmed consent), member's (400 days), member2's (100
    # days) and the three of five and six years ago; stale's went with stale; those of 10 days ago stay
    "signup-requests": 6,
    # the two old raw messages: the matched one keeps its record, the unmatched one goes
    "raw-bounces": 2,
    "outbox-errors": 1,
    # member's (400 days), left-long-ago's and left-lately's (five years), came-back's first (six years)
    "consent-ip-hashes": 4,
    # left-long-ago's and came-back's first consent: given before the cutoff by people who left before it
    "consents-after-leaving": 2,
}


def test_the_policy_with_a_frozen_clock(store: Store, tmp_path: Path) -> None:
    world = build(store)
    settings = settings_for(tmp_path)

    with store.session(commit=False) as session:
        dry = apply_policy(session, settings, NOW, dry_run=True).as_dict()
    assert dry["dry_run"] is True and counts(dry) == EXPECTED
    with store.session() as session:  # the dry run changed nothing
        assert session.scalar(select(Subscriber).where(Subscriber.email_key == "stale@example.org")) is not None

    with store.session() as session:
        report = apply_policy(session, settings, NOW).as_dict()
    assert counts(report) == EXPECTED and report["total"] == sum(EXPECTED.values())
    assert report["now"] == NOW.isoformat()
    cutoffs = {rule["rule"]: rule["cutoff"] for rule in report["rules"]}
    assert cutoffs["pending-signups"] == ago(30).isoformat() and cutoffs["consent-ip-hashes"] == ago(365).isoformat()

    with store.session() as session:
        emails = set(session.scalars(select(Subscriber.email_key)))
        assert emails == {
            "asked-again@example.org", "recent@example.org", "member@example.org", "member2@example.org",
            "left-long-ago@example.org", "left-lately@example.org", "came-back@example.org",
        }  # fmt: skip
        # Those who asked not to be mailed stay suppressed, as a keyed hash; the others leave nothing.
        assert service.is_erased(session, normalise_address("refused@example.org"), KEY)
        assert service.is_erased(session, normalise_address("complained@example.org"), KEY)
        assert not service.is_erased(session, normalise_address("bounced@example.org"), KEY)
        assert not service.is_erased(session, normalise_address("stale@example.org"), KEY)

        def consents(email: str) -> list[Consent]:
            return list(service.get(session, email).consents)

        member = consents("member@example.org")
        assert len(member) == 1 and member[0].confirmed_at is not None and member[0].ip_hash is None
        assert [c.ip_hash for c in consents("member2@example.org")] == [IP_HASH]
        assert consents("left-long-ago@example.org") == []  # kept as proof long enough
        assert service.get(session, "left-long-ago@example.org").status == Status.UNSUBSCRIBED  # still suppressed
        assert len(consents("left-lately@example.org")) == 1
        came_back = consents("came-back@example.org")
        assert len(came_back) == 1 and came_back[0].confirmed_at is None and came_back[0].ip_hash == IP_HASH
        asked_again = consents("asked-again@example.org")
        assert len(asked_again) == 1 and asked_again[0].given_at == ago(10)  # the request of 40 days went
        requests = session.scalars(select(SignupRequest.created_at)).all()
        assert sorted(requests) == [ago(10)] * 3
        assert session.get(OutboxRow, world.outbox_old).last_error is None  # type: ignore[union-attr]
        assert session.get(OutboxRow, world.outbox_old).last_code == 550  # type: ignore[union-attr]
        assert session.get(OutboxRow, world.outbox_recent).last_error == "451 4.7.1 try again later"  # type: ignore[union-attr]
        bounces = {b.key: b.raw for b in session.scalars(select(Bounce))}
        assert bounces == {"old-matched": None, "recent": b"recent"}

    with store.session() as session:  # nothing left to do: applying it again removes nothing
        assert apply_policy(session, settings, NOW).total == 0


def test_a_rule_set_to_zero_keeps_its_data(store: Store, tmp_path: Path) -> None:
    build(store)
    settings = settings_for(tmp_path, pending_retention_days=0, ip_hash_retention_days=0)
    with store.session() as session:
        report = counts(apply_policy(session, settings, NOW).as_dict())
    assert report["pending-signups"] == report["signup-requests"] == report["consent-ip-hashes"] == 0
    assert report["outbox-errors"] == 1
    with store.session() as session:
        assert service.find(session, "stale@example.org") is not None


def test_keeping_a_hash_needs_the_secret_key(store: Store, tmp_path: Path) -> None:
    form_request(store, "refused@example.org", days_ago=40, created_days_ago=40)
    leave(store, "refused@example.org", Status.UNSUBSCRIBED, days_ago=39)
    from newsletter.errors import ConfigError

    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY"), store.session() as session:
        apply_policy(session, clinic_settings(tmp_path), NOW)
    with store.session() as session:
        assert service.find(session, "refused@example.org") is not None


def test_send_due_applies_the_policy_on_every_run(store: Store, tmp_path: Path) -> None:
    build(store)
    MemoryTransport.reset()
    settings = settings_for(tmp_path)
    report = schedule.send_due(store, settings, NOW, lambda: MemoryTransport())
    assert report.retention is not None and report.retention.total == sum(EXPECTED.values())
    assert report.as_dict()["retention"]["rules"][0]["count"] == EXPECTED["pending-signups"]
    assert report.exit_code == 0
    again = schedule.send_due(store, settings, NOW, lambda: MemoryTransport())
    assert again.retention is not None and again.retention.total == 0


def test_a_retention_error_does_not_stop_send_due_but_fails_it(store: Store, tmp_path: Path) -> None:
    form_request(store, "refused@example.org", days_ago=40, created_days_ago=40)
    leave(store, "refused@example.org", Status.UNSUBSCRIBED, days_ago=39)
    report = schedule.send_due(store, clinic_settings(tmp_path), NOW, lambda: MemoryTransport())
    assert report.retention_error and "NEWSLETTER_SECRET_KEY" in report.retention_error
    assert report.exit_code == 1 and report.as_dict()["retention"] == {"error": report.retention_error}


def test_the_retention_command(newsletter: Newsletter, database_url: str) -> None:
    from newsletter.store.engine import open_store

    store = open_store(database_url)
    try:
        with store.session() as session:
            service.add(session, "old@example.org", consent=ConsentInfo(Source.FORM, "v1", ip_hash=IP_HASH))
            for consent in session.scalars(select(Consent)):
                consent.given_at = datetime.now(UTC) - timedelta(days=400)
    finally:
        store.dispose()
    dry = newsletter("retention", "--dry-run", "--json", env={"NEWSLETTER_SECRET_KEY": KEY})
    assert dry.exit_code == 0, dry.output
    data = json.loads(dry.output)
    assert data["dry_run"] is True and counts(data)["consent-ip-hashes"] == 1
    assert [r["setting"] for r in data["rules"]] == [
        "pending_retention_days", "pending_retention_days", "bounce_retention_days", "outbox_error_retention_days",
        "ip_hash_retention_days", "consent_retention_days",
    ]  # fmt: skip
    real = newsletter("retention", env={"NEWSLETTER_SECRET_KEY": KEY})
    assert real.exit_code == 0 and "consent-ip-hashes" in real.output and "removed" in real.output
    again = json.loads(newsletter("retention", "--json", env={"NEWSLETTER_SECRET_KEY": KEY}).output)
    assert again["total"] == 0
