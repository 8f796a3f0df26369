"""The welcome: one message to each person who confirms, from campaigns/_welcome.md, through the outbox.

send-due sends it; the memory transport receives it; every store test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.delivery import schedule, service
from newsletter.delivery.prepare import prepare
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.errors import NewsletterError
from newsletter.store.engine import Store
from newsletter.store.models import Source, Status
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.addresses import normalise_address
from newsletter.subscribers.consent import ConsentInfo
from tests.conftest import Newsletter
from tests.support.campaigns import SECRET_ENV, clinic_settings, write_campaign

REPO = Path(__file__).resolve().parents[1]
KEY = SECRET_ENV["NEWSLETTER_SECRET_KEY"]
TOPICS = ["faq-updates", "client-stories", "clinic-news"]


@pytest.fixture(autouse=True)
def clean_mailbox() -> None:
    MemoryTransport.reset()


@pytest.fixture
def welcome_project(project: Path) -> Path:
    (project / "campaigns").mkdir(exist_ok=True)
    shutil.copy(REPO / "campaigns" / "_welcome.md", project / "campaigns" / "_welcome.md")
    return project


def settings_of(project: Path, store: Store) -> Settings:
    return clinic_settings(
        project,
        database_url=store.engine.url.render_as_string(hide_password=False),
        secret_key=KEY,
        transport="memory:",
    )


def run(store: Store, settings: Settings) -> schedule.DueReport:
    return schedule.send_due(store, settings, datetime.now(UTC), lambda: MemoryTransport())


def signs_up(store: Store, address: str, *, topics: tuple[str, ...] = ("faq-updates",), confirm: bool = True) -> None:
    """Through the form's service calls: a request, then (if ``confirm``) its link pressed."""
    with store.session() as session:
        outcome = subscribers.request_signup(
            session,
            normalise_address(address),
            name="Ana",
            topics=topics,
            consent=ConsentInfo(Source.FORM, "v1"),
            secret_key=KEY,
        )
        if confirm:
            request = subscribers.find_request(session, outcome.request_token)
            assert request is not None
            assert subscribers.confirm_request(session, request, topic_choices=TOPICS)


def welcomed() -> list[str]:
    return sorted(m.recipient for m in MemoryTransport.outbox())


def test_no_welcome_file_no_welcome(store: Store, project: Path) -> None:
    signs_up(store, "ana@example.org")
    report = run(store, settings_of(project, store))
    assert report.welcome is None and report.as_dict()["welcome"] is None and welcomed() == []


def test_each_new_subscriber_gets_one_welcome_through_the_outbox(store: Store, welcome_project: Path) -> None:
    settings = settings_of(welcome_project, store)
    signs_up(store, "before@example.org")  # confirmed before the welcome started: not welcomed
    first = run(store, settings)
    assert first.welcome is not None and first.welcome.outcome == "sent" and welcomed() == []

    signs_up(store, "ana@example.org")
    signs_up(store, "bo@example.org", confirm=False)  # not confirmed: not welcomed
    with store.session() as session:  # imports and staff additions did not just sign up
        subscribers.add(session, "staff@example.org", consent=ConsentInfo(Source.MANUAL, "v1"), confirmed=True)
    second = run(store, settings)
    assert welcomed() == ["ana@example.org"]
    assert second.welcome is not None and second.welcome.result["this_run"]["sent"] == 1
    assert second.exit_code == 0

    third = run(store, settings)  # a rerun sends nothing twice
    assert welcomed() == ["ana@example.org"] and third.welcome.result["this_run"]["sent"] == 0  # type: ignore[union-attr]

    # Leaving and coming back is not a new welcome: one per person, ever.
    with store.session() as session:
        subscribers.unsubscribe(session, subscribers.get(session, "ana@example.org"), actor="test")
    signs_up(store, "ana@example.org")
    run(store, settings)
    assert welcomed() == ["ana@example.org"]
    signs_up(store, "bo@example.org")  # bo's second request, confirmed now
    run(store, settings)
    assert welcomed() == ["ana@example.org", "bo@example.org"]


def test_a_run_with_nobody_to_welcome_does_not_connect(store: Store, welcome_project: Path) -> None:
    settings = settings_of(welcome_project, store)
    connections: list[MemoryTransport] = []

    def transport() -> MemoryTransport:
        connections.append(MemoryTransport())
        return connections[-1]

    signs_up(store, "ana@example.org")
    schedule.send_due(store, settings, datetime.now(UTC), transport)  # starts the welcome: nobody owed yet
    assert connections == []
    signs_up(store, "bo@example.org")
    schedule.send_due(store, settings, datetime.now(UTC), transport)
    assert welcomed() == ["bo@example.org"] and connections
    connections.clear()
    rerun = schedule.send_due(store, settings, datetime.now(UTC), transport)
    assert connections == []
    assert rerun.welcome is not None and rerun.welcome.outcome == "sent"
    assert rerun.welcome.result["this_run"]["sent"] == 0 and rerun.welcome.result["sent"] == 1
    assert rerun.exit_code == 0


def test_the_welcome_is_a_normal_campaign_message_without_an_archive_link(store: Store, welcome_project: Path) -> None:
    settings = settings_of(welcome_project, store)
    run(store, settings)
    signs_up(store, "ana@example.org")
    run(store, settings)
    [message] = MemoryTransport.outbox()
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == "Welcome to Harvest's newsletter" and parsed["To"] == "Ana <ana@example.org>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = str(parsed.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "What is ketamine?" in text and "unsubscribe" in text.lower()
    assert "/archive/_welcome" not in text and "View this email in your browser" not in text
    assert "https://news.harvest.example/preferences/" in text


def test_the_welcome_follows_its_audience(store: Store, project: Path) -> None:
    write_campaign(project, "_welcome", "---\nsubject: Welcome, news readers\naudience: [clinic-news]\n---\nHello.\n")
    settings = settings_of(project, store)
    run(store, settings)
    signs_up(store, "news@example.org", topics=("clinic-news",))
    signs_up(store, "faq@example.org", topics=("faq-updates",))
    run(store, settings)
    assert welcomed() == ["news@example.org"]


def test_a_welcome_that_does_not_lint_is_an_error_of_send_due_not_a_crash(store: Store, project: Path) -> None:
    write_campaign(project, "_welcome", "---\nsubject: Welcome\n---\n::: vignette\nA client story.\n:::\n")
    report = run(store, settings_of(project, store))
    assert (
        report.welcome is not None and report.welcome.outcome == "error" and "sign-off" in (report.welcome.error or "")
    )
    assert report.exit_code == 1


def test_the_welcome_is_never_sent_to_a_list(store: Store, welcome_project: Path) -> None:
    settings = settings_of(welcome_project, store)
    prepared = prepare("_welcome", settings)
    with pytest.raises(NewsletterError, match="goes to each subscriber by itself"):
        service.send(store, prepared, transport=lambda: MemoryTransport())
    assert welcomed() == []
    # Nor once send-due has started the welcome's own outbox.
    run(store, settings)
    signs_up(store, "ana@example.org")
    run(store, settings)
    with pytest.raises(NewsletterError, match="goes to each subscriber by itself"):
        service.send(store, prepared, transport=lambda: MemoryTransport())
    for worker in (True, False):
        with pytest.raises(NewsletterError, match="never sent to a list"):
            service.send(store, prepared, transport=lambda: MemoryTransport(), worker=worker)
    assert welcomed() == ["ana@example.org"]


def test_send_due_and_campaign_list_do_not_treat_the_welcome_as_a_dated_campaign(
    newsletter: Newsletter, welcome_project: Path
) -> None:
    text = (welcome_project / "campaigns" / "_welcome.md").read_text(encoding="utf-8")
    dated = text.replace("subject:", "send_at: 2026-01-01T09:00:00+00:00\nsubject:", 1)
    (welcome_project / "campaigns" / "_welcome.md").write_text(dated, encoding="utf-8")
    env = {**SECRET_ENV, "NEWSLETTER_TRANSPORT": "memory:"}
    due = newsletter("send-due", "--yes", "--json", env=env)
    assert due.exit_code == 0, due.output
    data = json.loads(due.output)
    assert data["campaigns"] == [] and data["welcome"]["campaign"] == "_welcome"
    listed = json.loads(newsletter("campaign", "list", "--json", env=env).output)
    assert [(c["campaign"], c["state"]) for c in listed] == [("_welcome", "automatic")]
    refused = newsletter("campaign", "send", "_welcome", "--yes", env=env)
    assert refused.exit_code == 1 and "never sent to a list" in refused.output
    assert newsletter("campaign", "lint", "_welcome", "--strict").exit_code == 0


def test_a_campaign_without_an_audience_goes_to_every_confirmed_subscriber(store: Store, project: Path) -> None:
    """Topics choose among the topical campaigns; an announcement for everyone still reaches all."""
    write_campaign(project, "announcement", "---\nsubject: New opening hours\n---\nWe now open at 8.\n")
    signs_up(store, "faq@example.org", topics=("faq-updates",))
    signs_up(store, "news@example.org", topics=("clinic-news",))
    signs_up(store, "pending@example.org", confirm=False)
    with store.session() as session:
        subscribers.add(session, "untagged@example.org", consent=ConsentInfo(Source.IMPORT, "v1"), confirmed=True)
        assert subscribers.get(session, "untagged@example.org").status == Status.CONFIRMED
    result = service.send(
        store, prepare("announcement", settings_of(project, store)), transport=lambda: MemoryTransport()
    )
    assert result.counts.sent == 3
    assert welcomed() == ["faq@example.org", "news@example.org", "untagged@example.org"]
