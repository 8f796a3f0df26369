"""Fuzzing the web endpoint through Flask's test client: every route, any method, fields, bodies
(form, multipart, chunked, anything), headers and client addresses.

Invariants: no 5xx and nothing raised; no header of an answer carries a line break; nothing typed
is ever run as template code or comes back as markup; every email the endpoint sends goes to one
recipient, with clean headers and nothing from the form in it but the address. The budget here is
small enough for `make test`; `make fuzz` runs the same properties with the `fuzz` Hypothesis
profile (see conftest.py).
"""

from __future__ import annotations

import email
import email.policy
import io
import string
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from newsletter.delivery import ledger
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store.engine import Store, open_store
from newsletter.store.models import Status
from newsletter.web import close_app
from newsletter.web.state import EXTENSION, WebState
from tests.support.web import add_subscriber, find, links, make_app, request_signup, settle

PRODUCT = "7006652"  # what the template bait below would print if it were ever run
BAIT = [
    "{{ 1234*5678 }}",
    "{% for x in range(3) %}LOOPED{% endfor %}",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "\r\nBcc: victim@example.org",
    "=?UTF-8?Q?=0A?=Bcc: x@example.org",
    "ana@example.org\r\nCc: b@example.org",
    "ana@example.org, bo@example.org",
    "\u2028\u202e\x00",
]
EXPECTED_HEADERS = {
    "from", "to", "subject", "date", "message-id", "reply-to", "auto-submitted", "mime-version",
    "content-type", "content-transfer-encoding", "dkim-signature",
}  # fmt: skip

text = st.one_of(st.text(max_size=80), st.sampled_from(BAIT), st.text(string.printable, max_size=40))
addresses = st.one_of(
    st.sampled_from(["ana@example.org", "bo@example.org", "cy@example.org", "new@example.org", "x@ex ample.org"]),
    st.from_regex(r"[a-z0-9.+_-]{1,20}@(example\.org|[a-z0-9-]{1,12}\.(example|test))", fullmatch=True),
    text,
)
field_names = st.one_of(
    st.sampled_from(["email", "name", "topic", "website", "action", "paused", "List-Unsubscribe"]), text
)
field_values = st.one_of(
    text,
    addresses,
    st.sampled_from(["faq-updates", "clinic-news", "save", "1", "One-Click", ""]),
    st.just("x" * 17_000),
)
forms = st.lists(st.tuples(field_names, field_values), max_size=8)
methods = st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
content_types = st.one_of(
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=B",
            "multipart/form-data",
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded; charset=latin-1",
        ]
    ),
    text.map(lambda t: "".join(c for c in t if c.isprintable())),  # a header line holds no line break
)
client_ips = st.one_of(
    st.ip_addresses().map(str), st.sampled_from(["", "unknown", "::ffff:192.0.2.1", "2001:db8::1%eth0"])
)


def quoted(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


OTHER_PATHS = [
    "/",
    "/confirm",
    "/unsubscribe",
    "/archive",
    "/archive/feed.xml",
    "/archive/fuzz-issue",
    "/faq",
    "/theme.css",
    "/favicon.ico",
    "/webhooks/ses",
    "/static/site.css",
]
# A form as the page sends it, with anything in its fields: most requests should get past the door.
honest_forms = st.fixed_dictionaries(
    {"email": addresses, "name": text, "topic": st.sampled_from(["faq-updates", "clinic-news", ""])},
    optional={"website": st.just(""), "action": st.just("save"), "paused": st.just("1")},
).map(lambda form: list(form.items()))


@st.composite
def requests(draw: st.DrawFn, tokens: dict[str, list[str]]) -> dict[str, Any]:
    """One request: method, path, headers, body and the client's address."""
    purpose = draw(st.sampled_from(["confirm", "unsubscribe", "preferences"]))
    good = draw(st.sampled_from(tokens[purpose]))
    token = draw(
        st.one_of(
            st.just(good),
            st.just(good),
            st.tuples(st.integers(0, 200), text).map(lambda c: good[: c[0] % (len(good) + 1)] + c[1]),
            text.map(quoted),
        )
    )
    target = draw(st.sampled_from(["form", "form", "token", "token", "other", "junk"]))
    if target == "form":
        path, method = draw(st.sampled_from(["/subscribe", "/preferences"])), draw(st.just("POST") | methods)
    elif target == "token":
        path, method = f"/{purpose}/{token}", draw(st.sampled_from(["GET", "POST", "POST"]) | methods)
    elif target == "other":
        path, method = draw(st.sampled_from(OTHER_PATHS)), draw(methods)
    else:
        path, method = (
            draw(text.map(lambda t: "/" + quoted(t)) | text.map(lambda t: "/archive/" + quoted(t))),
            draw(methods),
        )
    headers = draw(
        st.dictionaries(
            st.sampled_from(["Referer", "X-Forwarded-For", "Accept-Language", "User-Agent", "Cookie", "Origin"]),
            text.map(lambda t: "".join(c for c in t if c.isprintable() and c <= "\xff")),
            max_size=3,
        )
    )
    request: dict[str, Any] = {
        "method": method,
        "path": path + draw(st.sampled_from(["", "", "?x=1", "?email=ana@example.org&topic=faq-updates"])),
        "headers": headers,
        "environ_base": {"REMOTE_ADDR": draw(client_ips)},
    }
    fields = draw(honest_forms | forms)
    kind = draw(st.sampled_from(["form", "form", "form", "multipart", "raw", "chunked", "none"]))
    if kind == "form":
        request["data"] = MultiDict(fields)
    elif kind == "multipart":
        parts = "".join(f'--B\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields)
        request["data"] = (parts + "--B--\r\n").encode("utf-8", "surrogatepass")
        request["content_type"] = "multipart/form-data; boundary=B"
    elif kind == "raw":
        request["data"] = draw(st.binary(max_size=300))
        request["content_type"] = draw(content_types)
    elif kind == "chunked":
        body = "&".join(f"{quoted(k)}={quoted(v)}" for k, v in fields).encode()
        request["input_stream"] = io.BytesIO(body)
        request["content_type"] = "application/x-www-form-urlencoded"
        request["environ_overrides"] = {"wsgi.input_terminated": True}
    return request


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, dict[str, list[str]]]]:
    """The app over a store with people in every state and one archived campaign, and good tokens."""
    folder = tmp_path_factory.mktemp("fuzz-web-")
    store: Store = open_store(f"sqlite:///{folder / 'subscribers.db'}")
    MemoryTransport.reset()
    app = make_app(store, folder)
    tokens: dict[str, list[str]] = {"confirm": [], "unsubscribe": [], "preferences": []}
    ours = links()
    for name, status in (("ana", Status.CONFIRMED), ("bo", Status.UNSUBSCRIBED), ("dee", Status.BOUNCED)):
        add_subscriber(store, f"{name}@example.org", status, tags=("faq-updates",))
    for name in ("bo", "cy"):  # someone who left and asks again; someone new
        request = request_signup(store, f"{name}@example.org")
        subscriber = find(store, f"{name}@example.org")
        assert subscriber is not None
        tokens["confirm"].append(ours.token("confirm", request, subscriber.email_key))
    for name in ("ana", "bo", "cy", "dee"):
        subscriber = find(store, f"{name}@example.org")
        assert subscriber is not None
        for purpose in ("unsubscribe", "preferences"):
            tokens[purpose].append(ours.token(purpose, subscriber.public_id, subscriber.email_key))  # type: ignore[arg-type]
    with store.session() as session:
        ledger.record_campaign(session, "fuzz-issue", "Fuzz issue", "<html><body><p>An issue</p></body></html>")
    yield app, tokens
    close_app(app)
    store.dispose()
    MemoryTransport.reset()


def check_answer(response: Any, request: dict[str, Any]) -> None:
    assert response.status_code < 500, (response.status_code, request["method"], request["path"])
    for name, value in response.headers.items():
        assert "\r" not in value and "\n" not in value, name
    body = response.get_data()
    assert PRODUCT.encode() not in body and b"LOOPEDLOOPED" not in body  # no bait ran as a template
    if response.mimetype == "text/html":
        assert b"<script>alert(1)</script>" not in body and b"<img src=x onerror" not in body
        assert "Content-Security-Policy" in response.headers


def check_email(data: bytes, recipient: str) -> None:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    names = {name.lower() for name in message}
    assert names <= EXPECTED_HEADERS, names - EXPECTED_HEADERS
    for name in ("to", "from", "subject", "reply-to"):
        assert len(message.get_all(name) or []) <= 1, name
    to = message["To"].addresses
    assert len(to) == 1 and to[0].addr_spec == recipient  # one recipient per message
    for name, value in message.items():
        assert "\n" not in str(value) and "\r" not in str(value), name
    body = data.decode("utf-8", "replace")
    assert PRODUCT not in body and "LOOPEDLOOPED" not in body
    assert all(bait not in body for bait in BAIT[2:4])  # nothing typed comes back in an email


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
@example(data=None)  # the bait, as a plain form request for every form, and as the name in a signup
def test_no_request_makes_a_server_error_and_every_email_is_clean(
    site: tuple[Flask, dict[str, list[str]]], data: st.DataObject | None
) -> None:
    app, tokens = site
    client = app.test_client()
    state: WebState = app.extensions[EXTENSION]
    if data is None:
        batch = [
            {"method": "POST", "path": path, "data": {"email": bait, "name": bait, "topic": "faq-updates"}}
            for path in ("/subscribe", "/preferences")
            for bait in BAIT
        ] + [
            {
                "method": "POST",
                "path": "/subscribe",
                "data": {"email": f"bait{n}@example.org", "name": bait, "topic": "faq-updates"},
            }
            for n, bait in enumerate(BAIT)
        ]
    else:
        batch = [data.draw(requests(tokens), label="request")]
    for request in batch:
        seen, failures = len(MemoryTransport.outbox()), state.mailer.failures
        arguments = {k: v for k, v in request.items() if k not in ("method", "path")}
        response = client.open(request["path"], method=request["method"], **arguments)
        check_answer(response, request)
        event(f"{request['method'] if request['method'] in ('GET', 'POST') else 'other'} {response.status_code}")
        settle(app)
        # The work after the answer only logs what goes wrong (newsletter/web/mailer.py), and counts it;
        # compared with the count before this request, so a failure is pinned on the request that made it.
        assert state.mailer.failures == failures, ("deferred work failed, see the log", request)
        for message in MemoryTransport.outbox()[seen:]:
            check_email(message.data, message.recipient)
            event("an email went out")
