"""The visitor's own choices on the web: topics asked for, never assumed; the preferences-link page;
the archive's Atom feed. Flask's test client, on SQLite and PostgreSQL, with the memory transport."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from newsletter.delivery import ledger
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store.engine import Store
from newsletter.store.models import StartedCampaign, Status, Subscriber
from newsletter.web import RateLimits, close_app
from newsletter.web.snippet import signup_snippet
from tests.support.web import (
    BASE,
    add_subscriber,
    erase,
    make_app,
    sent,
    settle,
    snapshot,
    text_of,
    web_settings,
)

IP = "192.0.2.20"
ATOM = "{http://www.w3.org/2005/Atom}"


def checked_topics(html: str) -> list[str]:
    return re.findall(r'<input id="nl-topic-([a-z-]+)" name="topic" type="checkbox" value="[a-z-]+" checked>', html)


# --- no topic ticked in advance ---------------------------------------------------------------------


def test_no_topic_is_ticked_in_advance(client: FlaskClient, tmp_path: object) -> None:
    html = client.get("/subscribe").get_data(as_text=True)
    assert html.count('name="topic" type="checkbox"') == 3 and checked_topics(html) == []
    assert " checked" not in html
    snippet = signup_snippet(web_settings(tmp_path))  # type: ignore[arg-type]
    assert snippet.count('type="checkbox"') == 3 and " checked" not in snippet


def test_a_request_without_a_topic_gets_the_form_back_with_its_error_and_what_was_typed(
    app: Flask, client: FlaskClient, store: Store
) -> None:
    before = snapshot(store)
    response = client.post(
        "/subscribe", data={"email": "ana@example.org", "name": "Ana <Lovelace>"}, environ_base={"REMOTE_ADDR": IP}
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "<h1>Subscribe for updates</h1>" in html and 'role="alert"' in html
    # The error sits in the topics fieldset, which points to it, before the first box.
    fieldset = html[html.index('<fieldset class="field topics invalid"') : html.index("</fieldset>")]
    assert 'aria-describedby="nl-topic-error"' in fieldset
    assert '<p class="error" id="nl-topic-error">Please choose at least one topic.</p>' in fieldset
    assert fieldset.index("nl-topic-error") < fieldset.index('type="checkbox"')
    # What the visitor typed is still there (escaped), and nothing happened.
    assert 'value="ana@example.org"' in html and 'value="Ana &lt;Lovelace&gt;"' in html
    assert snapshot(store) == before and sent(app) == []


def test_the_form_comes_back_with_the_topics_ticked_as_they_were(client: FlaskClient) -> None:
    """Only a missing topic sends the form back today, so check the mechanism with a forged value:
    an unknown topic alone counts as none, and the known ones would be kept ticked."""
    response = client.post("/subscribe", data={"email": "bo@example.org", "topic": ["retired-topic"]})
    assert response.status_code == 400 and checked_topics(response.get_data(as_text=True)) == []
    from werkzeug.datastructures import MultiDict

    from newsletter.web.forms import FieldErrors

    with client.application.test_request_context():
        from flask import render_template

        values = MultiDict([("email", "bo@example.org"), ("topic", "clinic-news"), ("topic", "faq-updates")])
        html = render_template(
            "subscribe.html",
            action="/subscribe",
            values=values,
            errors=FieldErrors({"email": "Check it."}, values).errors,
        )
    assert checked_topics(html) == ["faq-updates", "clinic-news"]
    assert 'aria-invalid="true" aria-describedby="nl-email-error"' in html and "Check it." in html


def test_a_bot_filling_the_honeypot_gets_the_usual_page_even_without_a_topic(app: Flask, client: FlaskClient) -> None:
    response = client.post("/subscribe", data={"email": "bot@example.org", "website": "https://spam.example"})
    assert response.status_code == 200 and b"Check your inbox" in response.data and sent(app) == []


def test_ticked_topics_are_what_the_subscriber_gets(app: Flask, client: FlaskClient, store: Store) -> None:
    client.post("/subscribe", data={"email": "cy@example.org", "topic": ["clinic-news", "client-stories"]})
    settle(app)
    with store.session() as session:
        cy = session.scalars(select(Subscriber)).one()
        assert cy.tag_names == ["client-stories", "clinic-news"]


# --- "email me my preferences link" ---------------------------------------------------------------------


def ask_for_link(client: FlaskClient, address: str, *, ip: str = IP, **fields: str):  # type: ignore[no-untyped-def]
    return client.post("/preferences", data={"email": address, **fields}, environ_base={"REMOTE_ADDR": ip})


def test_the_preferences_page_is_linked_from_the_footer_and_the_archive(client: FlaskClient) -> None:
    for path in ("/subscribe", "/archive", "/unsubscribe"):
        assert b'href="/preferences"' in client.get(path).data, path
    page = client.get("/preferences").get_data(as_text=True)
    assert '<form method="post" action="/preferences"' in page and 'name="email"' in page
    assert "Email me my preferences link" in page


def test_the_link_page_answers_the_same_whatever_the_address_and_only_a_subscriber_gets_mail(
    app: Flask, client: FlaskClient, store: Store
) -> None:
    states = {
        "confirmed": "member@example.org",
        "paused": "paused@example.org",
        "pending": "pending@example.org",
        "unsubscribed": "left@example.org",
        "bounced": "bounced@example.org",
        "complained": "complained@example.org",
        "erased": "erased@example.org",
        "unknown": "nobody@example.org",
    }
    add_subscriber(store, states["confirmed"])
    paused = add_subscriber(store, states["paused"])
    with store.session() as session:
        session.get(Subscriber, paused.id).paused = True  # type: ignore[union-attr]
    add_subscriber(store, states["pending"], Status.PENDING)
    for state in ("unsubscribed", "bounced", "complained"):
        add_subscriber(store, states[state], Status(state))
    add_subscriber(store, states["erased"])
    erase(store, states["erased"])
    before = snapshot(store)
    bodies = set()
    for address in states.values():
        response = ask_for_link(client, address)
        assert response.status_code == 200 and address.encode() not in response.data
        bodies.add(response.data)
    assert len(bodies) == 1, "the page must not tell one state from another"
    messages = sent(app)
    assert sorted(m.recipient for m in messages) == ["member@example.org", "paused@example.org"]
    assert snapshot(store) == before  # asking changes nothing
    # The link in the email opens that subscriber's preferences.
    text = text_of(messages[0])
    path = re.search(rf"{re.escape(BASE)}(/preferences/[A-Za-z0-9_.-]+)", text)
    assert path is not None and client.get(path[1]).status_code == 200
    assert f"{BASE}/unsubscribe/" in text


def test_the_link_page_looks_nothing_up_while_answering(app: Flask, client: FlaskClient, store: Store) -> None:
    """Same time whatever the address: the request does no state-dependent work at all; the look-up
    runs on the mail thread after the answer."""
    add_subscriber(store, "member@example.org")
    statements: list[str] = []
    settle(app)  # the mail thread's own first job (recovery) is not the requests' work

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    mailer = app.extensions["newsletter"].mailer
    jobs: list[object] = []
    real_defer = mailer.defer
    mailer.defer = jobs.append  # hold the job until the answer is out
    event.listen(store.engine, "before_cursor_execute", count)
    try:
        for address in ("member@example.org", "nobody@example.org"):
            assert ask_for_link(client, address).status_code == 200
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
        mailer.defer = real_defer
    assert statements == [] and len(jobs) == 2
    for job in jobs:
        mailer.defer(job)  # type: ignore[arg-type]
    assert [m.recipient for m in sent(app)] == ["member@example.org"]


def test_a_bad_address_gets_the_form_back_with_the_error_by_the_field(app: Flask, client: FlaskClient) -> None:
    response = ask_for_link(client, "not an address")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'value="not an address"' in html and 'aria-invalid="true" aria-describedby="pl-email-error"' in html
    assert re.search(r'<p class="error" id="pl-email-error">That does not look like an email address', html)
    assert sent(app) == []


def test_the_link_page_is_rate_limited_like_the_signup_form(store: Store, tmp_path: object) -> None:
    add_subscriber(store, "q@example.org")
    MemoryTransport.reset()
    app = make_app(store, tmp_path, rate_limits=RateLimits(per_ip="3/minute", per_address="2/hour"))  # type: ignore[arg-type]
    try:
        client = app.test_client()
        codes = [ask_for_link(client, f"p{n}@example.org").status_code for n in range(4)]
        assert codes == [200, 200, 200, 429]
        # Per address and source: the third request from one network gets the same page and no email.
        same = [ask_for_link(client, "q@example.org", ip="198.51.100.1") for _ in range(3)]
        assert [r.status_code for r in same] == [200, 200, 200] and same[2].data == same[0].data
        assert [m.recipient for m in sent(app)] == ["q@example.org"] * 2
        assert ask_for_link(client, "q@example.org", ip="198.51.100.2").status_code == 200  # another source
        assert len(sent(app)) == 3
        # Its own counts: asking for links used up none of the signups.
        assert client.post("/subscribe", data={"email": "r@example.org", "topic": "faq-updates"}).status_code == 200
    finally:
        close_app(app)
        MemoryTransport.reset()


def test_a_bot_filling_the_honeypot_gets_the_same_page_and_no_mail(
    app: Flask, client: FlaskClient, store: Store
) -> None:
    add_subscriber(store, "member@example.org")
    honest = ask_for_link(client, "nobody@example.org")
    bot = ask_for_link(client, "member@example.org", website="https://spam.example")
    assert bot.status_code == 200 and bot.data == honest.data and sent(app) == []


# --- the Atom feed --------------------------------------------------------------------------------------


def test_the_archive_feed_is_valid_atom_with_the_full_web_versions(client: FlaskClient, store: Store) -> None:
    empty = client.get("/archive/feed.xml")
    assert empty.status_code == 200 and feedparser.parse(empty.data).entries == []
    with store.session() as session:
        older = ledger.record_campaign(
            session, "older", "Spring & summer", "<html><head><style>p{}</style></head><body><p>Old</p></body></html>"
        )
        newer = ledger.record_campaign(
            session,
            "newer",
            "The <newer> one",
            '<!doctype html><html><body style="x"><h1>New &amp; more</h1></body></html>',
        )
        ledger.record_campaign(session, "_welcome", "Welcome", "")  # the welcome is not in the archive
        older.created_at = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
        newer.created_at = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    response = client.get("/archive/feed.xml")
    assert response.status_code == 200 and response.mimetype == "application/atom+xml"
    assert response.headers["Cache-Control"] == "public, max-age=300"

    parsed = feedparser.parse(response.data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Harvest Test Clinic newsletter"
    assert [e.title for e in parsed.entries] == ["The <newer> one", "Spring & summer"]
    assert [e.link for e in parsed.entries] == [f"{BASE}/archive/newer", f"{BASE}/archive/older"]
    assert parsed.entries[0].content[0].type == "text/html"
    assert parsed.entries[0].content[0].value == "<h1>New &amp; more</h1>"
    assert parsed.entries[1].content[0].value == "<p>Old</p>"  # the body only, not the page's head

    # What RFC 4287 requires, checked on the XML itself.
    root = ET.fromstring(response.data)
    assert root.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{required}") is not None, required
    assert root.find(f"{ATOM}updated").text.startswith("2026-10-01T09:00:00")  # type: ignore[union-attr]
    assert root.find(f"{ATOM}link[@rel='self']").get("href") == f"{BASE}/archive/feed.xml"  # type: ignore[union-attr]
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 2
    for entry in entries:
        for required in ("id", "title", "updated", "content"):
            assert entry.find(f"{ATOM}{required}") is not None, required
    assert len({e.find(f"{ATOM}id").text for e in entries}) == 2  # type: ignore[union-attr]
    archive = client.get("/archive").get_data(as_text=True)
    assert '<link rel="alternate" type="application/atom+xml"' in archive and 'href="/archive/feed.xml"' in archive
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(StartedCampaign)) == 3


@pytest.mark.parametrize("path", ["/archive/feed.xml"])
def test_the_feed_has_no_personal_data_and_no_scripts(client: FlaskClient, store: Store, path: str) -> None:
    add_subscriber(store, "member@example.org")
    with store.session() as session:
        ledger.record_campaign(session, "news", "News", "<html><body><p>Hi</p></body></html>")
    data = client.get(path).data
    assert b"member@example.org" not in data and b"<script" not in data.lower()
