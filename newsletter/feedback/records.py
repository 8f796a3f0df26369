"""The kept evidence: every message that came back, what it was found to be, and what it changed.

A record is written once per message (its key is the message's Message-ID, or a hash of its bytes),
so ingesting the same message again changes nothing. The raw message is kept as evidence for
``bounce_retention_days`` (the ``raw-bounces`` rule of :mod:`newsletter.subscribers.retention`); the
classification stays, so a campaign's report and the soft-bounce policy keep their history. Erasing a
person removes every record about them (:func:`newsletter.subscribers.service.forget`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from newsletter.errors import InputError, NotFound
from newsletter.store.models import Bounce, FeedbackKind, OutboxRow, OutboxState, StartedCampaign, Subscriber

UNMATCHED = "unmatched"  # not a kind: a report that names no one we mailed
KIND_CHOICES = (*(k.value for k in FeedbackKind), UNMATCHED)
# What may change a subscriber once matched; the rest (auto-replies, anything else) never does.
REPORT_KINDS = [k.value for k in FeedbackKind if k not in (FeedbackKind.AUTO_REPLY, FeedbackKind.OTHER)]
RAW_LIMIT = 1024 * 1024  # a returned message can carry a large copy; the first MiB is evidence enough


# Ingesting runs these once per message: built once, on the table (the ORM's per-statement work
# costs more than SQLite takes to run them).
_T = cast(Table, Bounce.__table__)
_KNOWN = select(_T.c.key, _T.c.id, _T.c.kind, _T.c.subscriber_id).where(_T.c.key.in_(bindparam("keys", expanding=True)))
_ADD = insert(_T).returning(_T.c.id)
_NOTE = update(_T).where(_T.c.id == bindparam("bounce_id")).values(changed=bindparam("status"), reason=bindparam("why"))


def known(connection: Connection, keys: Sequence[str]) -> dict[str, tuple[int, str, int | None]]:
    """Which of these keys are recorded already: key -> (id, kind, subscriber id)."""
    rows = connection.execute(_KNOWN, {"keys": list(keys)})
    return {key: (bounce_id, kind, subscriber_id) for key, bounce_id, kind, subscriber_id in rows}


def add(connection: Connection, values: dict[str, Any]) -> int:
    """Record one message (the columns of :class:`Bounce` but ``id``); returns its id. The unique
    key refuses a second copy."""
    return int(connection.execute(_ADD, values).scalar_one())


def note_change(connection: Connection, bounce_id: int, status: str, reason: str) -> None:
    connection.execute(_NOTE, {"bounce_id": bounce_id, "status": status, "why": reason})


_LATEST_SENDS = (
    select(OutboxRow.id)
    .where(OutboxRow.subscriber_id == bindparam("subscriber_id"), OutboxRow.state == OutboxState.SENT.value)
    .order_by(OutboxRow.sent_at.desc(), OutboxRow.id.desc())
    .limit(bindparam("window"))
)
_SOFT_IN_WINDOW = select(func.count(func.distinct(_T.c.outbox_id))).where(
    _T.c.kind == FeedbackKind.SOFT.value, _T.c.outbox_id.in_(_LATEST_SENDS.scalar_subquery())
)


def soft_bounces_in_window(connection: Connection, subscriber_id: int, window: int) -> int:
    """How many of the subscriber's last ``window`` sends came back as a soft bounce."""
    return connection.scalar(_SOFT_IN_WINDOW, {"subscriber_id": subscriber_id, "window": window}) or 0


def get(session: Session, bounce_id: int) -> Bounce:
    bounce = session.get(Bounce, bounce_id)
    if bounce is None:
        raise NotFound(f"no bounce with the id {bounce_id}")
    return bounce


def listing(
    session: Session, *, campaign: str | None = None, kind: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest records first, optionally of one campaign (slug) and one kind (or ``unmatched``)."""
    statement = (
        select(Bounce, Subscriber.email, StartedCampaign.slug)
        .outerjoin(Subscriber, Subscriber.id == Bounce.subscriber_id)
        .outerjoin(StartedCampaign, StartedCampaign.id == Bounce.campaign_id)
        .order_by(Bounce.id.desc())
        .limit(limit)
    )
    if campaign is not None:
        campaign_id = session.scalar(select(StartedCampaign.id).where(StartedCampaign.slug == campaign))
        if campaign_id is None:
            raise NotFound(f"no campaign {campaign!r} has been sent")
        statement = statement.where(Bounce.campaign_id == campaign_id)
    if kind == UNMATCHED:
        statement = statement.where(Bounce.subscriber_id.is_(None), Bounce.kind.in_(REPORT_KINDS))
    elif kind is not None:
        if kind not in KIND_CHOICES:
            raise InputError(f"unknown kind {kind!r}; one of {', '.join(KIND_CHOICES)}")
        statement = statement.where(Bounce.kind == kind)
    return [summary(bounce, email, slug) for bounce, email, slug in session.execute(statement)]


def summary(bounce: Bounce, email: str | None, campaign: str | None) -> dict[str, Any]:
    return {
        "id": bounce.id,
        "received_at": bounce.received_at.isoformat(),
        "source": bounce.source,
        "kind": bounce.kind,
        "subscriber": email,
        "recipient": bounce.recipient,
        "campaign": campaign,
        "matched_by": bounce.matched_by,
        "status_code": bounce.status_code,
        "diagnostic": bounce.diagnostic,
        "reason": bounce.reason,
        "changed": bounce.changed,
        "subject": bounce.subject,
        "from": bounce.sender,
        "raw_kept": bounce.raw is not None,
    }


def details(session: Session, bounce: Bounce) -> dict[str, Any]:
    """One record with its raw message (decoded for reading; the bytes stay as they came)."""
    email = session.scalar(select(Subscriber.email).where(Subscriber.id == bounce.subscriber_id))
    slug = session.scalar(select(StartedCampaign.slug).where(StartedCampaign.id == bounce.campaign_id))
    data = summary(bounce, email, slug)
    data["raw"] = bounce.raw.decode("utf-8", "replace") if bounce.raw is not None else None
    return data
