"""Double opt-in from the public form: what a signup request does, for each state an address can be in.

======================  ===============================================  ==========================
state of the address    what changes                                     email sent
======================  ===============================================  ==========================
unknown                 new pending subscriber, consent recorded         confirmation
pending                 name and topics from this request, new consent   confirmation
unsubscribed            back to pending (event RESUBSCRIBED), consent    confirmation
confirmed               nothing (a stranger must not edit a subscriber)  "you're already subscribed"
bounced, complained     nothing                                          none
erased                  nothing                                          none
======================  ===============================================  ==========================

The page shown afterwards is the same in every case (see the views). Only the newest confirmation
confirms: :func:`newsletter.subscribers.confirm` links the newest unconfirmed consent.

``subscribers.add`` is not used for a returning address: it refuses suppressed ones unless staff
pass ``resubscribe``, and its resubscribe path is a staff action. A person asking again through the
form is a different event, written out here.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
from collections.abc import Collection

from sqlalchemy.orm import Session

from .. import subscribers
from ..models import EventKind, Source, Status, Subscriber, SubscriberTag, utcnow
from ..subscribers import ConsentInfo
from .forms import SignupForm

ACTOR = "web"


class Reply(enum.Enum):
    """Which email, if any, answers a signup request."""

    CONFIRM = "confirm"
    ALREADY_SUBSCRIBED = "already-subscribed"
    NONE = "none"


@dataclasses.dataclass(frozen=True)
class SignupOutcome:
    reply: Reply
    subscriber_id: int | None = None
    email_key: str = ""


def ip_hash(secret_key: str, ip: str) -> str:
    """A keyed hash of the client's IP: spots a flood from one place, cannot be reversed or linked."""
    return hmac.new(secret_key.encode(), b"consent-ip:" + ip.encode(), hashlib.sha256).hexdigest()


def request_signup(
    session: Session,
    form: SignupForm,
    consent: ConsentInfo,
    *,
    topic_choices: Collection[str],
    secret_key: str,
) -> SignupOutcome:
    """Apply one signup request inside the caller's transaction."""
    subscriber = subscribers.find(session, form.address)
    if subscriber is None:
        if subscribers.is_erased(session, form.address, secret_key):
            return SignupOutcome(Reply.NONE)
        added = subscribers.add(
            session,
            form.address.email,
            consent=consent,
            name=form.name,
            tags=form.topics,
            secret_key=secret_key,
            actor=ACTOR,
        )
        return _confirm_reply(added.subscriber)

    status = Status(subscriber.status)
    if status is Status.CONFIRMED:
        return SignupOutcome(Reply.ALREADY_SUBSCRIBED, subscriber.id, subscriber.email_key)
    if status in (Status.BOUNCED, Status.COMPLAINED):
        return SignupOutcome(Reply.NONE)
    if status is Status.UNSUBSCRIBED:
        # Anyone can type an address into the form, so the address stays unsubscribed (and
        # suppressed against imports) until its owner confirms this new request.
        subscribers.log_event(
            session, subscriber, EventKind.SUBSCRIBED, ACTOR, method=Source.FORM.value, while_status=status.value
        )
    _update_pending(session, subscriber, form, topic_choices)
    subscribers.record_consent(session, subscriber, consent)
    return _confirm_reply(subscriber)


def _confirm_reply(subscriber: Subscriber) -> SignupOutcome:
    return SignupOutcome(Reply.CONFIRM, subscriber.id, subscriber.email_key)


def _reopen(session: Session, subscriber: Subscriber) -> None:
    """Someone who left asks again: pending until they confirm the new request, never before."""
    previous = subscriber.status
    subscriber.status = Status.PENDING.value
    subscriber.unsubscribed_at = None
    subscriber.updated_at = utcnow()
    subscribers.log_event(
        session, subscriber, EventKind.RESUBSCRIBED, ACTOR, previous_status=previous, method=Source.FORM.value
    )


def _update_pending(session: Session, subscriber: Subscriber, form: SignupForm, topic_choices: Collection[str]) -> None:
    """A pending subscriber has confirmed nothing yet, so the newest request's choices win.

    Tags outside the form's topics (set by staff or an import) are left alone.
    """
    changes: dict[str, object] = {}
    if form.name and form.name != subscriber.name:
        subscriber.name = form.name
        changes["name"] = form.name
    wanted = set(form.topics)
    current = {t.tag for t in subscriber.tags if t.tag in topic_choices}
    for tag in subscriber.tags[:]:
        if tag.tag in topic_choices and tag.tag not in wanted:
            subscriber.tags.remove(tag)
    for tag in form.topics:
        if tag not in current:
            subscriber.tags.append(SubscriberTag(tag=tag))
    if wanted != current:
        changes["topics"] = sorted(wanted)
    if changes:
        subscriber.updated_at = utcnow()
        subscribers.log_event(session, subscriber, EventKind.UPDATED, ACTOR, **changes)


def awaiting_confirmation(subscriber: Subscriber) -> bool:
    """Pending, or unsubscribed with a request made after they left: a confirm button makes sense."""
    if subscriber.status == Status.PENDING.value:
        return True
    return subscriber.status == Status.UNSUBSCRIBED.value and _asked_again(subscriber)


def confirm(session: Session, subscriber: Subscriber) -> bool:
    """The button on the confirmation page was pressed. False if there was nothing to confirm.

    For someone who had unsubscribed, only a request made after they left can bring them back.
    """
    if not awaiting_confirmation(subscriber):
        return False
    if subscriber.status == Status.UNSUBSCRIBED.value:
        _reopen(session, subscriber)
    return subscribers.confirm(session, subscriber, actor=ACTOR, via="confirm-link")


def _asked_again(subscriber: Subscriber) -> bool:
    newest = subscriber.consents[-1] if subscriber.consents else None
    left = subscriber.unsubscribed_at
    return newest is not None and newest.confirmed_at is None and (left is None or newest.given_at >= left)
