"""The campaign report's own sources: unsubscribes through each campaign's links (the web endpoint, as
a subscriber uses it), and refusals during the SMTP session, judged by the same rule as bounces."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from newsletter.delivery import service as delivery
from newsletter.delivery.prepare import prepare
from newsletter.delivery.transports import PermanentFailure
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.feedback.report import campaign_report
from newsletter.store.engine import Store
from newsletter.store.models import EventKind, Status
from tests.support.campaigns import FAQ_CAMPAIGN, write_campaign
from tests.support.web import add_subscriber, find, link_in, web_settings


def send(store: Store, project: Path, slug: str) -> list:  # type: ignore[type-arg]
    write_campaign(project, slug, FAQ_CAMPAIGN)
    settings = web_settings(project, store.engine.url.render_as_string(hide_password=False))
    MemoryTransport.reset()
    delivery.send(store, prepare(slug, settings), transport=lambda: MemoryTransport())
    return MemoryTransport.outbox()


def test_unsubscribes_are_counted_for_the_campaign_whose_link_was_used(
    app: Flask, client: FlaskClient, store: Store, tmp_path: Path
) -> None:
    for address in ("ana@example.org", "ben@example.org", "cy@example.org"):
        add_subscriber(store, address, Status.CONFIRMED, tags=("faq-updates",))
    first = {m.recipient: m for m in send(store, tmp_path, "first")}
    second = {m.recipient: m for m in send(store, tmp_path, "second")}
    for message in (first["ana@example.org"], second["ben@example.org"], second["ben@example.org"]):
        response = client.post(link_in(message, "unsubscribe"), data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
    left = find(store, "ben@example.org")
    assert left is not None
    assert [e.detail for e in left.events if e.kind == EventKind.UNSUBSCRIBED] == [
        {"via": "one-click", "campaign": "second"}
    ]
    assert campaign_report(store, "first").unsubscribes == 1
    assert campaign_report(store, "second").unsubscribes == 1  # the second click changed nothing


def test_session_refusals_count_as_hard_soft_or_blocked(store: Store, tmp_path: Path) -> None:
    replies = {
        "ana@example.org": PermanentFailure(550, "RCPT TO:<x> refused: 5.1.1 User unknown"),
        "ben@example.org": PermanentFailure(552, "RCPT TO:<x> refused: 5.2.2 Mailbox full"),
        "cy@example.org": PermanentFailure(550, "message refused: 5.7.1 Rejected as spam"),
    }
    for address in (*replies, "dee@example.org"):
        add_subscriber(store, address, Status.CONFIRMED, tags=("faq-updates",))
    MemoryTransport.reset()
    for address, failure in replies.items():
        MemoryTransport.fail_recipient(address, failure)
    write_campaign(tmp_path, "faq", FAQ_CAMPAIGN)
    settings = web_settings(tmp_path, store.engine.url.render_as_string(hide_password=False))
    delivery.send(store, prepare("faq", settings), transport=lambda: MemoryTransport())
    report = campaign_report(store, "faq")
    assert (report.audience, report.sent, report.failed) == (4, 1, 3)
    assert (report.hard_bounces, report.soft_bounces, report.blocked) == (1, 1, 1)
    assert (report.complaints, report.complaint_rate, report.complaint_level) == (0, 0.0, "ok")
    MemoryTransport.reset()
