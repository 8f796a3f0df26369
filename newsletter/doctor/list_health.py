"""The list's standing with receivers: complaint and bounce rates over the last 30 days.

Rates are events over messages: complaints and bounces are the ``complained`` and ``bounced``
events (a ``bounced`` event is a hard bounce or soft bounces past their limit) that :mod:`newsletter.subscribers.service` logs (whoever reports them: the delivery engine's
5xx replies, the bounce processor), and messages are outbox rows sent in the same window.

:data:`LIST_CHECKS` is the hook where further list checks join, each a function of a read-only
session and the start of the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from newsletter.doctor.report import Check, fail, ok, warn
from newsletter.errors import NewsletterError
from newsletter.feedback.report import GMAIL_LIMIT, GMAIL_RECOMMENDED, blocked_since
from newsletter.store.engine import Store
from newsletter.store.models import Event, EventKind, OutboxRow, OutboxState, utcnow

WINDOW = timedelta(days=30)
# Complaints are held to Gmail's and Yahoo's sender rules (GMAIL_RECOMMENDED, GMAIL_LIMIT).
# Bounces: mailbox providers publish no figure; 2% and 5% are where the large ESPs (e.g.
# Amazon SES's review at 5%) start to act on a sender.
BOUNCE_WARN, BOUNCE_FAIL = 0.02, 0.05

ListCheck = Callable[[Session, datetime], Iterable[Check]]


def sent_since(session: Session, since: datetime) -> int:
    count = session.scalar(
        select(func.count())
        .select_from(OutboxRow)
        .where(OutboxRow.state == OutboxState.SENT.value, OutboxRow.sent_at >= since)
    )
    return count or 0


def events_since(session: Session, kind: EventKind, since: datetime) -> int:
    count = session.scalar(select(func.count()).select_from(Event).where(Event.kind == kind.value, Event.at >= since))
    return count or 0


def _rate_check(
    check_id: str, rate_name: str, what: str, events: int, sent: int, limits: tuple[float, float], fix: str
) -> Check:
    if not sent:
        if events:
            return warn(check_id, f"{events} {what} in the last 30 days, but no messages sent then.", fix)
        return ok(check_id, f"No messages sent in the last 30 days; no {rate_name} to measure yet.")
    rate = events / sent
    message = f"{events} {what} for {sent} messages sent in the last 30 days: {rate:.2%}"
    warn_at, fail_at = limits
    if rate >= fail_at:
        return fail(check_id, f"{message}, at or over {fail_at:.1%}.", fix)
    if rate >= warn_at:
        return warn(check_id, f"{message}, over {warn_at:.1%} (the limit is {fail_at:.1%}).", fix)
    return ok(check_id, f"{message} (keep it under {warn_at:.1%}).")


def sent_rates(session: Session, since: datetime) -> Iterable[Check]:
    """Complaints and bounces over the same count of messages sent."""
    sent = sent_since(session, since)
    yield _rate_check(
        "list.complaint_rate",
        "complaint rate",
        "complaints",
        events_since(session, EventKind.COMPLAINED, since),
        sent,
        (GMAIL_RECOMMENDED, GMAIL_LIMIT),
        "Send only to people who confirmed recently, say in the first lines who is writing and why they get it, "
        "and keep the unsubscribe link easy to find; Gmail and Yahoo junk or refuse mail above 0.3%.",
    )
    # A ``bounced`` event is any bounce suppression: a hard bounce, or soft bounces past their limit.
    yield _rate_check(
        "list.bounce_rate",
        "bounce rate",
        "bounced subscribers",
        events_since(session, EventKind.BOUNCED, since),
        sent,
        (BOUNCE_WARN, BOUNCE_FAIL),
        "Import only addresses that confirmed (double opt-in), and remove old lists; bounced addresses are "
        "already suppressed.",
    )


def blocked_refusals(session: Session, since: datetime) -> Iterable[Check]:
    """Receivers refusing our mail for policy, spam or authentication reasons: about us, not an address."""
    blocked = blocked_since(session, since)
    if not blocked.count:
        yield ok("list.blocked", "No receiver refused our mail as spam or by policy in the last 30 days.")
        return
    yield warn(
        "list.blocked",
        f"{blocked.count} message(s) refused as spam or by policy in the last 30 days; the newest said: "
        f"{blocked.latest}",
        "These refusals are about the sender, not the address: fix any failed SPF, DKIM or DMARC check above, "
        "then read `newsletter bounces list --kind blocked` for what each receiver said.",
    )


# The list checks, in order; each is a function of a read-only session and the start of the window.
LIST_CHECKS: list[ListCheck] = [sent_rates, blocked_refusals]


def list_health_checks(open_store: Callable[[], Store], now: datetime | None = None) -> list[Check]:
    since = (now or utcnow()) - WINDOW
    try:
        store = open_store()
        with store.session(commit=False) as session:
            return [check for list_check in LIST_CHECKS for check in list_check(session, since)]
    except (NewsletterError, SQLAlchemyError) as exc:
        reason = str(exc).strip().splitlines()[0]
        return [
            fail(
                "list.complaint_rate",
                f"Not checked: cannot read the store ({reason}).",
                "Check database_url (newsletter config show) and run `newsletter init`.",
            )
        ]
