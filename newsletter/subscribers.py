"""Subscribers: adding, confirming, leaving, and what the GDPR asks (access and erasure).

Every function takes an open :class:`~sqlalchemy.orm.Session` and works inside the caller's transaction,
so a command or a web request decides when to commit. Each change of state appends to the subscriber's
event log; nothing here edits or deletes an event, except erasure, which deletes the person entirely.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session, selectinload

from .addresses import Address, clean_name, clean_tags, erasure_hash, normalise_address
from .errors import ConfigError, NotFound, Suppressed
from .models import (
    Consent,
    Erasure,
    Event,
    EventKind,
    Source,
    Status,
    Subscriber,
    SubscriberTag,
    utcnow,
)


@dataclass(frozen=True)
class ConsentInfo:
    """How consent was given; recorded with every new subscription."""

    method: Source
    wording_version: str
    origin: str = ""
    ip_hash: str | None = None


def find(session: Session, email: str | Address) -> Subscriber | None:
    address = email if isinstance(email, Address) else normalise_address(email)
    return session.scalar(select(Subscriber).where(Subscriber.email_key == address.key))


def get(session: Session, email: str) -> Subscriber:
    subscriber = find(session, email)
    if subscriber is None:
        raise NotFound(f"no subscriber with the address {email.strip()!r}")
    return subscriber


def log_event(
    session: Session, subscriber: Subscriber, kind: EventKind, actor: str, **detail: Any
) -> Event:
    event = Event(subscriber_id=subscriber.id, kind=kind.value, actor=actor, detail=detail, at=utcnow())
    session.add(event)
    session.flush()
    return event


def is_erased(session: Session, address: Address, secret_key: str) -> bool:
    if session.scalar(select(func.count()).select_from(Erasure)) == 0:
        return False  # no erasures yet: the secret key is not needed to know that
    if not secret_key:
        raise ConfigError(
            "the store holds erased addresses; set NEWSLETTER_SECRET_KEY so they stay suppressed"
        )
    return session.get(Erasure, erasure_hash(secret_key, address.key)) is not None


def _set_tags(session: Session, subscriber: Subscriber, tags: Iterable[str]) -> list[str]:
    """Adds tags; returns those that were new."""
    current = set(subscriber.tag_names)
    added = [t for t in tags if t not in current]
    for tag in added:
        subscriber.tags.append(SubscriberTag(tag=tag))
    return added


def _confirm(session: Session, subscriber: Subscriber, actor: str, via: str) -> Event:
    now = utcnow()
    subscriber.status = Status.CONFIRMED.value
    subscriber.confirmed_at = now
    subscriber.updated_at = now
    event = log_event(session, subscriber, EventKind.CONFIRMED, actor, via=via)
    # The newest unconfirmed consent is the one this event confirms.
    consent = session.scalar(
        select(Consent)
        .where(Consent.subscriber_id == subscriber.id, Consent.confirmed_at.is_(None))
        .order_by(Consent.id.desc())
        .limit(1)
    )
    if consent is not None:
        consent.confirmed_at = now
        consent.confirm_event_id = event.id
    return event


def record_consent(session: Session, subscriber: Subscriber, consent: ConsentInfo) -> None:
    session.add(
        Consent(
            subscriber_id=subscriber.id,
            method=consent.method.value,
            wording_version=consent.wording_version,
            origin=consent.origin,
            ip_hash=consent.ip_hash,
            given_at=utcnow(),
        )
    )
    session.flush()


@dataclass(frozen=True)
class AddResult:
    subscriber: Subscriber
    outcome: str  # "added", "updated", "unchanged" or "resubscribed"


def add(
    session: Session,
    email: str,
    *,
    consent: ConsentInfo,
    name: str = "",
    tags: Iterable[str] = (),
    confirmed: bool = False,
    resubscribe: bool = False,
    secret_key: str = "",
    actor: str = "cli",
) -> AddResult:
    """Add a subscriber, or update one who is already on the list.

    An address that left (unsubscribed, bounced, complained or erased) is refused with
    :class:`Suppressed` unless ``resubscribe`` is given: an explicit staff action, logged as such.
    """
    address = normalise_address(email)
    name = clean_name(name)
    tag_list = clean_tags(list(tags))
    subscriber = find(session, address)
    erased = subscriber is None and is_erased(session, address, secret_key)

    if subscriber is not None and Status(subscriber.status).suppressed or erased:
        why = "was erased" if erased else f"is {subscriber.status}"  # type: ignore[union-attr]
        if not resubscribe:
            raise Suppressed(
                f"{address.email} {why} and stays suppressed; "
                "only an explicit `--resubscribe` by staff brings it back"
            )
        if erased:
            session.execute(delete(Erasure).where(Erasure.address_hash == erasure_hash(secret_key, address.key)))
        else:
            assert subscriber is not None
            previous = subscriber.status
            subscriber.status = Status.PENDING.value
            subscriber.unsubscribed_at = None
            subscriber.updated_at = utcnow()
            if name:
                subscriber.name = name
            _set_tags(session, subscriber, tag_list)
            log_event(session, subscriber, EventKind.RESUBSCRIBED, actor, previous_status=previous)
            record_consent(session, subscriber, consent)
            if confirmed:
                _confirm(session, subscriber, actor, via=consent.method.value)
            return AddResult(subscriber, "resubscribed")

    if subscriber is None:
        now = utcnow()
        subscriber = Subscriber(
            email=address.email,
            email_key=address.key,
            name=name,
            status=Status.PENDING.value,
            source=consent.method.value,
            created_at=now,
            updated_at=now,
        )
        session.add(subscriber)
        _set_tags(session, subscriber, tag_list)
        session.flush()
        kind = EventKind.RESUBSCRIBED if erased else EventKind.SUBSCRIBED
        log_event(session, subscriber, kind, actor, method=consent.method.value)
        record_consent(session, subscriber, consent)
        if confirmed:
            _confirm(session, subscriber, actor, via=consent.method.value)
        return AddResult(subscriber, "resubscribed" if erased else "added")

    changes: dict[str, Any] = {}
    if name and name != subscriber.name:
        changes["name"] = name
        subscriber.name = name
    added_tags = _set_tags(session, subscriber, tag_list)
    if added_tags:
        changes["tags_added"] = added_tags
    if changes:
        subscriber.updated_at = utcnow()
        log_event(session, subscriber, EventKind.UPDATED, actor, **changes)
    if confirmed and subscriber.status == Status.PENDING.value:
        _confirm(session, subscriber, actor, via=consent.method.value)
        changes["status"] = Status.CONFIRMED.value
    return AddResult(subscriber, "updated" if changes else "unchanged")


def confirm(session: Session, subscriber: Subscriber, *, actor: str, via: str) -> bool:
    """Confirm a pending subscriber (double opt-in). Returns False if there was nothing to do."""
    if subscriber.status != Status.PENDING.value:
        return False
    _confirm(session, subscriber, actor, via)
    return True


def unsubscribe(
    session: Session,
    subscriber: Subscriber,
    *,
    actor: str,
    status: Status = Status.UNSUBSCRIBED,
    **detail: Any,
) -> bool:
    """Stop all mail to a subscriber. Idempotent: returns False if they were already suppressed."""
    if Status(subscriber.status).suppressed:
        return False
    now = utcnow()
    subscriber.status = status.value
    subscriber.updated_at = now
    if status is Status.UNSUBSCRIBED:
        subscriber.unsubscribed_at = now
    kind = {
        Status.UNSUBSCRIBED: EventKind.UNSUBSCRIBED,
        Status.BOUNCED: EventKind.BOUNCED,
        Status.COMPLAINED: EventKind.COMPLAINED,
    }[status]
    log_event(session, subscriber, kind, actor, **detail)
    return True


def forget(session: Session, email: str, *, secret_key: str) -> None:
    """Erase a person (GDPR Art. 17): delete every row about them, keep a keyed hash to stay suppressed."""
    if not secret_key:
        raise ConfigError("NEWSLETTER_SECRET_KEY is not set; it is needed to keep an erased address suppressed")
    address = normalise_address(email)
    subscriber = find(session, address)
    digest = erasure_hash(secret_key, address.key)
    if subscriber is None and session.get(Erasure, digest) is None:
        raise NotFound(f"no subscriber with the address {email.strip()!r}")
    if subscriber is not None:
        session.delete(subscriber)
    if session.get(Erasure, digest) is None:
        session.add(Erasure(address_hash=digest, erased_at=utcnow()))
    session.flush()


def query(
    session: Session, *, status: str | None = None, tag: str | None = None, batch: int = 1000
) -> Iterator[Subscriber]:
    """Subscribers, optionally by status and tag, streamed in id order."""
    statement = select(Subscriber).options(selectinload(Subscriber.tags))
    if status:
        statement = statement.where(Subscriber.status == Status(status).value)
    if tag:
        statement = statement.where(
            Subscriber.id.in_(select(SubscriberTag.subscriber_id).where(SubscriberTag.tag == tag))
        )
    return stream(session, statement, batch=batch)


def stream(session: Session, statement: Select[tuple[Subscriber]], *, batch: int = 1000) -> Iterator[Subscriber]:
    """The subscribers ``statement`` selects, in id order and in batches, so memory stays flat."""
    statement = statement.order_by(Subscriber.id)
    last_id = 0
    while True:
        rows = session.scalars(statement.where(Subscriber.id > last_id).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id
        session.expunge_all()  # keyset pagination: nothing is kept once yielded


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def summary(subscriber: Subscriber) -> dict[str, Any]:
    """The fields of an export row."""
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status,
        "tags": subscriber.tag_names,
        "source": subscriber.source,
        "created_at": _iso(subscriber.created_at),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "unsubscribed_at": _iso(subscriber.unsubscribed_at),
    }


def access_report(session: Session, subscriber: Subscriber, *, actor: str) -> dict[str, Any]:
    """Everything stored about one person (GDPR Art. 15), and a log line saying it was handed out."""
    log_event(session, subscriber, EventKind.EXPORTED, actor)
    session.refresh(subscriber)
    report = summary(subscriber)
    report["updated_at"] = _iso(subscriber.updated_at)
    report["consents"] = [
        {
            "method": c.method,
            "wording_version": c.wording_version,
            "origin": c.origin,
            "given_at": _iso(c.given_at),
            "ip_hash": c.ip_hash,
            "confirmed_at": _iso(c.confirmed_at),
            "confirm_event_id": c.confirm_event_id,
        }
        for c in subscriber.consents
    ]
    report["events"] = [
        {"id": e.id, "kind": e.kind, "at": _iso(e.at), "actor": e.actor, "detail": e.detail}
        for e in subscriber.events
    ]
    return report


def stats(session: Session) -> dict[str, Any]:
    by_status = dict(
        session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all()
    )
    counts = {s.value: by_status.get(s.value, 0) for s in Status}
    tags = dict(
        session.execute(
            select(SubscriberTag.tag, func.count()).group_by(SubscriberTag.tag).order_by(SubscriberTag.tag)
        ).all()
    )
    return {
        "total": sum(counts.values()),
        "by_status": counts,
        "erased": session.scalar(select(func.count()).select_from(Erasure)),
        "tags": tags,
    }
