"""From a reading to the message it is about: which outbox row, so which campaign and subscriber.

In this order, the first that finds a row wins:

1. **VERP**: a token in an address the message was delivered to (or in the original's Return-Path,
   or an ARF's Original-Mail-From). Signed, so it cannot be forged.
2. **The report's recipient** (a DSN's Final-Recipient or Original-Recipient, a text bounce's failed
   address, an ARF's Original-Rcpt-To): relays often rewrite the envelope, so a report that lost its
   VERP still counts, but only for a subscriber we sent a message to within the last 30 days. Anyone
   can write a report, and one about somebody we have not mailed must not be able to suppress them.
3. **The original Message-ID** in the returned headers (or In-Reply-To): ours carry a keyed tag.

Never an address that merely appears in the text: :mod:`newsletter.feedback.classify` only names
addresses from a report's fields or a bounce's own words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.delivery.links import Links
from newsletter.delivery.verp import Verp, read_message_id
from newsletter.errors import NewsletterError
from newsletter.feedback.classify import Finding, Reading
from newsletter.store.models import OutboxRow, OutboxState, Subscriber
from newsletter.subscribers.addresses import normalise_address

MATCH_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class Match:
    outbox_id: int
    campaign_id: int
    subscriber_id: int
    email_key: str
    by: str  # "verp", "final-recipient" or "message-id"


class Matcher:
    """Matches readings against the store. Without a secret key, only recipients can match."""

    def __init__(self, secret_key: str, *, window: timedelta = MATCH_WINDOW) -> None:
        self.verp = Verp(secret_key) if secret_key else None
        self.links = Links(secret_key, "") if secret_key else None
        self.window = window

    def match(self, session: Session, reading: Reading, now: datetime) -> tuple[Match, Finding | None] | None:
        """The row the reading is about and the finding that concerns its subscriber, or None."""
        found = self._by_verp(session, reading) or self._by_recipient(session, reading, now)
        found = found or self._by_message_id(session, reading)
        if found is None:
            return None
        return found, _finding_for(reading, found.email_key)

    def _row(self, session: Session, outbox_id: int, by: str, campaign_id: int | None = None) -> Match | None:
        row = session.execute(
            select(OutboxRow.id, OutboxRow.campaign_id, OutboxRow.subscriber_id, Subscriber.email_key)
            .join(Subscriber, Subscriber.id == OutboxRow.subscriber_id)
            .where(OutboxRow.id == outbox_id)
        ).first()
        if row is None or (campaign_id is not None and row.campaign_id != campaign_id):
            return None
        return Match(row.id, row.campaign_id, row.subscriber_id, row.email_key, by)

    def _by_verp(self, session: Session, reading: Reading) -> Match | None:
        if self.verp is None:
            return None
        for address in reading.envelope:
            outbox_id = self.verp.outbox_id_in(address)
            if outbox_id is not None:
                return self._row(session, outbox_id, "verp")
        return None

    def _our_rows(self, reading: Reading) -> list[tuple[int, int]]:
        if self.links is None:
            return []
        ids = (read_message_id(self.links, message_id) for message_id in reading.message_ids)
        return [found for found in ids if found is not None]

    def _by_message_id(self, session: Session, reading: Reading) -> Match | None:
        for campaign_id, outbox_id in self._our_rows(reading):
            found = self._row(session, outbox_id, "message-id", campaign_id)
            if found is not None:
                return found
        return None

    def _by_recipient(self, session: Session, reading: Reading, now: datetime) -> Match | None:
        for finding in reading.findings:
            for address in finding.addresses:
                key = _key(address)
                if key is None:
                    continue
                subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.email_key == key))
                if subscriber_id is None:
                    continue
                # The returned Message-ID, when it is ours and theirs, says which campaign exactly.
                for campaign_id, outbox_id in self._our_rows(reading):
                    found = self._row(session, outbox_id, "final-recipient", campaign_id)
                    if found is not None and found.subscriber_id == subscriber_id:
                        return found
                latest = session.execute(
                    select(OutboxRow.id, OutboxRow.campaign_id)
                    .where(
                        OutboxRow.subscriber_id == subscriber_id,
                        OutboxRow.state == OutboxState.SENT.value,
                        OutboxRow.sent_at >= now - self.window,
                    )
                    .order_by(OutboxRow.sent_at.desc(), OutboxRow.id.desc())
                    .limit(1)
                ).first()
                if latest is not None:
                    return Match(latest.id, latest.campaign_id, subscriber_id, key, "final-recipient")
        return None


def _key(address: str) -> str | None:
    try:
        return normalise_address(address).key
    except NewsletterError:
        return None


def _finding_for(reading: Reading, email_key: str) -> Finding | None:
    for finding in reading.findings:
        if any(_key(address) == email_key for address in finding.addresses):
            return finding
    return reading.findings[0] if reading.findings else None
