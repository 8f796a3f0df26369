"""Reading the list: who receives a campaign, access reports and counts (listings and exports are
read without the ORM, in ``listing``).

Nothing here changes a subscriber; an access report only appends the event that says it was
handed out (through :func:`newsletter.subscribers.service.log_event`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import Session

from newsletter.store.models import Erasure, EventKind, SignupRequest, Status, Subscriber, SubscriberTag
from newsletter.subscribers.listing import isoformat, summary
from newsletter.subscribers.service import log_event


def audience(tags: Iterable[str]) -> ColumnElement[bool]:
    """Who receives a campaign, as a filter on subscribers: confirmed, not paused, and (if the
    campaign names tags) holding one of them."""
    condition = and_(Subscriber.status == Status.CONFIRMED.value, Subscriber.paused.is_(False))
    tags = list(tags)
    if tags:
        tagged = exists().where(SubscriberTag.subscriber_id == Subscriber.id, SubscriberTag.tag.in_(tags))
        condition = and_(condition, tagged)
    return condition


def welcome_audience(tags: Iterable[str], *, since: datetime) -> ColumnElement[bool]:
    """Who is owed the welcome: the campaign's audience, among those who confirmed a signup request
    (pressed the link in their confirmation email) at or after ``since``."""
    confirmed_a_request = exists().where(
        SignupRequest.subscriber_id == Subscriber.id, SignupRequest.confirmed_at >= since
    )
    return and_(audience(tags), confirmed_a_request)


def access_report(session: Session, subscriber: Subscriber, *, actor: str) -> dict[str, Any]:
    """Everything stored about one person (GDPR Art. 15), and a log line saying it was handed out."""
    log_event(session, subscriber, EventKind.EXPORTED, actor)
    session.refresh(subscriber)
    report = summary(subscriber)
    report["updated_at"] = isoformat(subscriber.updated_at)
    report["consents"] = [
        {
            "method": c.method,
            "wording_version": c.wording_version,
            "origin": c.origin,
            "given_at": isoformat(c.given_at),
            "ip_hash": c.ip_hash,
            "confirmed_at": isoformat(c.confirmed_at),
            "confirm_event_id": c.confirm_event_id,
        }
        for c in subscriber.consents
    ]
    requests = session.scalars(
        select(SignupRequest).where(SignupRequest.subscriber_id == subscriber.id).order_by(SignupRequest.id)
    )
    report["signup_requests"] = [
        {
            "name": r.name,
            "topics": r.topics,
            "created_at": isoformat(r.created_at),
            "confirmed_at": isoformat(r.confirmed_at),
        }
        for r in requests
    ]
    report["events"] = [
        {"id": e.id, "kind": e.kind, "at": isoformat(e.at), "actor": e.actor, "detail": e.detail}
        for e in subscriber.events
    ]
    return report


def stats(session: Session) -> dict[str, Any]:
    by_status = dict(session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all())
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
