"""The values the store keeps: its enumerations and its UTC timestamp column type.

Apart from the models so that a command that only reads (``subscribers list``) can name them without
loading SQLAlchemy's ORM: see ``newsletter.subscribers.listing``.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite has no time zones of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Status(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"

    @property
    def suppressed(self) -> bool:
        return self in SUPPRESSED


SUPPRESSED = frozenset({Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED})


class Source(enum.StrEnum):
    """How a subscriber (or a consent) arrived."""

    FORM = "form"
    IMPORT = "import"
    MANUAL = "manual"


class EventKind(enum.StrEnum):
    SUBSCRIBED = "subscribed"
    IMPORTED = "imported"
    CONFIRMED = "confirmed"
    UPDATED = "updated"
    UNSUBSCRIBED = "unsubscribed"
    RESUBSCRIBED = "resubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    EXPORTED = "exported"
    PREFERENCES = "preferences"


class OutboxState(enum.StrEnum):
    PENDING = "pending"  # to be sent (now, or after retry_after)
    SENDING = "sending"  # claimed by a run; its outcome is not recorded yet
    SENT = "sent"
    FAILED = "failed"  # refused for good, or broke the transport
    SKIPPED = "skipped"  # the subscriber left (or paused) before their turn came


class FeedbackKind(enum.StrEnum):
    """What a message that came back is."""

    HARD = "hard"  # the address or its domain does not exist
    SOFT = "soft"  # temporary, or a full mailbox
    BLOCKED = "blocked"  # refused for policy, spam or authentication: about us, not the address
    DELAYED = "delayed"  # still being tried
    COMPLAINT = "complaint"  # "report spam" (ARF, or a provider's notification)
    AUTO_REPLY = "auto_reply"  # out of office and the like
    OTHER = "other"  # none of these, e.g. a person's reply: for staff to read
