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
from typing import cast

from sqlalchemy import Connection, Table, bindparam, select

from newsletter.delivery.links import Links
from newsletter.delivery.verp import Verp, read_message_id
from newsletter.errors import NewsletterError
from newsletter.feedback.classify import Finding, Reading
from newsletter.store.models import OutboxRow, OutboxState, Subscriber, UTCDateTime
from newsletter.subscribers.addresses import normalise_address

MATCH_WINDOW = timedelta(days=30)

# Built once, on the tables: each runs once or twice per message ingested.
_O = cast(Table, OutboxRow.__table__)
_S = cast(Table, Subscriber.__table__)
_ROW = (
    select(_O.c.id, _O.c.campaign_id, _O.c.subscriber_id, _S.c.email_key, _S.c.status)
    .join(_S, _S.c.id == _O.c.subscriber_id)
    .where(_O.c.id == bindparam("outbox_id"))
)
_SUBSCRIBER = select(_S.c.id, _S.c.status).where(_S.c.email_key == bindparam("key"))
_LATEST = (
    select(_O.c.id, _O.c.campaign_id)
    .where(
        _O.c.subscriber_id == bindparam("subscriber_id"),
        _O.c.state == OutboxState.SENT.value,
        _O.c.sent_at >= bindparam("since", type_=UTCDateTime()),
    )
    .order_by(_O.c.sent_at.desc(), _O.c.id.desc())
    .limit(1)
)


@dataclass(frozen=True)
class Match:
    outbox_id: int
    campaign_id: int
    subscriber_id: int
    email_key: str
    status: str  # the subscriber's, as read while matching
    by: str  # "verp", "final-recipient" or "message-id"


class Matcher:
    """Matches readings against the store. Without a secret key, only recipients can match."""

    def __init__(self, secret_key: str) -> None:
        self.verp = Verp(secret_key) if secret_key else None
        self.links = Links(secret_key, "") if secret_key else None

    def match(self, connection: Connection, reading: Reading, now: datetime) -> tuple[Match, Finding | None] | None:
        """The row the reading is about and the finding that concerns its subscriber, or None."""
        found = self._by_verp(connection, reading)
        if found is None:
            ours = self._our_rows(reading)
            found = self._by_recipient(connection, reading, ours, now) or self._by_message_id(connection, ours)
        if found is None:
            return None
        return found, _finding_for(reading, found.email_key)

    def _row(self, connection: Connection, outbox_id: int, by: str, campaign_id: int | None = None) -> Match | None:
        row = connection.execute(_ROW, {"outbox_id": outbox_id}).first()
        if row is None or (campaign_id is not None and row.campaign_id != campaign_id):
            return None
        return Match(row.id, row.campaign_id, row.subscriber_id, row.email_key, row.status, by)

    def _by_verp(self, connection: Connection, reading: Reading) -> Match | None:
        if self.verp is None:
            return None
        for address in reading.envelope:
            outbox_id = self.verp.outbox_id_in(address)
            if outbox_id is not None:
                return self._row(connection, outbox_id, "verp")
        return None

    def _our_rows(self, reading: Reading) -> list[tuple[int, int]]:
        if self.links is None:
            return []
        ids = (read_message_id(self.links, message_id) for message_id in reading.message_ids)
        return [found for found in ids if found is not None]

    def _by_message_id(self, connection: Connection, ours: list[tuple[int, int]]) -> Match | None:
        for campaign_id, outbox_id in ours:
            found = self._row(connection, outbox_id, "message-id", campaign_id)
            if found is not None:
                return found
        return None

    def _by_recipient(
        self, connection: Connection, reading: Reading, ours: list[tuple[int, int]], now: datetime
    ) -> Match | None:
        for finding in reading.findings:
            for address in finding.addresses:
                key = _key(address)
                if key is None:
                    continue
                subscriber = connection.execute(_SUBSCRIBER, {"key": key}).first()
                if subscriber is None:
                    continue
                subscriber_id = subscriber.id
                # The returned Message-ID, when it is ours and theirs, says which campaign exactly.
                for campaign_id, outbox_id in ours:
                    found = self._row(connection, outbox_id, "final-recipient", campaign_id)
                    if found is not None and found.subscriber_id == subscriber_id:
                        return found
                latest = connection.execute(
                    _LATEST, {"subscriber_id": subscriber_id, "since": now - MATCH_WINDOW}
                ).first()
                if latest is not None:
                    return Match(
                        latest.id, latest.campaign_id, subscriber_id, key, subscriber.status, "final-recipient"
                    )
        return None


def _key(address: str) -> str | None:
    """The address as the store keys subscribers. For a plain ASCII address that is its lower-case
    form; email-validator (20 µs an address) is needed only to turn an IDNA domain into Unicode."""
    if address.isascii() and "xn--" not in address.lower():
        return address.lower()
    try:
        return normalise_address(address).key
    except NewsletterError:
        return None


def _finding_for(reading: Reading, email_key: str) -> Finding | None:
    for finding in reading.findings:
        if any(_key(address) == email_key for address in finding.addresses):
            return finding
    return reading.findings[0] if reading.findings else None
