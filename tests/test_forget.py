"""Erasure reaches past the subscribers table: the outbox's error texts and the file: transport's copies."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select, update

from newsletter.delivery import erasure, service
from newsletter.delivery.prepare import prepare
from newsletter.delivery.transports import transport_factory
from newsletter.store.engine import Store, open_store
from newsletter.store.models import OutboxRow, Source
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.consent import ConsentInfo
from tests.conftest import Newsletter
from tests.support.campaigns import FAQ_CAMPAIGN, SECRET_ENV, clinic_settings, write_campaign

KEY = SECRET_ENV["NEWSLETTER_SECRET_KEY"]


def send_to(store: Store, project: Path, *emails: str) -> Path:
    """Send a campaign to ``emails`` through the file: transport; returns its folder."""
    with store.session() as session:
        for address in emails:
            subscribers.add(
                session, address, consent=ConsentInfo(Source.MANUAL, "v1"), tags=["faq-updates"], confirmed=True
            )
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    settings = clinic_settings(project, secret_key=KEY, transport="file:outbox/")
    service.send(store, prepare("faq", settings), transport=transport_factory(settings))
    return project / "outbox"


def test_forget_removes_their_error_texts_and_their_copies_and_nothing_of_anyone_else(
    store: Store, project: Path
) -> None:
    folder = send_to(store, project, "ana@example.org", "bo@example.org")
    assert len(list(folder.glob("*.eml"))) == 2
    with store.session() as session:
        session.execute(update(OutboxRow).values(last_code=550, last_error="550 5.1.1 <someone@example.org>: unknown"))
    settings = clinic_settings(project, secret_key=KEY, transport="file:outbox/")
    erased = erasure.forget(store, settings, "Ana@Example.org")
    assert erased.files_removed == 1
    remaining = list(folder.glob("*.eml"))
    assert len(remaining) == 1 and b"bo@example.org" in remaining[0].read_bytes()
    with store.session() as session:
        rows = session.execute(select(OutboxRow.subscriber_id, OutboxRow.last_error, OutboxRow.last_code)).all()
    bo = [r for r in rows if r.subscriber_id is not None]
    gone = [r for r in rows if r.subscriber_id is None]
    assert len(gone) == 1 and gone[0].last_error is None and gone[0].last_code == 550  # counts stay, text goes
    assert len(bo) == 1 and bo[0].last_error is not None
    # A copy already deleted by hand is no error, and a repeat finds nothing more to remove.
    assert erasure.forget(store, settings, "ana@example.org").files_removed == 0


def test_forget_with_another_transport_removes_no_files(store: Store, project: Path) -> None:
    folder = send_to(store, project, "ana@example.org")
    settings = clinic_settings(project, secret_key=KEY, transport="memory:")
    assert erasure.forget(store, settings, "ana@example.org").files_removed == 0
    assert len(list(folder.glob("*.eml"))) == 1


def test_forget_with_an_smtp_transport_erases_without_its_password(store: Store, project: Path) -> None:
    """An SMTP transport keeps no copies, so staff erasing someone need not hold the relay's password."""
    send_to(store, project, "ana@example.org")
    settings = clinic_settings(project, secret_key=KEY, transport="smtp://mailer@relay.example:587")
    assert erasure.forget(store, settings, "ana@example.org").files_removed == 0
    with store.session() as session:
        assert subscribers.find(session, "ana@example.org") is None


def test_the_forget_command_reports_the_files_it_removed(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    store = open_store(database_url)
    try:
        folder = send_to(store, project, "ana@example.org")
    finally:
        store.dispose()
    env = {**SECRET_ENV, "NEWSLETTER_TRANSPORT": "file:outbox/"}
    result = newsletter("subscribers", "forget", "ana@example.org", "--yes", "--json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"erased": True, "files_removed": 1}
    assert list(folder.glob("*.eml")) == []
