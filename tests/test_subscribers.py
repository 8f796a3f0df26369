from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.errors import ConfigError, InvalidAddress, NotFound, Suppressed
from newsletter.store.engine import Store, open_store
from newsletter.store.models import Bounce, Consent, Erasure, Event, Source, Status, Subscriber, SubscriberTag
from newsletter.subscribers import listing, queries, service
from newsletter.subscribers.addresses import erasure_hash
from newsletter.subscribers.service import ConsentInfo

MANUAL = ConsentInfo(Source.MANUAL, "v1", origin="test")
KEY = "test-secret-key-0123456789abcdef-long"


def add(store: Store, email: str, **kwargs: object) -> service.AddResult:
    with store.session() as session:
        return service.add(session, email, consent=MANUAL, secret_key=KEY, **kwargs)  # type: ignore[arg-type]


def test_addresses_are_unique_whatever_their_case(store: Store) -> None:
    first = add(store, "Ann.Lee@Example.ORG", name="Ann")
    assert first.outcome == "added"
    assert first.subscriber.email == "Ann.Lee@example.org"
    again = add(store, "ann.lee@example.org")
    assert again.outcome == "unchanged"
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 1


def test_idn_domains_are_accepted(store: Store) -> None:
    assert add(store, "kai@müller.example.org").subscriber.email == "kai@müller.example.org"
    assert add(store, "kai@xn--mller-kva.example.org").outcome == "unchanged"


def test_invalid_addresses_are_refused(store: Store) -> None:
    with pytest.raises(InvalidAddress, match="not a valid email address"):
        add(store, "not an address")


def test_new_subscribers_are_pending_with_a_consent_record_and_an_event(store: Store) -> None:
    subscriber = add(store, "a@example.org", tags=["FAQ updates"]).subscriber
    with store.session() as session:
        fresh = session.get(Subscriber, subscriber.id)
        assert fresh is not None
        assert fresh.status == Status.PENDING
        assert fresh.tag_names == ["faq-updates"]
        assert [(c.method, c.wording_version, c.origin, c.confirmed_at) for c in fresh.consents] == [
            ("manual", "v1", "test", None)
        ]
        assert [e.kind for e in fresh.events] == ["subscribed"]


def test_confirmation_links_the_consent_to_the_confirming_event(store: Store) -> None:
    subscriber = add(store, "a@example.org").subscriber
    with store.session() as session:
        fresh = session.get(Subscriber, subscriber.id)
        assert fresh is not None
        assert service.confirm(session, fresh, actor="web", via="double-opt-in")
        assert not service.confirm(session, fresh, actor="web", via="double-opt-in")
    with store.session() as session:
        fresh = session.get(Subscriber, subscriber.id)
        assert fresh is not None and fresh.status == Status.CONFIRMED and fresh.confirmed_at
        consent = fresh.consents[-1]
        confirming = session.get(Event, consent.confirm_event_id)
        assert confirming is not None and confirming.kind == "confirmed"
        assert confirming.detail == {"via": "double-opt-in"}


@pytest.mark.parametrize("status", [Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED])
def test_suppressed_addresses_are_not_brought_back_by_add(store: Store, status: Status) -> None:
    subscriber = add(store, "gone@example.org", confirmed=True).subscriber
    with store.session() as session:
        fresh = session.get(Subscriber, subscriber.id)
        assert fresh is not None
        assert service.unsubscribe(session, fresh, actor="test", status=status)
        assert not service.unsubscribe(session, fresh, actor="test")  # idempotent
    with pytest.raises(Suppressed, match=f"is {status.value}"):
        add(store, "GONE@example.org", confirmed=True)
    with store.session() as session:
        assert service.get(session, "gone@example.org").status == status


def test_resubscribe_is_an_explicit_logged_staff_action(store: Store) -> None:
    add(store, "back@example.org", confirmed=True)
    with store.session() as session:
        service.unsubscribe(session, service.get(session, "back@example.org"), actor="test")
    result = add(store, "back@example.org", resubscribe=True)
    assert result.outcome == "resubscribed"
    with store.session() as session:
        fresh = service.get(session, "back@example.org")
        assert fresh.status == Status.PENDING and fresh.unsubscribed_at is None
        assert [e.kind for e in fresh.events][-1] == "resubscribed"
        assert fresh.events[-1].detail == {"previous_status": "unsubscribed"}
        assert len(fresh.consents) == 2


def test_forget_erases_everything_but_a_keyed_hash(store: Store) -> None:
    add(store, "Erase.Me@example.org", name="Erin", tags=["faq-updates"], confirmed=True)
    with store.session() as session:
        service.forget(session, "erase.me@example.org", secret_key=KEY)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
        assert session.scalar(select(func.count()).select_from(Event)) == 0
        assert session.scalar(select(func.count()).select_from(Consent)) == 0
        hashes = session.scalars(select(Erasure.address_hash)).all()
    assert hashes == [erasure_hash(KEY, "erase.me@example.org")]
    assert "erase" not in hashes[0]
    with pytest.raises(Suppressed, match="was erased"):
        add(store, "ERASE.ME@example.org")
    # forgetting twice is harmless; an unknown address is an error
    with store.session() as session:
        service.forget(session, "erase.me@example.org", secret_key=KEY)
    with pytest.raises(NotFound), store.session() as session:
        service.forget(session, "never@example.org", secret_key=KEY)
    assert add(store, "erase.me@example.org", resubscribe=True).outcome == "resubscribed"
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Erasure)) == 0


def test_forget_erases_the_bounces_matched_to_them_whatever_address_they_name(store: Store) -> None:
    # A report matched by its VERP address may name another address (a forward) or none at all.
    ivy = add(store, "ivy@example.org").subscriber.id
    other = add(store, "jo@example.org").subscriber.id
    with store.session() as session:
        session.add_all(
            [
                Bounce(key="forwarded", source="file", kind="hard", subscriber_id=ivy, recipient="ivy@forward.example"),
                Bounce(key="nameless", source="file", kind="hard", subscriber_id=ivy),
                Bounce(key="unmatched", source="file", kind="hard", recipient="ivy@example.org"),
                Bounce(key="jo's", source="file", kind="hard", subscriber_id=other, recipient="jo@example.org"),
            ]
        )
    with store.session() as session:
        service.forget(session, "ivy@example.org", secret_key=KEY)
    with store.session() as session:
        assert session.scalars(select(Bounce.key)).all() == ["jo's"]


def test_erasure_needs_the_secret_key_to_stay_enforced(store: Store) -> None:
    add(store, "x@example.org")
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY"), store.session() as session:
        service.forget(session, "x@example.org", secret_key="")
    with store.session() as session:
        service.forget(session, "x@example.org", secret_key=KEY)
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY"), store.session() as session:
        service.add(session, "y@example.org", consent=MANUAL, secret_key="")


@pytest.mark.parametrize(
    "raw",
    [
        "Ann\r\nBcc: x@example.com",
        "Ann\x00Lee",
        "Ann\u2028Lee",
        "Ann\u2029Lee",
        "Ann\x85Lee",
        "Ann\x1bLee",
        "Ann\u202eLee",
    ],
)
def test_names_never_carry_control_characters_into_the_store(store: Store, raw: str) -> None:
    add(store, "n@example.org", name=raw)
    with store.session() as session:
        name = service.get(session, "n@example.org").name
    assert not any(c in name for c in "\r\n\x00\u2028\u2029\x85\x1b\u202e")
    assert name.startswith("Ann")


def test_template_syntax_in_names_stays_literal(store: Store) -> None:
    add(store, "t@example.org", name="{{7*7}} {% raw %}")
    with store.session() as session:
        assert service.get(session, "t@example.org").name == "{{7*7}} {% raw %}"


def test_the_listing_streams_by_status_and_tag(store: Store) -> None:
    for index in range(25):
        add(store, f"p{index}@example.org", tags=["odd" if index % 2 else "even"], confirmed=index < 10)
    with store.session() as session:
        everyone = [s.email for s in listing.rows(session.connection(), batch=7)]
        confirmed_odd = [s.email for s in listing.rows(session.connection(), status="confirmed", tag="odd", batch=3)]
    assert len(everyone) == 25 and len(set(everyone)) == 25
    assert confirmed_odd == [f"p{i}@example.org" for i in (1, 3, 5, 7, 9)]


def test_a_listed_row_says_what_the_model_says(store: Store) -> None:
    """The listing reads with Core, the rest of the code through the models: the same person gives the
    same row either way (tags in order, times in UTC)."""
    add(store, "z@example.org", name="Zoë", tags=["faq-updates", "client-stories"], confirmed=True)
    add(store, "u@example.org", name="Uma")
    with store.session() as session:
        service.unsubscribe(session, service.get(session, "u@example.org"), actor="test", via="test")
    with store.session() as session:
        listed = [listing.summary(row) for row in listing.rows(session.connection())]
        modelled = [listing.summary(service.get(session, row["email"])) for row in listed]
    assert listed == modelled
    assert listed[0]["tags"] == ["client-stories", "faq-updates"]
    assert listed[0]["created_at"].endswith("+00:00") and listed[1]["unsubscribed_at"] is not None


def test_the_listing_stays_within_old_sqlites_variable_limit(tmp_path: Path) -> None:
    """SQLite before 3.32 allows 999 variables per statement: a page of the listing must not need one
    per row. Here the limit is 10 and a page holds 20."""
    store = open_store(f"sqlite:///{tmp_path / 'limit.db'}")
    try:
        for index in range(25):
            add(store, f"v{index}@example.org", tags=["faq-updates"], confirmed=index % 2 == 0)
        with store.engine.connect() as db:
            raw = db.connection.dbapi_connection
            assert isinstance(raw, sqlite3.Connection)
            raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)
            everyone = list(listing.rows(db, batch=20))
            confirmed = list(listing.rows(db, status="confirmed", tag="faq-updates", batch=20))
    finally:
        store.dispose()
    assert len(everyone) == 25 and all(row.tag_names == ["faq-updates"] for row in everyone)
    assert [row.email for row in confirmed] == [f"v{index}@example.org" for index in range(0, 25, 2)]


def test_the_listing_names_the_models_columns() -> None:
    for read, model in ((listing.SUBSCRIBERS, Subscriber.__table__), (listing.TAGS, SubscriberTag.__table__)):
        assert read.name == model.name
        for column in read.columns:
            assert type(column.type) is type(model.c[column.name].type), column.name


def test_stats_count_by_status_and_tag(store: Store) -> None:
    add(store, "a@example.org", tags=["faq-updates"], confirmed=True)
    add(store, "b@example.org", tags=["faq-updates", "client-stories"])
    with store.session() as session:
        service.forget(session, "b@example.org", secret_key=KEY)
        data = queries.stats(session)
    assert data["total"] == 1 and data["erased"] == 1
    assert data["by_status"]["confirmed"] == 1 and data["by_status"]["pending"] == 0
    assert data["tags"] == {"faq-updates": 1}
