"""One door for everything that comes back: record it once, match it, and apply the policy.

Files, Maildir folders, mbox files, standard input, an IMAP mailbox and the SES webhook all end here.
For each message:

1. **Read** it (:mod:`newsletter.feedback.classify`), outside any transaction.
2. **Once only**: a message whose key (its Message-ID, or a hash of its bytes) is already recorded
   changes nothing.
3. **Match** it (:mod:`newsletter.feedback.match`) and **record** it, with the raw message.
4. **The policy**, through :mod:`newsletter.subscribers.service`, each change an event with the
   reason (the status code and diagnostic): a hard bounce marks the subscriber ``bounced``; a
   complaint, ``complained``; a soft bounce, ``bounced`` once ``soft_bounce_limit`` of their last
   ``soft_bounce_window`` sends came back soft. Blocked, delayed, auto-replies, anything else and
   unmatched reports are recorded and change nothing.

Messages are committed in batches of 200: one that cannot be read is reported and the others are
kept, and should another run record a message of the batch at the same moment, the batch is redone
one message at a time (each in a savepoint), so nothing is recorded twice and nothing is lost.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.feedback import records
from newsletter.feedback.classify import Reading, read
from newsletter.feedback.match import MATCH_WINDOW, Matcher
from newsletter.store.engine import Store
from newsletter.store.models import FeedbackKind, StartedCampaign, Status, Subscriber, utcnow
from newsletter.subscribers import service

K = TypeVar("K")
BATCH = 200
ACTOR = "bounces"
_COUNTED = {
    FeedbackKind.HARD: "hard",
    FeedbackKind.SOFT: "soft",
    FeedbackKind.BLOCKED: "blocked",
    FeedbackKind.DELAYED: "delayed",
    FeedbackKind.COMPLAINT: "complaints",
    FeedbackKind.AUTO_REPLY: "auto_replies",
    FeedbackKind.OTHER: "other",
}


@dataclass(frozen=True)
class Ingested:
    """What became of one message."""

    bounce_id: int
    kind: FeedbackKind
    matched: bool
    duplicate: bool = False
    changed: str | None = None  # the status it gave the subscriber, if it changed one

    @property
    def recognised(self) -> bool:
        """A report, complaint or auto-reply: something the bounce mailbox may file away.
        Anything else (a person's reply) stays where staff read mail."""
        return self.kind is not FeedbackKind.OTHER


@dataclass
class IngestReport:
    """Counts of a run. Each new message counts once: by its kind, or as ``unmatched`` when it is a
    report that names no one we mailed; a message seen before counts as a duplicate."""

    processed: int = 0
    hard: int = 0
    soft: int = 0
    blocked: int = 0
    delayed: int = 0
    complaints: int = 0
    auto_replies: int = 0
    other: int = 0
    unmatched: int = 0
    duplicates: int = 0
    suppressed: int = 0  # subscribers this run marked bounced or complained
    errors: list[str] = field(default_factory=list)  # messages that could not be read

    def add(self, result: Ingested) -> None:
        self.processed += 1
        if result.duplicate:
            self.duplicates += 1
        elif not result.matched and result.kind.value in records.REPORT_KINDS:
            self.unmatched += 1
        else:
            name = _COUNTED[result.kind]
            setattr(self, name, getattr(self, name) + 1)
        if result.changed:
            self.suppressed += 1

    def merge(self, other: IngestReport) -> None:
        for item in dataclasses.fields(self):
            if item.name == "errors":
                self.errors += other.errors
            else:
                setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Ingestor:
    """Applies returned messages to the store under the settings' policy."""

    def __init__(self, store: Store, settings: Settings, *, now: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.settings = settings
        self.now = now
        self.matcher = Matcher(settings.secret_key)
        self._slugs: dict[int, str] = {}

    def run(
        self,
        messages: Iterable[tuple[K, bytes]],
        source: str,
        *,
        on_batch: Callable[[list[tuple[K, Ingested]]], None] | None = None,
    ) -> IngestReport:
        """Ingest ``(label, raw bytes)`` pairs. ``on_batch`` sees each batch's results once committed."""
        report = IngestReport()
        iterator = iter(messages)
        while chunk := list(itertools.islice(iterator, BATCH)):
            readings: list[tuple[K, bytes, Reading]] = []
            for label, raw in chunk:
                try:
                    readings.append((label, raw, read(raw)))
                except Exception as exc:  # noqa: BLE001 - untrusted input must not stop the others
                    report.errors.append(f"{label}: cannot be read ({type(exc).__name__}: {exc})")
            done = self._commit(readings, source)
            for _, result in done:
                report.add(result)
            if on_batch is not None:
                on_batch(done)
        return report

    def _commit(self, readings: list[tuple[K, bytes, Reading]], source: str) -> list[tuple[K, Ingested]]:
        """A batch in one transaction; should another run record one of them at the same moment, the
        batch is redone one message at a time."""
        try:
            with self.store.session() as session:
                return self._batch(session, readings, source)
        except IntegrityError:
            done = []
            for label, raw, reading in readings:
                with self.store.session() as session:
                    done.append((label, self.apply(session, reading, raw, source)))
            return done

    def _batch(
        self, session: Session, readings: list[tuple[K, bytes, Reading]], source: str
    ) -> list[tuple[K, Ingested]]:
        """Record the batch, then apply the policy to what may change someone, their rows loaded
        in one query."""
        connection = session.connection()
        seen = {key: _seen(*row) for key, row in records.known(connection, [r.key for _, _, r in readings]).items()}
        done: list[tuple[K, Ingested]] = []
        to_act: list[tuple[int, BounceRecord]] = []
        for label, raw, reading in readings:
            result = seen.get(reading.key)
            if result is None:
                result, bounce = self._record(connection, reading, raw, source)
                seen[reading.key] = dataclasses.replace(result, duplicate=True)
                if bounce is not None:
                    to_act.append((len(done), bounce))
            done.append((label, result))
        ids = {bounce.subscriber_id for _, bounce in to_act}
        if ids:
            session.scalars(select(Subscriber).where(Subscriber.id.in_(ids))).all()  # into the identity map
        for index, bounce in to_act:
            changed = self._act(session, bounce, source)
            if changed:
                label, result = done[index]
                done[index] = (label, dataclasses.replace(result, changed=changed))
        return done

    def apply(self, session: Session, reading: Reading, raw: bytes, source: str) -> Ingested:
        """Record one reading and apply the policy, in a savepoint of the caller's transaction."""
        connection = session.connection()
        existing = records.known(connection, [reading.key]).get(reading.key)
        if existing is not None:
            return _seen(*existing)
        try:
            with session.begin_nested():
                result, bounce = self._record(session.connection(), reading, raw, source)
                changed = self._act(session, bounce, source) if bounce is not None else None
                session.flush()
        except IntegrityError:
            # Another run recorded the same message a moment ago.
            existing = records.known(connection, [reading.key]).get(reading.key)
            if existing is None:
                raise
            return _seen(*existing)
        return dataclasses.replace(result, changed=changed)

    def _record(
        self, connection: Connection, reading: Reading, raw: bytes, source: str
    ) -> tuple[Ingested, BounceRecord | None]:
        """Match and record one reading; the record comes back too if the policy may act on it."""
        now = self.now()
        found = self.matcher.match(connection, reading, now)
        match, finding = found if found is not None else (None, None)
        if finding is None and reading.findings:
            finding = reading.findings[0]  # unmatched, but what it says is still evidence
        kind = finding.kind if finding is not None else reading.kind
        recipient = finding.address if finding is not None else None
        reason = finding.reason if finding else reading.reason
        if match is None and reading.is_report:
            reason += (
                f"; unmatched: it names no one we mailed in the last {MATCH_WINDOW.days} days, so it changes nothing"
            )
        bounce = BounceRecord(
            key=reading.key,
            received_at=now,
            source=source,
            kind=kind.value,
            subscriber_id=match.subscriber_id if match else None,
            campaign_id=match.campaign_id if match else None,
            outbox_id=match.outbox_id if match else None,
            matched_by=match.by if match else None,
            recipient=(match.email_key if match else recipient.lower() if recipient else None),
            status_code=finding.status_code if finding else None,
            diagnostic=finding.diagnostic if finding else "",
            reason=reason,
            subject=reading.subject,
            sender=reading.sender,
            raw=raw[: records.RAW_LIMIT],
        )
        bounce.id = records.add(connection, {k: v for k, v in vars(bounce).items() if k != "id"})
        result = Ingested(bounce.id, kind, match is not None)
        acts = kind in (FeedbackKind.HARD, FeedbackKind.SOFT, FeedbackKind.COMPLAINT)
        if match is None or not acts or Status(match.status).suppressed:
            return result, None
        return result, bounce

    def _act(self, session: Session, bounce: BounceRecord, source: str) -> str | None:
        """The policy for one recorded bounce; the status it set, if any (noted on the record too)."""
        changed = self._policy(session, bounce, FeedbackKind(bounce.kind), source)
        if changed:
            records.note_change(session.connection(), bounce.id, changed, bounce.reason)
        return changed

    def _policy(self, session: Session, bounce: BounceRecord, kind: FeedbackKind, source: str) -> str | None:
        settings = self.settings
        if bounce.subscriber_id is None:
            return None
        if kind is FeedbackKind.SOFT:
            window = settings.soft_bounce_window
            # Below the limit service.soft_bounce changes nothing: the bounce is recorded, and counted next time.
            count = records.soft_bounces_in_window(session.connection(), bounce.subscriber_id, window)
        # Loaded with the batch; no autoflush: the batch's changes are written together at commit.
        with session.no_autoflush:
            subscriber = session.get(Subscriber, bounce.subscriber_id)
        if subscriber is None:
            return None
        why: dict[str, Any] = {
            "via": source,
            "bounce": bounce.id,
            "campaign": self._slug(session, bounce.campaign_id),
            "status_code": bounce.status_code,
            "diagnostic": bounce.diagnostic[:500],
            "reason": bounce.reason,
        }
        if kind is FeedbackKind.HARD:
            changed = service.hard_bounce(session, subscriber, actor=ACTOR, flush=False, **why)
        elif kind is FeedbackKind.COMPLAINT:
            changed = service.complain(session, subscriber, actor=ACTOR, flush=False, **why)
        else:
            changed = service.soft_bounce(
                session,
                subscriber,
                soft_bounces=count,
                limit=settings.soft_bounce_limit,
                window=window,
                actor=ACTOR,
                flush=False,
                **why,
            )
            if changed:
                bounce.reason += f"; {count} soft bounces in the last {window} sends"
        if not changed:
            return None
        bounce.reason += f"; marked {subscriber.status}"
        return subscriber.status

    def _slug(self, session: Session, campaign_id: int | None) -> str | None:
        if campaign_id is None:
            return None
        if campaign_id not in self._slugs:
            campaign = session.get(StartedCampaign, campaign_id)
            self._slugs[campaign_id] = campaign.slug if campaign is not None else ""
        return self._slugs[campaign_id] or None


def _seen(bounce_id: int, kind: str, subscriber_id: int | None) -> Ingested:
    return Ingested(bounce_id, FeedbackKind(kind), subscriber_id is not None, duplicate=True)


@dataclass
class BounceRecord:
    """The columns of one new record (written with a plain INSERT: the ORM's unit of work costs more
    per message than everything else ingesting does)."""

    key: str
    received_at: datetime
    source: str
    kind: str
    subscriber_id: int | None
    campaign_id: int | None
    outbox_id: int | None
    matched_by: str | None
    recipient: str | None
    status_code: str | None
    diagnostic: str
    reason: str
    subject: str
    sender: str
    raw: bytes
    id: int = 0
