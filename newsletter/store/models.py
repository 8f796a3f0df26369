"""The store's tables, as SQLAlchemy 2.x typed models. The same models run on SQLite and PostgreSQL.

Schema changes go through an Alembic migration in ``newsletter/store/migrations/versions``; a test checks that
the migrations and these models agree.
"""

from __future__ import annotations

import base64
import enum
import secrets
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named here too, where most code looks for them; they live in ``values`` so that reading the list
# needs no ORM.
from newsletter.store.values import SUPPRESSED as SUPPRESSED
from newsletter.store.values import EventKind as EventKind
from newsletter.store.values import FeedbackKind as FeedbackKind
from newsletter.store.values import OutboxState as OutboxState
from newsletter.store.values import Source as Source
from newsletter.store.values import Status as Status
from newsletter.store.values import UTCDateTime as UTCDateTime
from newsletter.store.values import utcnow as utcnow

PUBLIC_ID_LENGTH = 26  # 128 random bits in unpadded base32


def new_public_id() -> str:
    """A subscriber's name in links: 128 random bits, lower-case base32 (letters and digits only).

    Links name people by it, never by their row id, which counts the list: ``/unsubscribe/20-...``
    told anyone holding a link roughly how many had signed up before them.
    """
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


def _check_in(column: str, enum_cls: type[enum.StrEnum]) -> CheckConstraint:
    values = ", ".join(f"'{member.value}'" for member in enum_cls)
    return CheckConstraint(f"{column} IN ({values})", name=f"{column}_valid")


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (_check_in("status", Status), _check_in("source", Source))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The name links use (see new_public_id); the row id never leaves the store.
    public_id: Mapped[str] = mapped_column(String(PUBLIC_ID_LENGTH), unique=True, index=True, default=new_public_id)
    email: Mapped[str] = mapped_column(String(320))
    # The normalised address folded to lower case: uniqueness is case-insensitive on every backend.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING.value)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    # Chosen on the preferences page: no campaign mail while paused, without leaving the list.
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    tags: Mapped[list[SubscriberTag]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="SubscriberTag.tag"
    )
    consents: Mapped[list[Consent]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="Consent.id"
    )
    events: Mapped[list[Event]] = relationship(cascade="all, delete-orphan", passive_deletes=True, order_by="Event.id")

    @property
    def tag_names(self) -> list[str]:
        return [t.tag for t in self.tags]


class SubscriberTag(Base):
    __tablename__ = "subscriber_tags"

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class Event(Base):
    """One line of a subscriber's append-only history."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_subscriber_id", "subscriber_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Consent(Base):
    """When and how a subscriber agreed, to which wording, and what confirmed it."""

    __tablename__ = "consents"
    __table_args__ = (
        Index("ix_consents_subscriber_id", "subscriber_id"),
        _check_in("method", Source),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(16))
    wording_version: Mapped[str] = mapped_column(String(64))
    given_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Where it was given: the form's URL, the import file's name, or the staff member's note.
    origin: Mapped[str] = mapped_column(Text, default="")
    # A keyed hash, never the address itself: enough to spot abuse, useless for tracking.
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None]
    confirm_event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))


class SignupRequest(Base):
    """One request from the signup form, waiting for the link in its confirmation email.

    Each request keeps its own name, topics and consent record, so that a link confirms exactly the
    request it was sent for: someone else typing the same address into the form changes nothing
    until their own link is pressed (and that link goes to the address's owner).
    """

    __tablename__ = "signup_requests"
    __table_args__ = (Index("ix_signup_requests_subscriber_id", "subscriber_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Random, unguessable: the request's name in its confirmation link (never a sequential id).
    token: Mapped[str] = mapped_column(String(32), unique=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    consent_id: Mapped[int] = mapped_column(ForeignKey("consents.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]

    subscriber: Mapped[Subscriber] = relationship()
    consent: Mapped[Consent] = relationship()


class SignupIntake(Base):
    """A request from a public form, kept from the moment it is answered until it is applied.

    The signup page answers after one insert here, the same work whatever the address's state; the
    state-dependent part (looking the address up, recording the request, the email) runs after the
    answer, on the web's mail thread, which deletes the row in the transaction that applies it. So
    the answer's timing tells nothing, and a 200 still means the request is kept: a row left by a
    process that died is applied when the web endpoint starts again.
    """

    __tablename__ = "signup_intake"
    __table_args__ = (Index("ix_signup_intake_email_key", "email_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))  # so that erasing the address erases the row
    name: Mapped[str] = mapped_column(String(200), default="")
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    wording_version: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(Text, default="")
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    # Keyed digest of the sender's network (IPv4 address or IPv6 /64): the per-address rate limit
    # counts per address and source, and it is applied with the request, after the answer.
    source: Mapped[str] = mapped_column(String(64), default="")


class Erasure(Base):
    """An address erased under GDPR Art. 17, kept only as an HMAC so its suppression still holds."""

    __tablename__ = "erasures"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)


class StartedCampaign(Base):
    """A campaign that has started sending: its audience is fixed in the outbox from then on."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(998))
    # The web version for the archive: the campaign's HTML with no personal data in it.
    web_html: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class CarriedFaqEntry(Base):
    """An FAQ entry as a started campaign carried it: what its subscribers were told.

    Kept with the outbox when the audience is fixed, so ``newsletter faq changes`` can tell which
    answers changed since. The answer is public text, kept whole for the word-level diff.
    """

    __tablename__ = "campaign_faq_entries"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    faq_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(80))
    answer: Mapped[str] = mapped_column(Text)


class OutboxRow(Base):
    """One message of one campaign to one subscriber: the send ledger."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id"),
        # With the id last, PostgreSQL claims the oldest pending rows by walking the index in order and
        # stops at the batch size, instead of sorting every pending row for each claim (22 ms against
        # 1 ms per claim at 20,000 pending). SQLite's index entries end with the rowid anyway.
        Index("ix_outbox_campaign_id_state_id", "campaign_id", "state", "id"),
        _check_in("state", OutboxState),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # SET NULL: erasing a person keeps the campaign's counts but nothing about them.
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default=OutboxState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    retry_after: Mapped[datetime | None]
    # A run that has spent its attempts on this row leaves it pending for the next run.
    deferred_by: Mapped[str | None] = mapped_column(String(64))
    # Set (and committed) just before the message is handed to the transport: after a crash, only
    # such a row may have gone out, so only it is reported as possibly duplicated.
    in_flight: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    possibly_duplicated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    message_id: Mapped[str | None] = mapped_column(String(255))
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]


class SendRun(Base):
    """A process sending (part of) a campaign; its heartbeat tells others whether its claims are live."""

    __tablename__ = "send_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class SendPace(Base):
    """A campaign's shared pace: the next free sending slot, for every worker on every machine.

    Workers reserve slots by moving ``next_at`` on (seconds since the epoch, by the database's clock on
    PostgreSQL), so N workers at ``--rate R`` send R messages a second together, not N times R.
    """

    __tablename__ = "send_pace"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float, default=0.0)


class Lease(Base):
    """A named lock that expires: held by one process at a time, taken over once it runs out."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]


# Bounce handling finds a subscriber's latest sends; the (campaign, subscriber) key cannot serve that.
Index("ix_outbox_subscriber_id", OutboxRow.subscriber_id)


class Bounce(Base):
    """One message that came back to the bounce address (or a provider's notification), what it was
    found to be, whom it was matched to, and the raw message as evidence for a retention period."""

    __tablename__ = "bounces"
    __table_args__ = (
        Index("ix_bounces_subscriber_id", "subscriber_id"),
        Index("ix_bounces_campaign_id_kind", "campaign_id", "kind"),
        Index("ix_bounces_outbox_id", "outbox_id"),
        Index("ix_bounces_received_at", "received_at"),
        _check_in("kind", FeedbackKind),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # SHA-256 of the message's Message-ID (or of its bytes when it has none): the same message
    # ingested twice is recognised and changes nothing the second time.
    key: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(16))  # file, stdin, imap, ses
    kind: Mapped[str] = mapped_column(String(16))
    # CASCADE: erasing a person erases what came back about them.
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    matched_by: Mapped[str | None] = mapped_column(String(24))  # verp, final-recipient, message-id
    # The address the report names, lower-cased: how an unmatched report is found again for erasure.
    recipient: Mapped[str | None] = mapped_column(String(320), index=True)
    status_code: Mapped[str | None] = mapped_column(String(16))
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")  # why it is this kind, and what it changed
    subject: Mapped[str] = mapped_column(String(200), default="")
    sender: Mapped[str] = mapped_column(String(320), default="")  # the From: address
    changed: Mapped[str | None] = mapped_column(String(16))  # the subscriber status it set, if any
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)  # removed after bounce_retention_days
