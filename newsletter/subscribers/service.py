"""Every change of a subscriber's state, whoever asks: the CLI, the web, the import, the bounces.

Every function takes an open :class:`~sqlalchemy.orm.Session` and works inside the caller's
transaction, so a command or a web request decides when to commit. Each change of state appends to
the subscriber's event log; nothing here edits or deletes an event, except erasure, which deletes
the person entirely. The bulk import (:mod:`newsletter.subscribers.importer`) writes with its own
statements for speed, but takes what to write from :func:`merge`, the same rule :func:`add` uses.

The public form's double opt-in, for each state an address can be in:

======================  ===============================================  ==========================
state of the address    what a signup request changes                    email sent
======================  ===============================================  ==========================
unknown                 new pending subscriber with this request's       confirmation
                        name and topics; a request and its consent
pending                 nothing but a new request and its consent        confirmation
unsubscribed            nothing but a new request and its consent        confirmation
confirmed               nothing (a stranger must not edit a subscriber)  "you're already subscribed"
bounced, complained     nothing                                          none
erased                  nothing                                          none
======================  ===============================================  ==========================

Anyone can type any address into the form, so a request changes nothing the address's owner has
chosen. Its confirmation link (which reaches only the owner) confirms exactly that request: its
name, its topics and its consent record, whatever other requests came before or after it.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, select, update
from sqlalchemy.orm import Session

from newsletter.errors import ConfigError, NotFound, Suppressed
from newsletter.store.models import (
    Bounce,
    Consent,
    Erasure,
    Event,
    EventKind,
    OutboxRow,
    SignupRequest,
    Source,
    Status,
    Subscriber,
    SubscriberTag,
    utcnow,
)
from newsletter.subscribers import intake
from newsletter.subscribers.addresses import Address, clean_name, clean_tags, erasure_hash, normalise_address
from newsletter.subscribers.consent import ConsentInfo, record_consent

__all__ = [
    "AddResult",
    "ConsentInfo",
    "Forgotten",
    "Known",
    "Merge",
    "Reply",
    "SignupOutcome",
    "add",
    "awaiting_confirmation",
    "complain",
    "confirm",
    "confirm_request",
    "erase_never_confirmed",
    "find",
    "find_request",
    "forget",
    "get",
    "hard_bounce",
    "is_erased",
    "log_event",
    "merge",
    "record_consent",
    "reopen",
    "request_signup",
    "set_topics",
    "soft_bounce",
    "topics_of",
    "unsubscribe",
    "update_preferences",
]


def find(session: Session, email: str | Address) -> Subscriber | None:
    address = email if isinstance(email, Address) else normalise_address(email)
    return session.scalar(select(Subscriber).where(Subscriber.email_key == address.key))


def get(session: Session, email: str) -> Subscriber:
    subscriber = find(session, email)
    if subscriber is None:
        raise NotFound(f"no subscriber with the address {email.strip()!r}")
    return subscriber


def log_event(
    session: Session, subscriber: Subscriber, kind: EventKind, actor: str, *, flush: bool = True, **detail: Any
) -> Event:
    """Appends an event; with ``flush=False`` it is written with the session's next flush (it has no
    id until then)."""
    event = Event(subscriber_id=subscriber.id, kind=kind.value, actor=actor, detail=detail, at=utcnow())
    session.add(event)
    if flush:
        session.flush()
    return event


def holds_erasures(session: Session, secret_key: str) -> bool:
    """Whether addresses must be checked against erasures: without any, the secret key is not needed
    to know none is erased; with some, a missing key is an error, or they would come back."""
    if session.scalar(select(Erasure.address_hash).limit(1)) is None:
        return False
    if not secret_key:
        raise ConfigError("the store holds erased addresses; set NEWSLETTER_SECRET_KEY so they stay suppressed")
    return True


def is_erased(session: Session, address: Address, secret_key: str) -> bool:
    if not holds_erasures(session, secret_key):
        return False
    return session.get(Erasure, erasure_hash(secret_key, address.key)) is not None


# --- the rule for adding an address that may already be on the list ---------------------------------


@dataclass(frozen=True)
class Known:
    """What the store holds about an address, as far as adding it again is concerned."""

    status: str
    name: str
    tags: frozenset[str]


@dataclass(frozen=True)
class Merge:
    """What adding (or importing) an address changes."""

    outcome: str  # "added", "updated", "unchanged" or "suppressed"
    name: str | None = None  # the name to store, None to keep the current one
    tags_added: tuple[str, ...] = ()
    confirm: bool = False


def merge(known: Known | None, *, name: str, tags: Sequence[str], confirmed: bool) -> Merge:
    """The rule for adding an address: a new one is added; a suppressed one is left alone (only
    staff's explicit resubscribe brings it back); a known one gets a new name and more tags, never
    fewer, and a pending one is confirmed if the caller vouches for the consent."""
    if known is None:
        return Merge("added", name or None, tuple(tags), confirmed)
    if Status(known.status).suppressed:
        return Merge("suppressed")
    new_name = name if name and name != known.name else None
    added = tuple(t for t in tags if t not in known.tags)
    confirm = confirmed and known.status == Status.PENDING.value
    changed = new_name is not None or bool(added) or confirm
    return Merge("updated" if changed else "unchanged", new_name, added, confirm)


# --- state changes ------------------------------------------------------------------------------------


def _add_tags(subscriber: Subscriber, tags: Iterable[str]) -> list[str]:
    """Adds tags; returns those that were new."""
    current = set(subscriber.tag_names)
    added = [t for t in tags if t not in current]
    for tag in added:
        subscriber.tags.append(SubscriberTag(tag=tag))
    return added


def unnamed_consent(subscriber_id: int) -> ColumnElement[bool]:
    """The consent a confirmation without a request naming one confirms: the subscriber's newest
    unconfirmed one. Each form request has its own consent, so vouching for an address confirms one
    of them, never a stranger's other requests as well."""
    newest = (
        select(func.max(Consent.id))
        .where(Consent.subscriber_id == subscriber_id, Consent.confirmed_at.is_(None))
        .scalar_subquery()
    )
    return Consent.id == newest


def _confirm(
    session: Session, subscriber: Subscriber, actor: str, via: str, consent: Consent | None = None, **detail: Any
) -> Event:
    now = utcnow()
    subscriber.status = Status.CONFIRMED.value
    subscriber.confirmed_at = now
    subscriber.updated_at = now
    event = log_event(session, subscriber, EventKind.CONFIRMED, actor, via=via, **detail)
    if consent is None:
        consent = session.scalar(select(Consent).where(unnamed_consent(subscriber.id)))
    if consent is not None:
        consent.confirmed_at = now
        consent.confirm_event_id = event.id
    return event


def reopen(session: Session, subscriber: Subscriber, *, actor: str, **detail: Any) -> None:
    """Someone who left is back to pending (never straight to confirmed), with an event saying so."""
    previous = subscriber.status
    subscriber.status = Status.PENDING.value
    subscriber.unsubscribed_at = None
    subscriber.updated_at = utcnow()
    log_event(session, subscriber, EventKind.RESUBSCRIBED, actor, previous_status=previous, **detail)


@dataclass(frozen=True)
class AddResult:
    subscriber: Subscriber
    outcome: str  # "added", "updated", "unchanged" or "resubscribed"
    consent: Consent | None = None  # the consent recorded, if this call recorded one


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
    """Add a subscriber, or update one who is already on the list (see :func:`merge`).

    An address that left (unsubscribed, bounced, complained or erased) is refused with
    :class:`Suppressed` unless ``resubscribe`` is given: an explicit staff action, logged as such.
    """
    address = normalise_address(email)
    name = clean_name(name)
    tag_list = clean_tags(list(tags))
    subscriber = find(session, address)
    erased = subscriber is None and is_erased(session, address, secret_key)
    known = None if subscriber is None else Known(subscriber.status, subscriber.name, frozenset(subscriber.tag_names))
    plan = merge(known, name=name, tags=tag_list, confirmed=confirmed)

    if plan.outcome == "suppressed" or erased:
        why = "was erased" if erased or subscriber is None else f"is {subscriber.status}"
        if not resubscribe:
            raise Suppressed(
                f"{address.email} {why} and stays suppressed; only an explicit `--resubscribe` by staff brings it back"
            )
        if erased:
            session.execute(delete(Erasure).where(Erasure.address_hash == erasure_hash(secret_key, address.key)))
        elif subscriber is not None:
            reopen(session, subscriber, actor=actor)
            if name:
                subscriber.name = name
            _add_tags(subscriber, tag_list)
            record = record_consent(session, subscriber, consent)
            if confirmed:
                _confirm(session, subscriber, actor, via=consent.method.value, consent=record)
            return AddResult(subscriber, "resubscribed", record)

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
        _add_tags(subscriber, tag_list)
        session.flush()
        log_event(
            session,
            subscriber,
            EventKind.RESUBSCRIBED if erased else EventKind.SUBSCRIBED,
            actor,
            method=consent.method.value,
        )
        record = record_consent(session, subscriber, consent)
        if confirmed:
            _confirm(session, subscriber, actor, via=consent.method.value, consent=record)
        return AddResult(subscriber, "resubscribed" if erased else "added", record)

    changes: dict[str, Any] = {}
    if plan.name is not None:
        changes["name"] = subscriber.name = plan.name
    if plan.tags_added:
        changes["tags_added"] = _add_tags(subscriber, plan.tags_added)
    if changes:
        subscriber.updated_at = utcnow()
        log_event(session, subscriber, EventKind.UPDATED, actor, **changes)
    if plan.confirm:
        _confirm(session, subscriber, actor, via=consent.method.value)
    return AddResult(subscriber, plan.outcome)


def confirm(session: Session, subscriber: Subscriber, *, actor: str, via: str) -> bool:
    """Confirm a pending subscriber (double opt-in). Returns False if there was nothing to do."""
    if subscriber.status != Status.PENDING.value:
        return False
    _confirm(session, subscriber, actor, via)
    return True


def topics_of(subscriber: Subscriber, topic_choices: Collection[str]) -> set[str]:
    """The subscriber's topics: their tags among the form's topic choices."""
    return {t.tag for t in subscriber.tags if t.tag in topic_choices}


def set_topics(
    subscriber: Subscriber, wanted: Collection[str], topic_choices: Collection[str]
) -> tuple[list[str], list[str]]:
    """Make the subscriber's topics exactly ``wanted``; returns (added, removed), sorted.

    Only tags among ``topic_choices`` are touched: a tag staff gave (say, from an import) is not the
    subscriber's to see or remove.
    """
    current = topics_of(subscriber, topic_choices)
    added = sorted(set(wanted) - current)
    removed = sorted(current - set(wanted))
    for tag in subscriber.tags[:]:
        if tag.tag in removed:
            subscriber.tags.remove(tag)
    for name in added:
        subscriber.tags.append(SubscriberTag(tag=name))
    return added, removed


def update_preferences(
    session: Session,
    subscriber: Subscriber,
    *,
    topics: Collection[str],
    paused: bool,
    topic_choices: Collection[str],
    actor: str = "web",
) -> dict[str, Any]:
    """Apply the preferences page; returns what changed (empty: nothing, and nothing is logged)."""
    added, removed = set_topics(subscriber, topics, topic_choices)
    changes: dict[str, Any] = {}
    if added:
        changes["topics_added"] = added
    if removed:
        changes["topics_removed"] = removed
    if paused != subscriber.paused:
        subscriber.paused = paused
        changes["paused"] = paused
    if changes:
        subscriber.updated_at = utcnow()
        log_event(session, subscriber, EventKind.PREFERENCES, actor, **changes)
    return changes


def unsubscribe(
    session: Session,
    subscriber: Subscriber,
    *,
    actor: str,
    status: Status = Status.UNSUBSCRIBED,
    **detail: Any,
) -> bool:
    """Stop all mail to a subscriber. Idempotent: returns False if they were already suppressed."""
    return _suppress(session, subscriber, status, actor, detail, flush=True)


def _suppress(
    session: Session, subscriber: Subscriber, status: Status, actor: str, detail: dict[str, Any], *, flush: bool
) -> bool:
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
    log_event(session, subscriber, kind, actor, flush=flush, **detail)
    return True


def hard_bounce(session: Session, subscriber: Subscriber, *, actor: str, flush: bool = True, **reason: Any) -> bool:
    """The address or its domain no longer takes mail: mark the subscriber bounced (suppressed).

    ``reason`` goes into the event: the status code, the diagnostic, the campaign, where the bounce
    came from. Returns False if they were already suppressed (nothing changes, nothing is logged).
    With ``flush=False`` the change is written with the session's next flush, so a batch of bounces
    goes to the database in one round (until then, refreshing the subscriber would undo it).
    """
    return _suppress(session, subscriber, Status.BOUNCED, actor, reason, flush=flush)


def complain(session: Session, subscriber: Subscriber, *, actor: str, flush: bool = True, **reason: Any) -> bool:
    """The subscriber reported a message as spam: mark them complained (suppressed).

    Returns False if they were already suppressed. ``flush`` as for :func:`hard_bounce`.
    """
    return _suppress(session, subscriber, Status.COMPLAINED, actor, reason, flush=flush)


def soft_bounce(
    session: Session,
    subscriber: Subscriber,
    *,
    soft_bounces: int,
    limit: int,
    window: int,
    actor: str,
    flush: bool = True,
    **reason: Any,
) -> bool:
    """A soft bounce was recorded, the ``soft_bounces``-th within the subscriber's last ``window`` sends.

    At ``limit`` the address is treated as dead and the subscriber marked bounced; below it, nothing
    changes (the bounce itself is kept by the caller); a limit of 0 turns the rule off. Returns True if
    the status changed. ``flush`` as for :func:`hard_bounce`.
    """
    if limit < 1 or soft_bounces < limit:
        return False
    detail = {"soft_bounces": soft_bounces, "window": window, **reason}
    return _suppress(session, subscriber, Status.BOUNCED, actor, detail, flush=flush)


@dataclass(frozen=True)
class Forgotten:
    """What erasing a person left for others to clean up outside the store."""

    # Message-IDs of the messages sent to them: the file: transport keeps a copy of each.
    message_ids: list[str] = field(default_factory=list)


def _erase(session: Session, subscribers: Sequence[Subscriber]) -> list[str]:
    """Delete these subscribers and everything about them; returns the Message-IDs they were sent."""
    ids = [s.id for s in subscribers]
    if not ids:
        return []
    mine = OutboxRow.subscriber_id.in_(ids)
    message_ids = list(session.scalars(select(OutboxRow.message_id).where(mine, OutboxRow.message_id.is_not(None))))
    # The outbox keeps its rows for the campaigns' counts, but nothing a server said about them.
    session.execute(update(OutboxRow).where(mine).values(last_error=None).execution_options(synchronize_session=False))
    # What came back about them: the records matched to them go with them (ON DELETE CASCADE); the
    # reports that name their address without being matched to them go here.
    keys = [s.email_key for s in subscribers]
    session.execute(delete(Bounce).where(Bounce.recipient.in_(keys)).execution_options(synchronize_session=False))
    for subscriber in subscribers:
        session.delete(subscriber)
    session.flush()
    return [m for m in message_ids if m]


def forget(session: Session, email: str, *, secret_key: str) -> Forgotten:
    """Erase a person (GDPR Art. 17): delete every row about them, keep a keyed hash to stay suppressed.

    Their outbox rows stay for the campaigns' counts, without their subscriber or any error text.
    Copies of their messages outside the store (the ``file:`` transport's) are the caller's to
    remove, by the returned Message-IDs: see :func:`newsletter.delivery.erasure.forget`.
    """
    if not secret_key:
        raise ConfigError("NEWSLETTER_SECRET_KEY is not set; it is needed to keep an erased address suppressed")
    address = normalise_address(email)
    subscriber = find(session, address)
    digest = erasure_hash(secret_key, address.key)
    # A form request still waiting to be applied would bring them back a moment later.
    waiting = intake.discard(session, address.key)
    if subscriber is None and not waiting and session.get(Erasure, digest) is None:
        raise NotFound(f"no subscriber with the address {email.strip()!r}")
    message_ids = _erase(session, [subscriber]) if subscriber is not None else []
    if session.get(Erasure, digest) is None:
        session.add(Erasure(address_hash=digest, erased_at=utcnow()))
    session.flush()
    return Forgotten(message_ids)


def erase_never_confirmed(session: Session, *, before: datetime, secret_key: str) -> int:
    """Erase people who never confirmed and have not asked since ``before`` (retention of pending signups).

    Someone who asked not to be mailed (unsubscribed, or complained about the confirmation email)
    is remembered as a keyed hash, so the address stays suppressed; anyone else leaves nothing.
    Returns how many were erased.
    """
    asked_since = exists().where(SignupRequest.subscriber_id == Subscriber.id, SignupRequest.created_at >= before)
    stale = session.scalars(
        select(Subscriber).where(Subscriber.confirmed_at.is_(None), Subscriber.created_at < before, ~asked_since)
    ).all()
    objected = [s for s in stale if s.status in (Status.UNSUBSCRIBED.value, Status.COMPLAINED.value)]
    if objected and not secret_key:
        raise ConfigError(
            f"{len(objected)} unconfirmed signup(s) that asked not to be mailed are due for erasure; "
            "set NEWSLETTER_SECRET_KEY so that they stay suppressed"
        )
    for subscriber in objected:
        digest = erasure_hash(secret_key, subscriber.email_key)
        if session.get(Erasure, digest) is None:
            session.add(Erasure(address_hash=digest, erased_at=utcnow()))
    _erase(session, stale)
    return len(stale)


# --- the public form's double opt-in ------------------------------------------------------------------


class Reply(enum.Enum):
    """Which email, if any, answers a signup request."""

    CONFIRM = "confirm"
    ALREADY_SUBSCRIBED = "already-subscribed"
    NONE = "none"


@dataclass(frozen=True)
class SignupOutcome:
    reply: Reply
    public_id: str = ""  # names the subscriber in links
    email_key: str = ""
    request_token: str = ""  # names the request in its confirmation link


def find_request(session: Session, token: str) -> SignupRequest | None:
    return session.scalar(select(SignupRequest).where(SignupRequest.token == token))


def _new_request(
    session: Session, subscriber: Subscriber, consent: Consent, *, name: str, topics: Sequence[str]
) -> SignupRequest:
    request = SignupRequest(
        token=secrets.token_hex(16),
        subscriber_id=subscriber.id,
        consent_id=consent.id,
        name=name,
        topics=list(topics),
        created_at=consent.given_at,
    )
    session.add(request)
    session.flush()
    return request


def request_signup(
    session: Session,
    address: Address,
    *,
    name: str,
    topics: Sequence[str],
    consent: ConsentInfo,
    secret_key: str,
    actor: str = "web",
) -> SignupOutcome:
    """Apply one request from the public form (see the table above). The page shown afterwards
    must be the same in every case; only the reply differs, and it goes by email."""
    subscriber = find(session, address)
    if subscriber is None:
        if is_erased(session, address, secret_key):
            return SignupOutcome(Reply.NONE)
        added = add(session, address.email, consent=consent, name=name, tags=topics, secret_key=secret_key, actor=actor)
        assert added.consent is not None  # a new subscriber always gets this request's consent
        request = _new_request(session, added.subscriber, added.consent, name=name, topics=topics)
        return SignupOutcome(Reply.CONFIRM, added.subscriber.public_id, added.subscriber.email_key, request.token)

    status = Status(subscriber.status)
    if status is Status.CONFIRMED:
        return SignupOutcome(Reply.ALREADY_SUBSCRIBED, subscriber.public_id, subscriber.email_key)
    if status in (Status.BOUNCED, Status.COMPLAINED):
        return SignupOutcome(Reply.NONE)
    # Pending or unsubscribed: a request of its own, which changes nothing until its link is pressed.
    # For someone who left, that also keeps the address suppressed against imports until then.
    log_event(session, subscriber, EventKind.SUBSCRIBED, actor, method=Source.FORM.value, while_status=status.value)
    record = record_consent(session, subscriber, consent)
    request = _new_request(session, subscriber, record, name=name, topics=topics)
    return SignupOutcome(Reply.CONFIRM, subscriber.public_id, subscriber.email_key, request.token)


def awaiting_confirmation(request: SignupRequest) -> bool:
    """Whether pressing this request's button would do something.

    Not once it is confirmed, nor for someone who bounced or complained since. For someone who
    unsubscribed, only a request made after they left can bring them back.
    """
    subscriber = request.subscriber
    if request.confirmed_at is not None:
        return False
    if subscriber.status in (Status.PENDING.value, Status.CONFIRMED.value):
        return True
    left = subscriber.unsubscribed_at
    return subscriber.status == Status.UNSUBSCRIBED.value and (left is None or request.created_at >= left)


def confirm_request(
    session: Session, request: SignupRequest, *, topic_choices: Collection[str], actor: str = "web"
) -> bool:
    """The button on the confirmation page was pressed: make the subscriber what this request asked
    for (its name, its topics) and confirm its consent. False if there was nothing to confirm."""
    if not awaiting_confirmation(request):
        return False
    subscriber = request.subscriber
    if subscriber.status == Status.UNSUBSCRIBED.value:
        reopen(session, subscriber, actor=actor, method=Source.FORM.value)
    changes: dict[str, Any] = {}
    if request.name and request.name != subscriber.name:
        changes["name"] = subscriber.name = request.name
    added, removed = set_topics(subscriber, request.topics, topic_choices)
    if added or removed:
        changes["topics"] = sorted(request.topics)
    _confirm(session, subscriber, actor, via="confirm-link", consent=request.consent, **changes)
    request.confirmed_at = subscriber.confirmed_at
    return True
