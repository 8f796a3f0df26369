"""`newsletter doctor`'s list checks: the unsubscribe headers of messages actually built, the From
domain, and complaint and bounce rates from the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from newsletter.config import Settings
from newsletter.doctor import list_health
from newsletter.doctor.content import build_messages, from_domain_check, unsubscribe_check
from newsletter.doctor.domains import is_free_mail, organisational_domain
from newsletter.doctor.report import Check, Status, ok
from newsletter.store.engine import Store
from newsletter.store.models import Bounce, Event, OutboxRow, OutboxState, Source, StartedCampaign
from newsletter.store.models import Status as SubscriberStatus
from newsletter.subscribers import service
from newsletter.subscribers.service import ConsentInfo
from tests.support.campaigns import FAQ_CAMPAIGN, STORY_CAMPAIGN, clinic_settings, write_campaign
from tests.support.dkim_keys import rsa_key

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_every_campaign_message_carries_one_click_unsubscribe(settings: Settings, project: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    write_campaign(project, "story", STORY_CAMPAIGN)
    built = build_messages(settings)
    assert set(built.messages) == {"faq", "story"} and built.largest > 10_000
    check = unsubscribe_check(built, settings)
    assert check.status is Status.OK and "faq, story" in check.message


def test_an_http_unsubscribe_link_fails(settings: Settings, project: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    local = dataclasses.replace(settings, public_base_url="http://127.0.0.1:8000")
    check = unsubscribe_check(build_messages(local), local)
    assert check.status is Status.FAIL and "no https:// link" in check.message and "public_base_url" in check.fix


def test_the_dkim_signature_covers_the_unsubscribe_headers(settings: Settings, project: Path, tmp_path: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    key, _ = rsa_key(tmp_path, 1024)
    signed = dataclasses.replace(settings, dkim_key_path=str(key), dkim_selector="s1")
    built = build_messages(signed)
    assert built.messages["faq"].startswith(b"DKIM-Signature:")
    assert unsubscribe_check(built, signed).status is Status.OK


def test_a_message_without_the_headers_is_reported(settings: Settings, project: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    built = build_messages(settings)
    built.messages["faq"] = built.messages["faq"].replace(b"List-Unsubscribe-Post:", b"X-Dropped:")
    check = unsubscribe_check(built, settings)
    assert check.status is Status.FAIL and "no List-Unsubscribe-Post" in check.message


def test_campaigns_that_do_not_build_and_an_empty_folder(settings: Settings, project: Path) -> None:
    assert unsubscribe_check(build_messages(settings), settings).status is Status.OK  # nothing to check yet
    write_campaign(project, "broken", "---\nsubject: x\n---\n::: nosuchblock\nx\n:::\n")
    check = unsubscribe_check(build_messages(settings), settings)
    assert check.status is Status.WARN and "broken" in check.message and "campaign lint" in check.fix


@pytest.mark.parametrize(
    ("address", "status"),
    [
        ("news@harvest.example", "ok"),
        ("harvest.clinic@gmail.com", "fail"),
        ("clinic@yahoo.co.uk", "fail"),
        ("clinic@mail.outlook.com", "fail"),
        ("news@live.example", "ok"),  # a brand name under another suffix is not the provider
    ],
)
def test_from_must_not_be_a_free_mail_domain(project: Path, address: str, status: str) -> None:
    settings = dataclasses.replace(clinic_settings(project), from_address=address)
    assert from_domain_check(settings).status.value == status


def test_organisational_domains_come_from_the_bundled_suffix_list() -> None:
    assert organisational_domain("news.harvest.example") == "harvest.example"
    assert organisational_domain("mail.clinic.co.uk") == "clinic.co.uk"
    assert organisational_domain("clinic.github.io") == "clinic.github.io"  # a private suffix
    assert is_free_mail("googlemail.com") and not is_free_mail("harvest.example")


# --- rates -----------------------------------------------------------------------------------------


def send_log(store: Store, *, sent: int, old: int = 0) -> None:
    """``sent`` messages sent in the last days, ``old`` more two months ago (outbox rows)."""
    with store.session() as session:
        campaign = StartedCampaign(slug="c1", subject="s")
        session.add(campaign)
        session.flush()
        rows = [
            {"campaign_id": campaign.id, "state": OutboxState.SENT.value, "sent_at": NOW - timedelta(days=2)}
        ] * sent
        rows += [
            {"campaign_id": campaign.id, "state": OutboxState.SENT.value, "sent_at": NOW - timedelta(days=60)}
        ] * old
        rows += [{"campaign_id": campaign.id, "state": OutboxState.PENDING.value}] * 50  # not sent: not counted
        session.execute(insert(OutboxRow), rows)


def report(store: Store, status: SubscriberStatus, count: int, *, days_ago: int = 1) -> None:
    """``count`` subscribers reported as complained or bounced, through the subscriber service."""
    with store.session() as session:
        for n in range(count):
            added = service.add(
                session,
                f"{status.value}{days_ago}-{n}@example.org",
                consent=ConsentInfo(Source.MANUAL, "v1"),
                confirmed=True,
            )
            service.unsubscribe(session, added.subscriber, actor="feedback", status=status)
            session.flush()
            session.execute(
                update(Event)
                .where(Event.subscriber_id == added.subscriber.id, Event.kind == status.value)
                .values(at=NOW - timedelta(days=days_ago))
            )


def rates(store: Store) -> dict[str, Check]:
    return {c.id: c for c in list_health.list_health_checks(lambda: store, NOW)}


def test_no_messages_sent_yet(store: Store) -> None:
    checks = rates(store)
    assert {i: c.status for i, c in checks.items()} == {
        "list.complaint_rate": Status.OK,
        "list.bounce_rate": Status.OK,
        "list.blocked": Status.OK,
    }
    assert "No messages sent" in checks["list.complaint_rate"].message


@pytest.mark.parametrize(("complaints", "status"), [(0, "ok"), (1, "warn"), (3, "fail")])
def test_complaint_rate_against_point_one_and_point_three_percent(store: Store, complaints: int, status: str) -> None:
    send_log(store, sent=1000, old=5000)
    report(store, SubscriberStatus.COMPLAINED, complaints)
    report(store, SubscriberStatus.COMPLAINED, 5, days_ago=45)  # outside the 30 days
    check = rates(store)["list.complaint_rate"]
    assert check.status.value == status, check.message
    assert f"{complaints} complaints for 1000 messages" in check.message
    assert (check.fix != "") == (status != "ok")


@pytest.mark.parametrize(("bounces", "status"), [(10, "ok"), (20, "warn"), (50, "fail")])
def test_bounce_rate(store: Store, bounces: int, status: str) -> None:
    send_log(store, sent=1000)
    report(store, SubscriberStatus.BOUNCED, bounces)
    check = rates(store)["list.bounce_rate"]
    assert check.status.value == status and f"{bounces} bounced subscribers" in check.message


def test_more_list_checks_join_through_the_hook(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def extra(session: object, since: datetime) -> list[Check]:
        return [ok("list.extra", f"looked since {since:%Y-%m-%d}")]

    monkeypatch.setattr(list_health, "LIST_CHECKS", [*list_health.LIST_CHECKS, extra])
    assert rates(store)["list.extra"].message == "looked since 2026-11-01"


def test_blocked_refusals_during_sending_and_in_bounces_are_surfaced(store: Store) -> None:
    send_log(store, sent=10)
    with store.session() as session:
        campaign_id = session.scalars(select(StartedCampaign.id)).one()
        session.execute(
            insert(OutboxRow),
            [
                {"campaign_id": campaign_id, "state": OutboxState.FAILED.value, "last_code": 550,
                 "last_error": "550 5.7.1 Message rejected as spam", "claimed_at": NOW - timedelta(days=3)},
                {"campaign_id": campaign_id, "state": OutboxState.FAILED.value, "last_code": 550,
                 "last_error": "550 5.1.1 No such user", "claimed_at": NOW - timedelta(days=3)},  # an address: not blocked
                {"campaign_id": campaign_id, "state": OutboxState.FAILED.value, "last_code": 554,
                 "last_error": "554 5.7.1 policy", "claimed_at": NOW - timedelta(days=40)},  # too old
            ],
        )  # fmt: skip
        session.add(Bounce(key="k1", source="file", kind="blocked", status_code="5.7.26",
                           diagnostic="DMARC policy of the sender domain", received_at=NOW - timedelta(days=1)))  # fmt: skip
    check = rates(store)["list.blocked"]
    assert check.status is Status.WARN and check.message.startswith("2 message(s) refused")
    assert "5.7.26 DMARC policy" in check.message and "bounces list --kind blocked" in check.fix


def test_an_unreachable_store_is_a_failed_check(project: Path) -> None:
    from newsletter.store.engine import open_store

    checks = list_health.list_health_checks(lambda: open_store(f"sqlite:///{project}/missing/dir/x.db"), NOW)
    assert [c.id for c in checks] == ["list.complaint_rate"]
    assert checks[0].status is Status.FAIL and "cannot read the store" in checks[0].message
