"""Fixtures and helpers for the web endpoint's tests (Flask tutorial style: ``app`` and ``client``)."""

from __future__ import annotations

import contextlib
import email
import email.policy
import re
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.serving import make_server

from newsletter.config import Settings
from newsletter.delivery.links import Links, Purpose
from newsletter.delivery.transports import OutgoingMessage
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store.engine import Store
from newsletter.store.models import Consent, Erasure, Event, Source, Status, Subscriber
from newsletter.subscribers import service
from newsletter.subscribers.addresses import normalise_address
from newsletter.subscribers.service import ConsentInfo
from newsletter.web import RateLimits, create_app
from tests.support.wsgi import InFlight

SECRET = "web-test-secret-0123456789abcdef"
BASE = "https://news.harvest.example"
NO_LIMITS = RateLimits(per_ip="", per_address="", per_address_total="")


def web_settings(project: Path, database_url: str = "sqlite://", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "project_dir": project,
        "database_url": database_url,
        "secret_key": SECRET,
        "organisation": "Harvest Test Clinic",
        "postal_address": "1 Example Way, Springfield, ZZ 00000",
        "from_address": "news@harvest.example",
        "reply_to": "hello@harvest.example",
        "public_base_url": BASE,
        "transport": "memory:",
    }
    values.update(overrides)
    return Settings(**values)


def make_app(store: Store, project: Path, *, rate_limits: RateLimits = NO_LIMITS, **overrides: Any) -> Flask:
    settings = web_settings(project, store.engine.url.render_as_string(hide_password=False), **overrides)
    return create_app(settings, store=store, transport=lambda: MemoryTransport(), rate_limits=rate_limits)


def links() -> Links:
    return Links(SECRET, BASE)


def settle(app: Flask) -> None:
    """Wait until the app's mail thread has done the work its requests left after their answers
    (and the recovery it starts with, see newsletter.web.deferred.recover)."""
    mailer = app.extensions["newsletter"].mailer
    mailer.start()
    mailer.join()


IP = "192.0.2.10"  # documentation range (RFC 5737): a form sender's address


def subscribe(client: FlaskClient, address: str, *, ip: str = IP, **fields: object):  # type: ignore[no-untyped-def]
    """A form request, applied; with one topic ticked unless ``topic`` says otherwise (none is ticked
    in advance)."""
    data = {"email": address, "name": "", "topic": ["faq-updates"], **fields}
    response = client.post("/subscribe", data=data, environ_base={"REMOTE_ADDR": ip})
    settle(client.application)  # the request is applied after the answer, on the mail thread
    return response


def sent(app: Flask) -> list[OutgoingMessage]:
    """Every message the app has sent, once its mail thread has handled all it was given."""
    settle(app)
    return MemoryTransport.outbox()


def parse(message: OutgoingMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_of(message: OutgoingMessage) -> str:
    part = parse(message).get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def link_in(message: OutgoingMessage, purpose: Purpose) -> str:
    """The path of the ``purpose`` link in a message's text part, for the test client."""
    match = re.search(rf"{re.escape(BASE)}(/{purpose}/[A-Za-z0-9_.-]+)", text_of(message))
    assert match, f"no {purpose} link in:\n{text_of(message)}"
    return match[1]


def token_path(purpose: Purpose, subscriber: Subscriber) -> str:
    return f"/{purpose}/{links().token(purpose, subscriber.public_id, subscriber.email_key)}"


def request_signup(store: Store, address: str, *, name: str = "", topics: tuple[str, ...] = ("faq-updates",)) -> str:
    """A form request, as the web makes it; returns the request's token (the key in its confirm link)."""
    with store.session() as session:
        outcome = service.request_signup(
            session,
            normalise_address(address),
            name=name,
            topics=topics,
            consent=ConsentInfo(Source.FORM, "v1"),
            secret_key=SECRET,
        )
    assert outcome.request_token, outcome
    return outcome.request_token


def confirm_path(request_token: str, subscriber: Subscriber) -> str:
    return f"/confirm/{links().token('confirm', request_token, subscriber.email_key)}"


def add_subscriber(
    store: Store, address: str, status: Status = Status.CONFIRMED, *, tags: tuple[str, ...] = ()
) -> Subscriber:
    with store.session() as session:
        subscriber = service.add(
            session,
            address,
            consent=ConsentInfo(Source.MANUAL, "v1"),
            tags=tags,
            confirmed=status is not Status.PENDING,
            secret_key=SECRET,
        ).subscriber
        if status.suppressed:
            service.unsubscribe(session, subscriber, actor="test", status=status)
        session.refresh(subscriber)
        _ = subscriber.tags  # loaded while the session is open
    return subscriber


def erase(store: Store, address: str) -> None:
    with store.session() as session:
        service.forget(session, address, secret_key=SECRET)


def find(store: Store, address: str) -> Subscriber | None:
    with store.session(commit=False) as session:
        subscriber = service.find(session, address)
        if subscriber is not None:
            _ = subscriber.tags, subscriber.consents, subscriber.events
            session.expunge(subscriber)  # keeps what was loaded: the rollback at the end would expire it
        return subscriber


def snapshot(store: Store) -> tuple[Any, ...]:
    """Everything a request could change, to show that it changed nothing."""
    with store.session(commit=False) as session:
        subs = [
            (
                s.id,
                s.email_key,
                s.name,
                s.status,
                s.paused,
                tuple(s.tag_names),
                s.confirmed_at,
                s.unsubscribed_at,
                s.updated_at,
            )
            for s in session.scalars(select(Subscriber).order_by(Subscriber.id))
        ]
        consents = [
            (c.id, c.confirmed_at, c.confirm_event_id) for c in session.scalars(select(Consent).order_by(Consent.id))
        ]
        events = session.scalar(select(func.count()).select_from(Event))
        erasures = session.scalar(select(func.count()).select_from(Erasure))
    return subs, consents, events, erasures


# --- over real HTTP: Werkzeug's server on 127.0.0.1 ------------------------------------------------------


@contextlib.contextmanager
def serving(app: Flask) -> Iterator[int]:
    """Serve ``app`` with Werkzeug's threaded server on a free port of 127.0.0.1; yields the port.

    On the way out, waits until every request has been closed (its handler thread may outlive the
    client's read by a moment), so that what they deferred is with the mail thread."""
    in_flight = InFlight(app.wsgi_app)
    server = make_server("127.0.0.1", 0, in_flight, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        in_flight.wait()


def post_chunked(
    port: int, path: str, body: bytes, content_type: str = "application/x-www-form-urlencoded", *, piece: int = 4096
) -> tuple[int, dict[str, str], bytes]:
    """POST ``body`` with ``Transfer-Encoding: chunked`` (no Content-Length); returns status, headers, body.

    The body goes out on a thread of its own while the answer is read: a server that refuses the
    body stops reading it, answers and closes, and the sender then gets a broken pipe, not the answer.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)

    def send() -> None:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        with contextlib.suppress(OSError):
            sock.sendall((head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode())
            for start in range(0, len(body), piece):
                chunk = body[start : start + piece]
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)  # Werkzeug's server reads what is left of a refused body to the end

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while (chunk := sock.recv(65536)) and not _complete(received := received + chunk):
            pass
    sender.join(timeout=30)
    sock.close()
    return _split(received)


def _split(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, content = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, content


def _complete(response: bytes) -> bool:
    if b"\r\n\r\n" not in response:
        return False
    _, headers, content = _split(response)
    return "Content-Length" in headers and len(content) >= int(headers["Content-Length"])
