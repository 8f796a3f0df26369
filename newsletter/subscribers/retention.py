"""Retention: keep personal data only while it is needed, then remove it.

The policy is a list of rules, each with the setting that says how long its data is kept. Applying
it is idempotent and cheap when there is nothing to do, so ``send-due`` applies it on every run
and ``newsletter retention`` does so on demand (``--dry-run`` counts without changing anything).
A rule whose setting is 0 keeps its data for ever.

=====================  ==============================================================  ==============================
rule                   what goes                                                       setting (default)
=====================  ==============================================================  ==============================
pending-signups        people who never confirmed and have not asked again: erased,    ``pending_retention_days`` (30)
                       with a keyed hash kept only if they asked not to be mailed
signup-requests        the form requests behind confirmation links (name, topics),     ``pending_retention_days`` (30)
                       and the consent record of a request never confirmed
raw-bounces            the raw messages that came back (their classification stays)    ``bounce_retention_days`` (90)
outbox-errors          what a mail server answered about a message (it may quote the   ``outbox_error_retention_days``
                       address)                                                        (90)
consent-ip-hashes      the keyed hash of the IP a form signup came from                ``ip_hash_retention_days`` (365)
consents-after-leaving consent records of people who left, once kept long enough as    ``consent_retention_days``
                       proof                                                           (1095)
=====================  ==============================================================  ==============================

While someone is subscribed, their consent records stay: they are the proof of consent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from newsletter.config import Settings
from newsletter.store.engine import affected
from newsletter.store.models import SUPPRESSED, Bounce, Consent, OutboxRow, SignupRequest, Subscriber
from newsletter.subscribers import service

# How a rule removes what is older than its cutoff; returns how many records (or people) it removed.
Apply = Callable[[Session, datetime, Settings], int]


@dataclass(frozen=True)
class Rule:
    name: str
    what: str  # what goes, for people
    setting: str  # the Settings field holding the number of days
    apply: Apply


@dataclass(frozen=True)
class Outcome:
    rule: Rule
    days: int
    cutoff: datetime | None  # None: the rule is off (0 days)
    count: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.name,
            "what": self.rule.what,
            "setting": self.rule.setting,
            "days": self.days,
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "count": self.count,
        }


@dataclass(frozen=True)
class RetentionReport:
    now: datetime
    outcomes: list[Outcome]
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(o.count for o in self.outcomes)

    def count_of(self, rule: str) -> int:
        """How many records the rule named ``rule`` removed."""
        return sum(o.count for o in self.outcomes if o.rule.name == rule)

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "total": self.total,
            "rules": [o.as_dict() for o in self.outcomes],
        }


def _pending_signups(session: Session, cutoff: datetime, settings: Settings) -> int:
    return service.erase_never_confirmed(session, before=cutoff, secret_key=settings.secret_key)


def _signup_requests(session: Session, cutoff: datetime, settings: Settings) -> int:
    old = SignupRequest.created_at < cutoff
    count = session.scalar(select(func.count()).select_from(SignupRequest).where(old)) or 0
    if not count:
        return 0
    # An unconfirmed request's consent proves nothing; a confirmed one's is the subscriber's proof.
    unconfirmed_consents = select(SignupRequest.consent_id).where(old, SignupRequest.confirmed_at.is_(None))
    session.execute(
        delete(Consent)
        .where(Consent.id.in_(unconfirmed_consents), Consent.confirmed_at.is_(None))
        .execution_options(synchronize_session=False)
    )
    # Requests whose consent just went are gone with it (ON DELETE CASCADE); the others go now.
    session.execute(delete(SignupRequest).where(old).execution_options(synchronize_session=False))
    return count


def _clear(
    session: Session, column: InstrumentedAttribute[Any], time: InstrumentedAttribute[Any], cutoff: datetime
) -> int:
    """Empties ``column`` in the rows whose ``time`` is before the cutoff; returns how many held something."""
    result = session.execute(
        update(column.class_)
        .where(column.is_not(None), time < cutoff)
        .values({column: None})
        .execution_options(synchronize_session=False)
    )
    return affected(result)


def _outbox_errors(session: Session, cutoff: datetime, settings: Settings) -> int:
    return _clear(session, OutboxRow.last_error, OutboxRow.claimed_at, cutoff)


def _raw_bounces(session: Session, cutoff: datetime, settings: Settings) -> int:
    """The raw messages that came back: a matched record keeps its classification (the campaign report
    and the soft-bounce policy need it); an unmatched one is about nobody on the list, so it goes
    entirely, since its address may be a stranger's."""
    # Cleared before the unmatched records go, so the count is of every raw message removed.
    removed = _clear(session, Bounce.raw, Bounce.received_at, cutoff)
    session.execute(
        delete(Bounce)
        .where(Bounce.received_at < cutoff, Bounce.subscriber_id.is_(None))
        .execution_options(synchronize_session=False)
    )
    return removed


def _ip_hashes(session: Session, cutoff: datetime, settings: Settings) -> int:
    return _clear(session, Consent.ip_hash, Consent.given_at, cutoff)


def _consents_after_leaving(session: Session, cutoff: datetime, settings: Settings) -> int:
    # Bounced and complained have no time of their own: their last change is when they left.
    left_long_ago = exists().where(
        Subscriber.id == Consent.subscriber_id,
        Subscriber.status.in_([s.value for s in SUPPRESSED]),
        func.coalesce(Subscriber.unsubscribed_at, Subscriber.updated_at) < cutoff,
    )
    # A request made since (asking to come back) has a newer consent, which stays.
    result = session.execute(
        delete(Consent)
        .where(and_(left_long_ago, Consent.given_at < cutoff))
        .execution_options(synchronize_session=False)
    )
    return affected(result)


POLICY: tuple[Rule, ...] = (
    Rule("pending-signups", "signups never confirmed", "pending_retention_days", _pending_signups),
    Rule(
        "signup-requests", "signup requests and their unconfirmed consents", "pending_retention_days", _signup_requests
    ),
    Rule("raw-bounces", "raw bounce messages", "bounce_retention_days", _raw_bounces),
    Rule("outbox-errors", "mail servers' error texts in the outbox", "outbox_error_retention_days", _outbox_errors),
    Rule("consent-ip-hashes", "hashed IPs in consent records", "ip_hash_retention_days", _ip_hashes),
    Rule(
        "consents-after-leaving",
        "consent records of people who left",
        "consent_retention_days",
        _consents_after_leaving,
    ),
)


def apply_policy(
    session: Session, settings: Settings, now: datetime, *, rules: Sequence[Rule] = POLICY, dry_run: bool = False
) -> RetentionReport:
    """Apply each rule in the session's transaction; the caller commits, or rolls back for a dry run."""
    outcomes = []
    for rule in rules:
        days = int(getattr(settings, rule.setting))
        if days <= 0:
            outcomes.append(Outcome(rule, days, None, 0))
            continue
        cutoff = now - timedelta(days=days)
        outcomes.append(Outcome(rule, days, cutoff, rule.apply(session, cutoff, settings)))
        session.flush()
    return RetentionReport(now, outcomes, dry_run)
