"""What the signup form does before and after its answer: the same work for every address before,
everything that depends on the address after (on the mail thread), and nothing lost in between.
Flask's test client, on SQLite and PostgreSQL, with the memory transport."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store.engine import Store
from newsletter.store.models import Consent, SignupIntake, Status
from newsletter.subscribers import service
from newsletter.web import close_app
from newsletter.web.mailer import Job
from tests.support.web import add_subscriber, erase, find, make_app, sent, settle

STATES = ("new", "pending", "confirmed", "unsubscribed", "bounced", "complained", "erased")


def every_state(store: Store) -> dict[str, str]:
    """An address in each state, all the same length (the form's own work depends on the text only)."""
    addresses = {state: f"{state[:4]}-{n}@example.org" for n, state in enumerate(STATES)}
    for state in ("pending", "confirmed", "unsubscribed", "bounced", "complained"):
        add_subscriber(store, addresses[state], Status(state))
    add_subscriber(store, addresses["erased"])
    erase(store, addresses["erased"])
    return addresses


def post(client: FlaskClient, address: str) -> Any:
    return client.post("/subscribe", data={"email": address, "name": "Ana", "topic": "faq-updates"})


class Held:
    """The app's deferred jobs, held back instead of run, to see the request's own work alone."""

    def __init__(self, app: Flask) -> None:
        self.mailer = app.extensions["newsletter"].mailer
        self.jobs: list[Job] = []

    def __enter__(self) -> list[Job]:
        self.real = self.mailer.defer
        self.mailer.defer = self.jobs.append
        return self.jobs

    def __exit__(self, *exc: object) -> None:
        self.mailer.defer = self.real

    def release(self) -> None:
        for job in self.jobs:
            self.mailer.defer(job)


@pytest.fixture
def statements(store: Store) -> Iterator[list[str]]:
    """Every SQL statement the store runs while the fixture is live, from any thread."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    yield seen
    event.remove(store.engine, "before_cursor_execute", record)


def test_the_answer_does_the_same_database_work_for_every_state(
    app: Flask, client: FlaskClient, store: Store, statements: list[str]
) -> None:
    """The work before the answer is one insert, the same statements whatever the address: the
    timing cannot tell the states apart (bench/timing_bench.py measures it)."""
    addresses = every_state(store)
    settle(app)
    held = Held(app)
    work: dict[str, list[str]] = {}
    with held:
        for state, address in addresses.items():
            statements.clear()
            response = post(client, address)
            assert response.status_code == 200, state
            work[state] = list(statements)
    assert len(held.jobs) == len(STATES)
    reference = work["new"]
    assert all(w == reference for w in work.values()), work
    assert [s.split()[0] for s in reference] == ["INSERT"] and "signup_intake" in reference[0]
    assert all("subscribers" not in s for s in reference)  # nothing about the address is read

    held.release()
    recipients = sorted(m.recipient for m in sent(app))
    assert recipients == sorted(addresses[s] for s in ("new", "pending", "unsubscribed", "confirmed"))
    with store.session(commit=False) as session:
        assert session.scalar(select(func.count()).select_from(SignupIntake)) == 0


def test_the_consent_is_dated_when_the_form_was_sent(
    app: Flask, client: FlaskClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(app)
    with Held(app) as jobs:
        post(client, "ana@example.org")
    with store.session(commit=False) as session:
        received = session.scalars(select(SignupIntake.received_at)).one()
    for job in jobs:
        job()  # here, later than the answer
    with store.session(commit=False) as session:
        consent = session.scalars(select(Consent)).one()
        assert consent.given_at == received and consent.method == "form" and consent.ip_hash
        assert consent.origin == "https://news.harvest.example/subscribe"


def test_a_signup_left_by_a_process_that_died_is_applied_when_the_app_starts_again(
    store: Store, tmp_path: Path
) -> None:
    """A 200 means the request is kept: answered, then the process dies before the mail thread ran."""
    MemoryTransport.reset()
    first = make_app(store, tmp_path)
    settle(first)
    with Held(first):  # the jobs die with the process
        assert post(first.test_client(), "ana@example.org").status_code == 200
    close_app(first)
    assert find(store, "ana@example.org") is None

    second = make_app(store, tmp_path)
    try:
        assert second.test_client().get("/archive").status_code == 200  # any first request
        settle(second)
        ana = find(store, "ana@example.org")
        assert ana is not None and ana.status == "pending" and ana.name == "Ana" and ana.tag_names == ["faq-updates"]
        assert [m.recipient for m in sent(second)] == ["ana@example.org"]
        with store.session(commit=False) as session:
            assert session.scalar(select(func.count()).select_from(SignupIntake)) == 0
    finally:
        close_app(second)
        MemoryTransport.reset()


def test_a_response_closed_after_the_app_leaves_its_signup_kept_and_starts_no_thread(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server may close a response after the app was closed (shutting down): its work must not
    start a mail thread on the released store, which would hold a connection nobody closes."""
    MemoryTransport.reset()
    app = make_app(store, tmp_path)
    settle(app)
    client = FlaskClient(app)  # Flask's own client: the response stays open until closed
    response = client.post("/subscribe", data={"email": "ana@example.org", "topic": "faq-updates"})
    assert response.status_code == 200
    close_app(app)
    response.close()  # the deferred work is handed over now, after the end
    mailer = app.extensions["newsletter"].mailer
    mailer.start()
    assert mailer._thread is None and "left for the next start" in caplog.text
    assert find(store, "ana@example.org") is None
    with store.session(commit=False) as session:
        assert session.scalar(select(func.count()).select_from(SignupIntake)) == 1
    MemoryTransport.reset()


def test_a_request_is_applied_once_whoever_takes_it(app: Flask, client: FlaskClient, store: Store) -> None:
    """Two processes may both try a kept request (one recovering, one answering): one applies it."""
    settle(app)
    with Held(app) as jobs:
        post(client, "ana@example.org")
    for job in jobs * 3:
        job()
    ana = find(store, "ana@example.org")
    assert ana is not None and len(ana.consents) == 1


def test_a_request_that_fails_stays_kept_for_the_next_start(
    app: Flask, client: FlaskClient, store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the store went away")

    settle(app)
    with monkeypatch.context() as patch:
        patch.setattr(service, "request_signup", broken)
        assert post(client, "ana@example.org").status_code == 200
        settle(app)
    assert "a deferred email job failed" in caplog.text and "ana@example.org" not in caplog.text
    with store.session(commit=False) as session:
        assert session.scalar(select(func.count()).select_from(SignupIntake)) == 1
    app.extensions["newsletter"].mailer.close()  # as a restart would
    settle(app)
    ana = find(store, "ana@example.org")
    assert ana is not None and ana.status == "pending"


def test_erasing_an_address_drops_its_waiting_requests(app: Flask, client: FlaskClient, store: Store) -> None:
    settle(app)
    with Held(app) as jobs:
        post(client, "ana@example.org")
    erase(store, "ana@example.org")  # erasure of someone known only to the intake
    for job in jobs:
        job()
    assert find(store, "ana@example.org") is None and sent(app) == []
    with store.session(commit=False) as session:
        assert session.scalar(select(func.count()).select_from(SignupIntake)) == 0


def test_links_in_signup_emails_name_a_public_id_not_a_row_id(app: Flask, client: FlaskClient, store: Store) -> None:
    add_subscriber(store, "ana@example.org")
    post(client, "ana@example.org")
    [message] = sent(app)
    ana = find(store, "ana@example.org")
    assert ana is not None
    paths = re.findall(rb"/(?:preferences|unsubscribe)/([A-Za-z0-9_.=\-]+)", message.data.replace(b"=\r\n", b""))
    assert paths and all(p.startswith(ana.public_id.encode()) for p in paths)
    assert all(not re.match(rb"\d+-", p) for p in paths)
