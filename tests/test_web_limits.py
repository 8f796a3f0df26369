"""Limits of the public forms: rate limits per source and per address, and request bodies over the
limit, these over real HTTP (Werkzeug's server on 127.0.0.1, chunked bodies) as well as through
Flask's test client. On SQLite and PostgreSQL, with the memory transport."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.errors import ConfigError
from newsletter.feedback.webhooks import BODY_LIMIT
from newsletter.store.engine import Store
from newsletter.store.models import Status
from newsletter.web import RateLimits, close_app
from newsletter.web.forms import MAX_FIELDS
from newsletter.web.ratelimit import network
from tests.support.web import (
    add_subscriber,
    find,
    make_app,
    post_chunked,
    sent,
    serving,
    settle,
    snapshot,
    subscribe,
    token_path,
)

FORM = "application/x-www-form-urlencoded"
OFF = {"per_ip": "", "per_address": "", "per_address_total": ""}


@pytest.fixture
def limited(store: Store, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Makes the app with the given rate limits (the others off)."""
    apps: list[Flask] = []
    MemoryTransport.reset()

    def make(**limits: str) -> Flask:
        apps.append(make_app(store, tmp_path, rate_limits=RateLimits(**{**OFF, **limits})))
        return apps[-1]

    yield make
    for app in apps:
        close_app(app)
    MemoryTransport.reset()


# --- per source ---------------------------------------------------------------------------------------


def test_too_many_requests_from_one_source_get_a_429(limited: Callable[..., Flask]) -> None:
    app = limited(per_ip="3/minute")
    client = app.test_client()
    codes = [subscribe(client, f"reader{n}@example.org").status_code for n in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = subscribe(client, "reader9@example.org", website="bot")  # the honeypot counts too
    assert refused.status_code == 429 and b"Please wait" in refused.data
    assert int(refused.headers["Retry-After"]) > 0
    assert subscribe(client, "reader9@example.org", ip="192.0.2.99").status_code == 200


def test_a_whole_ipv6_64_counts_as_one_source(limited: Callable[..., Flask]) -> None:
    app = limited(per_ip="3/minute")
    client = app.test_client()
    # 50 addresses of one /64, as one host can have: one allowance between them.
    codes = [
        subscribe(client, f"six{n}@example.org", ip=f"2001:db8:1:2:{n:x}:{n * 7:x}::{n + 1:x}").status_code
        for n in range(50)
    ]
    assert codes == [200] * 3 + [429] * 47
    assert subscribe(client, "other@example.org", ip="2001:db8:1:3::1").status_code == 200  # the next /64
    # An IPv4 address and its IPv4-mapped IPv6 form are one source; IPv4 neighbours are not.
    assert [subscribe(client, f"v4{n}@example.org", ip="198.51.100.7").status_code for n in range(3)] == [200] * 3
    assert subscribe(client, "v4x@example.org", ip="::ffff:198.51.100.7").status_code == 429
    assert subscribe(client, "v4y@example.org", ip="198.51.100.8").status_code == 200


def test_sources_are_networks() -> None:
    assert network("2001:db8:1:2:3:4:5:6") == network("2001:db8:1:2::9") == "2001:db8:1:2::/64"
    assert network("::ffff:192.0.2.1") == "192.0.2.1" and network("192.0.2.1") != network("192.0.2.2")
    assert network("not an address") == "not an address"


# --- per address and source ---------------------------------------------------------------------------


def test_a_stranger_cannot_use_up_someones_own_signups(limited: Callable[..., Flask], store: Store) -> None:
    app = limited(per_address="2/hour", per_address_total="10/hour")
    client = app.test_client()
    spellings = ["ana@example.org", "ANA@example.org", " Ana@Example.ORG ", "ana@example.org"]
    stranger = [subscribe(client, a, ip="203.0.113.5") for a in spellings]
    assert {r.status_code for r in stranger} == {200}
    assert len(sent(app)) == 2  # the stranger's allowance, whatever the spelling
    own = subscribe(client, "ana@example.org", ip="192.0.2.44")  # the owner, from home
    assert own.status_code == 200 and len(sent(app)) == 3 and sent(app)[-1].recipient == "ana@example.org"


def test_over_the_address_limit_the_answer_is_the_same_and_nothing_is_done(
    limited: Callable[..., Flask], store: Store
) -> None:
    """A 429 would tell a stranger that someone asked for the address lately; the page cannot."""
    app = limited(per_address="2/hour", per_address_total="10/hour")
    for state in (Status.CONFIRMED, Status.PENDING, Status.BOUNCED):
        add_subscriber(store, f"{state}@example.org", state)
    client = app.test_client()
    for address in ("new@example.org", "confirmed@example.org", "pending@example.org", "bounced@example.org"):
        within = [subscribe(client, address) for _ in range(2)]
        before, mails = snapshot(store), len(sent(app))
        over = subscribe(client, address)
        assert snapshot(store) == before and len(sent(app)) == mails, address  # dropped whole
        assert {r.status_code for r in [*within, over]} == {200}
        assert over.data == within[0].data
        assert sorted(over.headers.keys()) == sorted(within[0].headers.keys())


def test_many_sources_together_reach_a_ceiling(limited: Callable[..., Flask]) -> None:
    app = limited(per_address="1/hour", per_address_total="3/hour")
    client = app.test_client()
    codes = [subscribe(client, "ana@example.org", ip=f"203.0.113.{n}").status_code for n in range(6)]
    assert codes == [200] * 6 and len(sent(app)) == 3


def test_a_ceiling_that_one_source_could_reach_is_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a stranger could use it up"):
        make_app(store, tmp_path, rate_limits=RateLimits(per_address="3/hour", per_address_total="20/day"))


# --- request bodies over the limit -----------------------------------------------------------------------


def too_many_fields(first: bytes) -> bytes:
    return first + b"&" + b"&".join(b"f%d=1" % n for n in range(1001))


def multipart(fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n' for name, value in fields
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


def test_a_chunked_body_over_the_limit_is_a_413_and_changes_nothing(app: Flask, store: Store) -> None:
    ana = add_subscriber(store, "ana@example.org", tags=("faq-updates",))
    with serving(app) as port:
        body = b"action=save&topic=clinic-news&paused=1&x=" + b"a" * 10_000_000  # 10 MB
        status, _, page = post_chunked(port, token_path("preferences", ana), body)
        assert status == 413 and b"more than this form accepts" in page
        # Just over the form's 16 KiB, and just over the largest limit (the SES webhook's).
        for size in (16 * 1024 + 1, BODY_LIMIT + 1):
            status, _, _ = post_chunked(port, token_path("preferences", ana), body[:size])
            assert status == 413, size
        status, _, _ = post_chunked(port, "/webhooks/ses", b"{" + b" " * BODY_LIMIT + b"}", "text/plain")
        assert status == 413
    after = find(store, "ana@example.org")
    assert after is not None and after.tag_names == ["faq-updates"] and not after.paused


def test_a_chunked_body_within_the_limit_is_read_whole(app: Flask, store: Store) -> None:
    add_subscriber(store, "ana@example.org", tags=("faq-updates",))
    ana = add_subscriber(store, "bo@example.org", tags=("faq-updates",))
    with serving(app) as port:
        padding = b"&note=" + b"n" * 12_000  # most of the 16 KiB, in many chunks
        status, _, _ = post_chunked(
            port, token_path("preferences", ana), b"topic=clinic-news" + padding + b"&action=save"
        )
        assert status == 200
        status, _, _ = post_chunked(port, "/subscribe", b"email=cy%40example.org&topic=faq-updates", piece=7)
        assert status == 200
    settle(app)
    bo, cy = find(store, "bo@example.org"), find(store, "cy@example.org")
    assert bo is not None and bo.tag_names == ["clinic-news"]  # the field after the padding was read
    assert cy is not None and cy.status == "pending"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
@pytest.mark.parametrize("where", ["first", "last"])
def test_too_many_fields_is_a_413_and_creates_nobody(app: Flask, store: Store, encoding: str, where: str) -> None:
    fields = [("email", "cy@example.org"), ("topic", "faq-updates")]
    padding = [(f"f{n}", "1") for n in range(1001)]
    ordered = fields + padding if where == "first" else padding + fields
    if encoding == "urlencoded":
        body, content_type = "&".join(f"{k}={v}" for k, v in ordered).encode(), FORM
    else:
        body, content_type = multipart(ordered)
    with serving(app) as port:
        status, _, page = post_chunked(port, "/subscribe", body, content_type)
    assert status == 413 and b"more than this form accepts" in page
    client = app.test_client()
    assert client.post("/subscribe", data=body, content_type=content_type).status_code == 413  # with a length
    settle(app)
    assert find(store, "cy@example.org") is None and sent(app) == []


def test_exactly_the_field_limit_is_accepted(client: FlaskClient, store: Store) -> None:
    fields = {"email": "cy@example.org", "topic": "faq-updates"} | {f"f{n}": "1" for n in range(MAX_FIELDS - 2)}
    assert client.post("/subscribe", data=fields, content_type=FORM).status_code == 200


def test_the_test_clients_streamed_bodies_are_held_to_the_limit_too(client: FlaskClient, store: Store) -> None:
    ana = add_subscriber(store, "ana@example.org", tags=("faq-updates",))
    response = client.post(
        token_path("preferences", ana),
        input_stream=io.BytesIO(b"action=save&topic=clinic-news&x=" + b"a" * 100_000),
        content_type=FORM,
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    after = find(store, "ana@example.org")
    assert after is not None and after.tag_names == ["faq-updates"]
