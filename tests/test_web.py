"""The web endpoint through Flask's test client, on SQLite and PostgreSQL, with the memory transport.

The real browser, SMTP server and campaign send are in test_web_e2e.py.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from html import escape as html_escape
from html.parser import HTMLParser
from pathlib import Path

import itsdangerous
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from newsletter.delivery import ledger
from newsletter.delivery.links import Links
from newsletter.delivery.transports import PermanentFailure, TemporaryFailure, TransportConfigError
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.errors import ConfigError
from newsletter.store.engine import Store, open_store
from newsletter.store.models import EventKind, Status, Subscriber
from newsletter.subscribers import queries
from newsletter.web import close_app, create_app, wsgi
from newsletter.web.pages import ARCHIVE_CSP
from tests.conftest import Newsletter
from tests.support.web import (
    BASE,
    IP,
    SECRET,
    add_subscriber,
    confirm_path,
    erase,
    find,
    link_in,
    links,
    make_app,
    parse,
    request_signup,
    sent,
    settle,
    snapshot,
    subscribe,
    text_of,
    token_path,
    web_settings,
)


class _Form(HTMLParser):
    """The form controls of a page: inputs with their attributes, and the labels' targets."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.forms: list[dict[str, str | None]] = []
        self.aria_hidden_ids: list[str] = []
        self._hidden_depth = 0
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "input":
            self.inputs.append({**attributes, "_in_aria_hidden": "yes" if self._hidden_depth else None})
        elif tag == "label" and attributes.get("for"):
            self.label_for.add(str(attributes["for"]))
        elif tag == "form":
            self.forms.append(attributes)
        if tag == "div" and (attributes.get("aria-hidden") == "true" or self._hidden_depth):
            self._hidden_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._hidden_depth:
            self._hidden_depth -= 1


def controls(html: str) -> _Form:
    parser = _Form()
    parser.feed(html)
    return parser


# --- the signup form --------------------------------------------------------------------------------


def test_the_signup_form_labels_every_field_and_hides_the_honeypot(client: FlaskClient) -> None:
    response = client.get("/subscribe")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    form = controls(html)
    assert [f.get("action") for f in form.forms] == ["/subscribe"]
    assert form.forms[0].get("method") == "post"
    visible = [i for i in form.inputs if i.get("type") != "hidden"]
    assert {i["id"] for i in visible} <= form.label_for  # a label for every field
    by_name = {i["name"]: i for i in form.inputs if i.get("name") != "topic"}
    assert by_name["email"]["type"] == "email" and "required" in by_name["email"]
    assert "required" not in by_name["name"]
    honeypot = by_name["website"]
    assert honeypot["type"] == "text" and honeypot["tabindex"] == "-1" and honeypot["_in_aria_hidden"] == "yes"
    topics = [i["value"] for i in form.inputs if i.get("name") == "topic"]
    assert topics == ["faq-updates", "client-stories", "clinic-news"]
    assert "Consent wording 2026-11" in html
    assert "<script" not in html and "http" not in re.sub(r"https://news\.harvest\.example", "", html)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html


def test_the_stylesheet_is_served_from_our_own_origin(client: FlaskClient) -> None:
    response = client.get("/static/site.css")
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert b".hp" in response.data and b"@import" not in response.data and b"url(" not in response.data
    response.close()


@pytest.mark.parametrize("path", ["/subscribe", "/archive", "/unsubscribe", "/no-such-page", "/confirm/forged"])
def test_every_page_carries_the_security_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp and "unsafe-inline" not in csp  # default-src 'none' blocks every script
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Set-Cookie" not in response.headers
    assert "no-store" in response.headers["Cache-Control"]


def test_the_root_leads_to_the_form(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/subscribe"


# --- POST /subscribe --------------------------------------------------------------------------------


def test_a_new_address_becomes_pending_with_its_consent_and_gets_a_confirmation(
    app: Flask, client: FlaskClient, store: Store
) -> None:
    response = subscribe(client, "Ana@Example.org", name="Ana Example", topic=["client-stories", "nope"])
    assert response.status_code == 200
    assert b"Check your inbox" in response.data
    subscriber = find(store, "ana@example.org")
    assert subscriber is not None
    assert (subscriber.status, subscriber.name, subscriber.tag_names) == ("pending", "Ana Example", ["client-stories"])
    [consent] = subscriber.consents
    assert (consent.method, consent.wording_version, consent.origin) == ("form", "2026-11", f"{BASE}/subscribe")
    expected = hmac.new(SECRET.encode(), b"consent-ip:" + IP.encode(), hashlib.sha256).hexdigest()
    assert consent.ip_hash == expected and IP not in consent.ip_hash and consent.confirmed_at is None
    assert [e.kind for e in subscriber.events] == ["subscribed"]

    [message] = sent(app)
    assert (message.sender, message.recipient) == ("news@harvest.example", "Ana@example.org")
    parsed = parse(message)
    assert parsed["To"] == "Ana@example.org"
    assert parsed["From"] == "Harvest Test Clinic <news@harvest.example>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_body(("html",)) is not None
    # Nothing typed into the form is in the email, except the address in To:.
    assert b"Ana Example" not in message.data
    assert client.get(link_in(message, "confirm")).status_code == 200


def test_the_consent_origin_is_the_embedding_page_without_its_query(client: FlaskClient, store: Store) -> None:
    client.post(
        "/subscribe",
        data={"email": "bo@example.org", "topic": "clinic-news"},
        headers={"Referer": "https://harvest.example/contact?utm=x#form"},
    )
    settle(client.application)
    subscriber = find(store, "bo@example.org")
    assert subscriber is not None and subscriber.consents[0].origin == "https://harvest.example/contact"


def _prepare_every_state(store: Store) -> dict[str, str]:
    addresses = {
        "new": "new@example.org",
        "pending": "pending@example.org",
        "confirmed": "confirmed@example.org",
        "unsubscribed": "left@example.org",
        "bounced": "bounced@example.org",
        "complained": "complained@example.org",
        "erased": "erased@example.org",
        "honeypot": "bot@example.org",
    }
    add_subscriber(store, addresses["pending"], Status.PENDING)
    add_subscriber(store, addresses["confirmed"])
    add_subscriber(store, addresses["unsubscribed"], Status.UNSUBSCRIBED)
    add_subscriber(store, addresses["bounced"], Status.BOUNCED)
    add_subscriber(store, addresses["complained"], Status.COMPLAINED)
    add_subscriber(store, addresses["erased"])
    erase(store, addresses["erased"])
    return addresses


def test_every_state_gets_the_same_page_and_only_askable_addresses_get_mail(
    app: Flask, client: FlaskClient, store: Store
) -> None:
    addresses = _prepare_every_state(store)
    bodies = {}
    for state, address in addresses.items():
        extra = {"website": "https://spam.example"} if state == "honeypot" else {}
        response = subscribe(client, address, **extra)
        assert response.status_code == 200, state
        assert address.encode() not in response.data
        bodies[state] = response.data
    assert len(set(bodies.values())) == 1, "the page must not tell one state from another"

    recipients = sorted(m.recipient for m in sent(app))
    assert recipients == sorted(addresses[s] for s in ("new", "pending", "unsubscribed", "confirmed"))
    by_recipient = {m.recipient: text_of(m) for m in sent(app)}
    assert "already subscribed" in by_recipient[addresses["confirmed"]]
    assert "/confirm/" in by_recipient[addresses["pending"]]
    assert find(store, addresses["honeypot"]) is None
    assert find(store, addresses["erased"]) is None
    for state in ("bounced", "complained"):
        subscriber = find(store, addresses[state])
        assert subscriber is not None and subscriber.status == state and len(subscriber.consents) == 1


def test_a_confirmed_subscriber_is_not_changed_by_a_stranger(app: Flask, client: FlaskClient, store: Store) -> None:
    add_subscriber(store, "ana@example.org", tags=("faq-updates",))
    before = snapshot(store)
    subscribe(client, "ana@example.org", name="Someone Else", topic=["clinic-news"])
    assert snapshot(store) == before
    [message] = sent(app)
    assert b"Someone Else" not in message.data
    assert client.get(link_in(message, "preferences")).status_code == 200
    assert client.get(link_in(message, "unsubscribe")).status_code == 200


def test_a_stranger_cannot_change_a_pending_signup(app: Flask, client: FlaskClient, store: Store) -> None:
    """Point 3: the owner asks, a stranger asks again for the same address with other choices; the
    owner's link confirms the owner's request, and the stranger's changes nothing on its own."""
    subscribe(client, "ana@example.org", name="Ana", topic=["faq-updates"])
    subscribe(client, "Ana@Example.org", ip="198.51.100.7", name="Mallory", topic=["client-stories"])
    ana = find(store, "ana@example.org")
    assert ana is not None
    assert (ana.status, ana.name, ana.tag_names) == ("pending", "Ana", ["faq-updates"])
    assert [c.confirmed_at for c in ana.consents] == [None, None]
    owners, strangers = sent(app)
    assert owners.recipient.lower() == strangers.recipient.lower() == "ana@example.org"
    assert link_in(owners, "confirm") != link_in(strangers, "confirm")

    # Each link's page says what it confirms.
    page = client.get(link_in(owners, "confirm")).get_data(as_text=True)
    assert "FAQ updates" in page and "Ana" in page and "Client stories" not in page and "Mallory" not in page
    assert "Client stories" in client.get(link_in(strangers, "confirm")).get_data(as_text=True)

    response = client.post(link_in(owners, "confirm"))
    assert response.status_code == 200 and b"You're subscribed" in response.data
    ana = find(store, "ana@example.org")
    assert ana is not None
    assert (ana.status, ana.name, ana.tag_names) == ("confirmed", "Ana", ["faq-updates"])
    owner_consent, stranger_consent = ana.consents
    confirmed_event = [e for e in ana.events if e.kind == EventKind.CONFIRMED][-1]
    assert owner_consent.confirm_event_id == confirmed_event.id and owner_consent.confirmed_at is not None
    assert stranger_consent.confirmed_at is None and stranger_consent.ip_hash != owner_consent.ip_hash
    # Pressing the owner's link again changes nothing more.
    before = snapshot(store)
    assert client.post(link_in(owners, "confirm")).status_code == 200
    assert snapshot(store) == before


def test_each_link_confirms_its_own_request_whatever_the_order(app: Flask, client: FlaskClient, store: Store) -> None:
    """The later request's link, pressed first, confirms the later request: its name, topics and consent."""
    subscribe(client, "bo@example.org", name="Bo", topic=["faq-updates"])
    subscribe(client, "bo@example.org", name="Bo Example", topic=["clinic-news", "client-stories"])
    first, second = sent(app)
    client.post(link_in(second, "confirm"))
    bo = find(store, "bo@example.org")
    assert bo is not None
    assert (bo.status, bo.name, bo.tag_names) == ("confirmed", "Bo Example", ["client-stories", "clinic-news"])
    assert [c.confirmed_at is not None for c in bo.consents] == [False, True]
    confirmed = [e for e in bo.events if e.kind == EventKind.CONFIRMED]
    assert len(confirmed) == 1 and confirmed[0].detail["topics"] == ["client-stories", "clinic-news"]
    # The first link still confirms exactly its own request, if its owner presses it.
    client.post(link_in(first, "confirm"))
    bo = find(store, "bo@example.org")
    assert bo is not None and (bo.name, bo.tag_names) == ("Bo", ["faq-updates"])
    assert [c.confirmed_at is not None for c in bo.consents] == [True, True]


def test_a_pending_request_keeps_tags_staff_gave(app: Flask, client: FlaskClient, store: Store) -> None:
    add_subscriber(store, "cy@example.org", Status.PENDING, tags=("faq-updates", "imported"))
    subscribe(client, "cy@example.org", name="Cy", topic=["clinic-news"])
    cy = find(store, "cy@example.org")
    assert cy is not None and (cy.name, cy.tag_names) == ("", ["faq-updates", "imported"])
    client.post(link_in(sent(app)[0], "confirm"))
    cy = find(store, "cy@example.org")
    assert cy is not None and cy.status == "confirmed"
    assert (cy.name, cy.tag_names) == ("Cy", ["clinic-news", "imported"])  # a tag outside the topics stays
    assert [c.method for c in cy.consents] == ["manual", "form"] and cy.consents[1].confirmed_at is not None


def test_leaving_and_asking_again_stays_unsubscribed_until_the_new_confirmation(
    app: Flask, client: FlaskClient, store: Store
) -> None:
    subscribe(client, "ana@example.org")
    [first] = sent(app)
    client.post(link_in(first, "confirm"))
    ana = find(store, "ana@example.org")
    assert ana is not None and ana.status == "confirmed"
    response = client.post(token_path("unsubscribe", ana), data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200

    subscribe(client, "ana@example.org")
    ana = find(store, "ana@example.org")
    assert ana is not None
    # Anyone can type an address: until its owner confirms, it stays unsubscribed and suppressed.
    assert ana.status == "unsubscribed" and ana.unsubscribed_at is not None
    assert ana.events[-1].kind == EventKind.SUBSCRIBED and ana.events[-1].detail["while_status"] == "unsubscribed"
    assert ana.consents[-1].confirmed_at is None
    with store.session(commit=False) as session:
        assert session.scalar(select(Subscriber.id).where(queries.audience([]))) is None

    second = sent(app)[-1]
    client.post(link_in(second, "confirm"))
    ana = find(store, "ana@example.org")
    assert ana is not None and ana.status == "confirmed" and ana.unsubscribed_at is None
    assert [e.kind for e in ana.events][-2:] == [EventKind.RESUBSCRIBED, EventKind.CONFIRMED]
    confirmed = [e for e in ana.events if e.kind == EventKind.CONFIRMED]
    assert len(confirmed) == 2
    assert ana.consents[-1].confirm_event_id == confirmed[-1].id


def test_losing_a_race_for_a_new_address_is_retried_once(
    app: Flask, client: FlaskClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests for a new address at once: the loser's insert hits the unique key. A race is hard
    to produce on demand, so the unique-key violation is injected, the winner's row being there; the
    retry must then find that row."""
    from newsletter.subscribers import service

    real = service.request_signup
    calls: list[int] = []

    def racing(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("INSERT INTO subscribers ...", {}, Exception("duplicate key"))
        return real(*args, **kwargs)

    add_subscriber(store, "ana@example.org", Status.PENDING)  # the winner's row

    monkeypatch.setattr(service, "request_signup", racing)
    assert subscribe(client, "ana@example.org").status_code == 200
    assert len(calls) == 2
    ana = find(store, "ana@example.org")
    assert ana is not None and ana.status == "pending" and [c.method for c in ana.consents] == ["manual", "form"]
    assert [m.recipient for m in sent(app)] == ["ana@example.org"]


# --- double opt-in ----------------------------------------------------------------------------------


def test_only_the_button_confirms_never_the_link_itself(app: Flask, client: FlaskClient, store: Store) -> None:
    subscribe(client, "ana@example.org")
    path = link_in(sent(app)[0], "confirm")
    before = snapshot(store)
    for _ in range(2):
        page = client.get(path)
        assert page.status_code == 200
        assert client.head(path).status_code == 200
    assert snapshot(store) == before  # mail scanners fetch links; a GET must change nothing
    form = controls(page.get_data(as_text=True))
    assert [(f["method"], f["action"]) for f in form.forms] == [("post", path)]

    response = client.post(path)
    assert response.status_code == 200 and b"You're subscribed" in response.data
    ana = find(store, "ana@example.org")
    assert ana is not None and ana.status == "confirmed" and ana.confirmed_at is not None
    [event] = [e for e in ana.events if e.kind == EventKind.CONFIRMED]
    assert ana.consents[0].confirm_event_id == event.id and event.actor == "web"
    # Pressing again, or opening the link again, is harmless and says the same.
    assert client.post(path).status_code == 200
    assert client.get(path).status_code == 200
    assert len(find(store, "ana@example.org").events) == len(ana.events)  # type: ignore[union-attr]


def test_a_confirm_link_of_someone_who_has_left_confirms_nothing(app: Flask, client: FlaskClient, store: Store) -> None:
    subscribe(client, "ana@example.org")
    path = link_in(sent(app)[0], "confirm")
    ana = find(store, "ana@example.org")
    assert ana is not None
    client.post(token_path("unsubscribe", ana))
    before = snapshot(store)
    assert client.get(path).status_code == 400
    assert client.post(path).status_code == 400
    assert snapshot(store) == before


# --- one-click unsubscribe --------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe_is_done_before_the_answer_and_repeatable(
    client: FlaskClient, store: Store, encoding: str
) -> None:
    ana = add_subscriber(store, "ana@example.org")
    path = token_path("unsubscribe", ana)
    if encoding == "urlencoded":
        kwargs = {"data": b"List-Unsubscribe=One-Click", "content_type": "application/x-www-form-urlencoded"}
    else:
        kwargs = {"data": {"List-Unsubscribe": "One-Click"}, "content_type": "multipart/form-data"}
    for _ in range(3):
        response = client.post(path, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 200 and b"You're unsubscribed" in response.data
        assert "Set-Cookie" not in response.headers
    left = find(store, "ana@example.org")
    assert left is not None and left.status == "unsubscribed" and left.unsubscribed_at is not None
    events = [e for e in left.events if e.kind == EventKind.UNSUBSCRIBED]
    assert [e.detail for e in events] == [{"via": "one-click"}]


def test_the_visible_unsubscribe_link_shows_a_button_and_changes_nothing(client: FlaskClient, store: Store) -> None:
    ana = add_subscriber(store, "ana@example.org")
    path = token_path("unsubscribe", ana)
    before = snapshot(store)
    page = client.get(path)
    assert page.status_code == 200 and snapshot(store) == before
    form = controls(page.get_data(as_text=True))
    assert [(f["method"], f["action"]) for f in form.forms] == [("post", path)]
    preferences = re.search(r'href="(/preferences/[^"]+)"', page.get_data(as_text=True))
    assert preferences and client.get(preferences[1]).status_code == 200
    assert client.post(path, data={"confirm": "yes"}).status_code == 200
    left = find(store, "ana@example.org")
    assert left is not None and left.status == "unsubscribed"
    assert left.events[-1].detail == {"via": "page"}
    assert b"You're unsubscribed" in client.get(path).data


# --- preferences ------------------------------------------------------------------------------------


def test_preferences_change_topics_and_pause_and_leave_other_tags_alone(client: FlaskClient, store: Store) -> None:
    ana = add_subscriber(store, "ana@example.org", tags=("faq-updates", "imported"))
    path = token_path("preferences", ana)
    page = client.get(path)
    assert page.status_code == 200
    checked = {
        i["value"] for i in controls(page.get_data(as_text=True)).inputs if i.get("name") == "topic" and "checked" in i
    }
    assert checked == {"faq-updates"}

    response = client.post(path, data={"action": "save", "topic": ["clinic-news", "client-stories"], "paused": "1"})
    assert response.status_code == 200 and b"saved" in response.data
    ana = find(store, "ana@example.org")
    assert ana is not None
    assert ana.tag_names == ["client-stories", "clinic-news", "imported"] and ana.paused is True
    event = ana.events[-1]
    assert event.kind == EventKind.PREFERENCES
    assert event.detail == {
        "topics_added": ["client-stories", "clinic-news"],
        "topics_removed": ["faq-updates"],
        "paused": True,
    }
    client.post(path, data={"action": "save", "topic": ["clinic-news", "client-stories"]})
    resumed = find(store, "ana@example.org")
    assert resumed is not None and resumed.paused is False and resumed.events[-1].detail == {"paused": False}


def test_preferences_refuse_an_incomplete_post_and_change_nothing_for_someone_who_left(
    client: FlaskClient, store: Store
) -> None:
    ana = add_subscriber(store, "ana@example.org", tags=("faq-updates",))
    before = snapshot(store)
    assert client.post(token_path("preferences", ana), data={}).status_code == 400
    assert snapshot(store) == before

    gone = add_subscriber(store, "gone@example.org", Status.UNSUBSCRIBED, tags=("faq-updates",))
    before = snapshot(store)
    path = token_path("preferences", gone)
    assert b"not subscribed" in client.get(path).data
    response = client.post(path, data={"action": "save", "paused": "1"})
    assert response.status_code == 200 and b"not subscribed" in response.data
    assert snapshot(store) == before


# --- tokens -----------------------------------------------------------------------------------------


def _bad_tokens(client: FlaskClient, store: Store, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, str]]:
    """(route purpose, token) for every kind of token that must be refused."""
    keys = {name: request_signup(store, f"{name}@example.org") for name in ("ana", "bo", "gone")}
    ana, bo, gone = (find(store, f"{name}@example.org") for name in keys)
    assert ana is not None and bo is not None and gone is not None
    # Confirm links name the signup request; the others name the subscriber.
    key_of = {s.id: {"confirm": keys[s.email_key.split("@")[0]]} for s in (ana, bo, gone)}

    def key(purpose: str, subscriber: Subscriber) -> str:
        return key_of[subscriber.id].get(purpose, subscriber.public_id)

    ours = links()
    forged = Links("another-secret-key-entirely", BASE)
    purposes = ("confirm", "unsubscribe", "preferences")
    tokens = {purpose: ours.token(purpose, key(purpose, ana), ana.email_key) for purpose in purposes}
    gone_tokens = {p: ours.token(p, key(p, gone), gone.email_key) for p in purposes}
    for purpose, token in tokens.items():
        assert client.get(f"/{purpose}/{token}").status_code == 200, purpose  # the good ones work
    erase(store, "gone@example.org")
    with monkeypatch.context() as patch:
        patch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 8 * 86400)
        expired = ours.token("confirm", key("confirm", ana), ana.email_key)
    bad: dict[str, tuple[str, str]] = {}
    for purpose, token in tokens.items():
        other = "preferences" if purpose == "unsubscribe" else "unsubscribe"
        bad[f"{purpose}-forged"] = (purpose, forged.token(purpose, key(purpose, ana), ana.email_key))  # type: ignore[arg-type]
        bad[f"{purpose}-truncated"] = (purpose, token[:-4])
        bad[f"{purpose}-swapped"] = (other, token)
        bad[f"{purpose}-other-subscriber"] = (purpose, ours.token(purpose, key(purpose, bo), ana.email_key))  # type: ignore[arg-type]
        bad[f"{purpose}-erased"] = (purpose, gone_tokens[purpose])
        bad[f"{purpose}-garbage"] = (purpose, "ünïcödé" + token)
        bad[f"{purpose}-huge"] = (purpose, "A" * 5000)
    bad["confirm-expired"] = ("confirm", expired)
    bad["confirm-tampered-payload"] = ("confirm", "WzIsImFhYWEiXQ" + tokens["confirm"][tokens["confirm"].index(".") :])
    return bad


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_bad_token_is_refused_without_a_change(
    client: FlaskClient, store: Store, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    bad = _bad_tokens(client, store, monkeypatch)
    before = snapshot(store)
    for kind, (purpose, token) in bad.items():
        data = {"List-Unsubscribe": "One-Click", "action": "save", "paused": "1"}
        response = client.open(f"/{purpose}/{token}", method=method, data=data if method == "POST" else None)
        assert response.status_code == 400, kind
        assert b"This link does not work" in response.data, kind
    assert snapshot(store) == before


def test_a_link_that_does_not_work_offers_ways_forward(client: FlaskClient, store: Store) -> None:
    """Not a dead end: a new preferences link, the signup form, and a person to write to (reply_to)."""
    for path in ("/unsubscribe/not-a-token", "/preferences/x.y.z", "/confirm/garbage"):
        response = client.get(path)
        assert response.status_code == 400
        html = response.get_data(as_text=True)
        assert "This link does not work" in html and "this link is not valid" in html
        hrefs = [a.get("href") for tag, a in controls(html).tags if tag == "a"]
        assert "/preferences" in hrefs and "/subscribe" in hrefs
        assert "mailto:hello@harvest.example" in hrefs


def test_without_reply_to_the_from_address_is_offered(store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path, reply_to="")
    try:
        html = app.test_client().get("/unsubscribe/not-a-token").get_data(as_text=True)
    finally:
        close_app(app)
    assert 'href="mailto:news@harvest.example"' in html


def test_confirm_links_expire_and_unsubscribe_links_never_do(
    client: FlaskClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = request_signup(store, "ana@example.org")
    ana = find(store, "ana@example.org")
    assert ana is not None
    ten_years_ago = int(time.time()) - 10 * 365 * 86400
    with monkeypatch.context() as patch:
        patch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: ten_years_ago)
        confirm, unsubscribe = confirm_path(request, ana), token_path("unsubscribe", ana)
        preferences = token_path("preferences", ana)
    response = client.post(confirm)
    assert response.status_code == 400 and b"expired" in response.data
    assert client.get(preferences).status_code == 200
    assert client.post(unsubscribe).status_code == 200
    left = find(store, "ana@example.org")
    assert left is not None and left.status == "unsubscribed"


@pytest.mark.parametrize("path", ["/unsubscribe", "/confirm"])
def test_links_without_a_token_get_a_friendly_page(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert b"Use the link in your email" in response.data and b"hello@harvest.example" in response.data
    assert b'href="/preferences"' in response.data  # where a new link can be asked for


# --- archive ----------------------------------------------------------------------------------------


def test_the_archive_lists_campaigns_newest_first_and_serves_them_without_scripts(
    client: FlaskClient, store: Store
) -> None:
    assert b"No newsletters have been sent yet" in client.get("/archive").data
    with store.session() as session:
        ledger.record_campaign(session, "older", "The older one", "<html><body><p>Old</p></body></html>")
        ledger.record_campaign(
            session, "newer", "The <newer> one", "<html><body><p>New</p><script>alert(1)</script></body></html>"
        )
        ledger.record_campaign(session, "empty", "Not built", "")
    index = client.get("/archive").get_data(as_text=True)
    assert index.index("The &lt;newer&gt; one") < index.index("The older one")
    assert "Not built" not in index and '<time datetime="' in index
    page = client.get("/archive/newer")
    assert page.status_code == 200 and b"<p>New</p>" in page.data
    csp = page.headers["Content-Security-Policy"]
    assert csp == ARCHIVE_CSP and "script-src" not in csp and "default-src 'none'" in csp
    assert "sandbox" in csp and "allow-scripts" not in csp
    for missing in ("/archive/nope", "/archive/empty"):
        response = client.get(missing)
        assert response.status_code == 404 and b"Page not found" in response.data


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"email=ana%40example.org&name=\xe9l\xe8ve", "application/x-www-form-urlencoded"),
        (b"email=ana%40example.org&name=%E9l%E8ve", "application/x-www-form-urlencoded"),
        (
            b'--b\r\nContent-Disposition: form-data; name="email"\r\n\r\nana@example.org\r\n'
            b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xe9l\xe8ve\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
    ],
    ids=["raw-latin1", "percent-latin1", "multipart-latin1"],
)
def test_non_utf8_input_is_a_400(app: Flask, client: FlaskClient, store: Store, body: bytes, content_type: str) -> None:
    response = client.post("/subscribe", data=body, content_type=content_type)
    assert response.status_code == 400 and b"UTF-8" in response.data
    assert find(store, "ana@example.org") is None and sent(app) == []


@pytest.mark.parametrize(
    "name",
    [
        "Ana\r\nBcc: victim@example.org",
        "Ana\nX-Injected: 1",
        "Ana\u2028Bcc: x@example.org",
        "=?utf-8?q?=0ABcc:_x@example.org?=",
    ],
)
def test_header_injection_in_the_name_is_a_400(app: Flask, client: FlaskClient, store: Store, name: str) -> None:
    response = subscribe(client, "ana@example.org", name=name)
    assert response.status_code == 400 and b"Please check the form" in response.data
    assert find(store, "ana@example.org") is None and sent(app) == []


@pytest.mark.parametrize(
    "address",
    [
        "not-an-address",
        "",
        "ana@",
        "ana@example",
        "ünï@example.org",
        "ana@example.org\r\nBcc: x@example.org",
        "a" * 400 + "@example.org",
    ],
)
def test_an_unusable_address_comes_back_in_its_field_with_the_error_next_to_it(
    app: Flask, client: FlaskClient, store: Store, address: str
) -> None:
    """The form again, as typed (escaped, in the field only: no message repeats it), the error by the field."""
    response = subscribe(client, address, name="Ana <b>Lee</b>", topic=["client-stories"])
    assert response.status_code == 400 and sent(app) == [] and find(store, "ana@example.org") is None
    html = response.get_data(as_text=True)
    form = controls(html)
    by_name = {i["name"]: i for i in form.inputs if i.get("name") != "topic"}
    email = by_name["email"]
    assert email["value"] == address and email["aria-invalid"] == "true"
    assert email["aria-describedby"] == "nl-email-error" and 'id="nl-email-error"' in html
    assert by_name["name"]["value"] == "Ana <b>Lee</b>" and "aria-invalid" not in by_name["name"]
    assert [i["value"] for i in form.inputs if i.get("name") == "topic" and "checked" in i] == ["client-stories"]
    without_field = re.sub(r'<input id="nl-email"[^>]*>', "", html)
    if address:
        assert html_escape(address) not in without_field and address not in without_field
    assert "<b>Lee" not in html


def test_every_field_to_correct_is_shown_at_once(client: FlaskClient) -> None:
    response = subscribe(client, "ana@", name="Ana\r\nBcc: x@example.org", topic=[])
    form = controls(response.get_data(as_text=True))
    invalid = {i["name"] for i in form.inputs if i.get("aria-invalid") == "true"}
    assert response.status_code == 400 and invalid == {"email", "name"}
    assert 'id="nl-topic-error"' in response.get_data(as_text=True)


def test_a_long_name_is_a_400(client: FlaskClient) -> None:
    assert subscribe(client, "ana@example.org", name="x" * 201).status_code == 400


def test_an_oversize_body_is_a_friendly_413(client: FlaskClient, store: Store) -> None:
    response = subscribe(client, "ana@example.org", name="x" * 20_000)
    assert response.status_code == 413 and b"more than this form accepts" in response.data
    assert find(store, "ana@example.org") is None


def test_unknown_routes_and_wrong_methods_get_friendly_pages(client: FlaskClient) -> None:
    missing = client.get("/wp-login.php")
    assert missing.status_code == 404 and b"Page not found" in missing.data
    for method, path in (
        ("DELETE", "/subscribe"),
        ("PUT", "/unsubscribe/x"),
        ("POST", "/archive"),
        ("POST", "/unsubscribe"),
    ):
        response = client.open(path, method=method)
        assert response.status_code == 405, (method, path)
        assert b"cannot be used that way" in response.data and "Allow" in response.headers


def test_no_input_makes_a_server_error(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'fuzz.db'}")
    client = (flask_app := make_app(store, tmp_path)).test_client()

    @hypothesis_settings(max_examples=150, deadline=None)
    @given(
        fields=st.dictionaries(
            st.sampled_from(["email", "name", "topic", "website", "action", "paused", "List-Unsubscribe"]),
            st.text(max_size=300),
        ),
        path=st.sampled_from(["/subscribe", "/confirm/{t}", "/unsubscribe/{t}", "/preferences/{t}"]),
        token=st.text(
            st.characters(blacklist_categories=["Cs"], blacklist_characters="/?#%"), min_size=1, max_size=120
        ),
    )
    def check(fields: dict[str, str], path: str, token: str) -> None:
        response = client.post(path.format(t=token), data=fields)
        assert response.status_code in (200, 400, 404, 405, 413), response.status_code

    try:
        check()
    finally:
        close_app(flask_app)
        store.dispose()


# --- sending the confirmation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault", [TemporaryFailure(451, "try later"), PermanentFailure(550, "no such user"), RuntimeError("bug")]
)
def test_a_failing_transport_changes_nothing_the_visitor_sees(
    app: Flask, client: FlaskClient, store: Store, caplog: pytest.LogCaptureFixture, fault: Exception
) -> None:
    reference = subscribe(client, "first@example.org").data
    assert len(sent(app)) == 1  # sent before the fault is set up
    MemoryTransport.fail_next(fault)
    response = subscribe(client, "ana@example.org")
    assert response.status_code == 200 and response.data == reference
    assert [m.recipient for m in sent(app)] == ["first@example.org"]
    ana = find(store, "ana@example.org")
    assert ana is not None and ana.status == "pending"
    assert "could not send" in caplog.text and "ana@example.org" not in caplog.text
    assert app.extensions["newsletter"].mailer.failures == 1


def test_a_transport_that_cannot_connect_is_logged_not_shown(store: Store, tmp_path: Path) -> None:
    def unreachable() -> MemoryTransport:
        raise TransportConfigError("the relay refused our password")

    flask_app = create_app(web_settings(tmp_path), store=store, transport=unreachable)
    try:
        assert subscribe(flask_app.test_client(), "ana@example.org").status_code == 200
        flask_app.extensions["newsletter"].mailer.join()
        assert flask_app.extensions["newsletter"].mailer.failures == 1
    finally:
        close_app(flask_app)


def test_the_answer_does_not_wait_for_the_mail_server(store: Store, tmp_path: Path) -> None:
    """The page takes as long whether or not an email goes out: sending happens off the request."""
    release = threading.Event()

    class SlowTransport(MemoryTransport):
        def _send(self, message):  # type: ignore[no-untyped-def]
            assert release.wait(timeout=30)
            return super()._send(message)

    MemoryTransport.reset()
    flask_app = create_app(web_settings(tmp_path), store=store, transport=lambda: SlowTransport())
    try:
        client = flask_app.test_client()
        response = client.post("/subscribe", data={"email": "ana@example.org", "topic": "faq-updates"})
        assert response.status_code == 200
        assert MemoryTransport.outbox() == []  # answered while the send is still blocked
        release.set()
        assert [m.recipient for m in sent(flask_app)] == ["ana@example.org"]
    finally:
        release.set()
        close_app(flask_app)
        MemoryTransport.reset()


# --- building the app -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"secret_key": ""}, "NEWSLETTER_SECRET_KEY"),
        ({"from_address": ""}, "from_address"),
        ({"topics": "Client Stories=Stories"}, "topics"),
    ],
)
def test_a_misconfigured_app_fails_at_start(tmp_path: Path, overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app(web_settings(tmp_path, **overrides), store=None)


def test_a_bad_transport_url_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(TransportConfigError):
        create_app(web_settings(tmp_path, transport="pigeon:north"))


def test_the_wsgi_entry_point_passes_on_the_address_limits(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``per_address_total`` reaches the limiter: one under what a single source may send is refused."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "memory:")
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'wsgi.db'}")
    with pytest.raises(ConfigError, match=r"20 per 1 day .* 3 per 1 hour \(72\), or a stranger could use it up"):
        wsgi(str(project), per_address="3/hour", per_address_total="20/day")


def test_the_wsgi_entry_point_reads_the_project_settings(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'wsgi.db'}"
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "memory:")
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database)
    flask_app = wsgi(str(project), proxy_hops=1)
    try:
        client = flask_app.test_client()
        assert b"Harvest Test Clinic" in client.get("/subscribe").data
        behind_proxy = {"REMOTE_ADDR": "127.0.0.1"}
        forwarded = {"X-Forwarded-For": "198.51.100.7"}
        response = client.post(
            "/subscribe",
            data={"email": "ana@example.org", "topic": "faq-updates"},
            headers=forwarded,
            environ_base=behind_proxy,
        )
        assert response.status_code == 200
    finally:
        close_app(flask_app)
    store = open_store(database)
    try:
        ana = find(store, "ana@example.org")
        assert ana is not None
        assert (
            ana.consents[0].ip_hash == hmac.new(SECRET.encode(), b"consent-ip:198.51.100.7", hashlib.sha256).hexdigest()
        )
    finally:
        store.dispose()


# --- command line -----------------------------------------------------------------------------------


def test_the_snippet_posts_to_the_public_url_and_hides_its_honeypot(newsletter: Newsletter) -> None:
    result = newsletter("web", "snippet")
    assert result.exit_code == 0, result.output
    html = result.output
    form = controls(html)
    assert [f["action"] for f in form.forms] == ["https://news.harvest.example/subscribe"]
    hidden = [attrs for tag, attrs in form.tags if tag == "div" and attrs.get("aria-hidden") == "true"]
    assert hidden and "left:-10000px" in str(hidden[0]["style"])
    assert {i["id"] for i in form.inputs} <= form.label_for
    assert "2026-11" in html and "<script" not in html


@pytest.mark.parametrize("command", [["serve"], ["web"], ["web", "snippet"]])
def test_the_web_commands_explain_themselves(newsletter: Newsletter, command: list[str]) -> None:
    result = newsletter(*command, "--help")
    assert result.exit_code == 0
    description = result.output.split("Options:")[0].split("\n\n", 1)[1]
    assert len(description.split()) >= 8  # sentences, not a stub
    if command == ["serve"]:
        assert "--host" in result.output and "--port" in result.output and "gunicorn" in result.output


def test_a_form_request_for_an_unsubscribed_address_does_not_open_it_to_imports(
    app: Flask, client: FlaskClient, store: Store
) -> None:
    import io

    from newsletter.subscribers.importer import import_csv

    subscribe(client, "gone@example.org")
    client.post(link_in(sent(app)[0], "confirm"))
    gone = find(store, "gone@example.org")
    assert gone is not None
    client.post(token_path("unsubscribe", gone), data={"List-Unsubscribe": "One-Click"})
    subscribe(client, "gone@example.org")  # anyone could have typed it; its owner has not confirmed
    with store.session() as session:
        report = import_csv(
            session,
            io.StringIO("Email\ngone@example.org\n", newline=""),
            origin="x.csv",
            wording_version="v1",
            confirmed=True,
        )
    assert report.suppressed == 1
    gone = find(store, "gone@example.org")
    assert gone is not None and gone.status == "unsubscribed"
