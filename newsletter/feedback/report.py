"""What happened to a campaign, without tracking anyone: no opens, no clicks.

- **Delivery**, from the outbox: audience, sent, failed, pending.
- **Bounces**: hard, soft and blocked, counted once per message, whether the server refused it during
  the SMTP session (the row's reply, by :mod:`newsletter.delivery.outcomes`) or a bounce came back
  later (the kept records).
- **Complaints**, and the **complaint rate** against sent messages, measured against Gmail's lines:
  below 0.1% is what Gmail asks of bulk senders; at 0.3% and above it throttles or rejects their mail.
  (Gmail counts only its own users' complaints over mail that reached their inboxes; this rate uses
  every complaint over every message sent, so treat it as the same order of magnitude, not the same
  number.)
- **Unsubscribes caused by the campaign**: the unsubscribe link in each message carries the campaign,
  so the unsubscribe event records it. One count, not who.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.delivery import ledger
from newsletter.delivery.outcomes import Severity, classify
from newsletter.errors import NotFound
from newsletter.store.engine import Store
from newsletter.store.models import Bounce, Event, EventKind, FeedbackKind, OutboxRow, OutboxState

GMAIL_RECOMMENDED = 0.001  # "keep spam rates reported in Postmaster Tools below 0.1%"
GMAIL_LIMIT = 0.003  # "never reach 0.3% or higher"


@dataclass(frozen=True)
class CampaignReport:
    campaign: str
    subject: str
    audience: int
    sent: int
    failed: int
    pending: int
    hard_bounces: int
    soft_bounces: int
    blocked: int
    delayed: int
    complaints: int
    unsubscribes: int
    complaint_rate: float

    @property
    def complaint_level(self) -> str:
        if self.complaint_rate >= GMAIL_LIMIT:
            return "over-limit"
        if self.complaint_rate >= GMAIL_RECOMMENDED:
            return "warning"
        return "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "complaint_level": self.complaint_level,
            "thresholds": {"gmail_recommended": GMAIL_RECOMMENDED, "gmail_limit": GMAIL_LIMIT},
        }


def _session_failures(session: Session, campaign_id: int) -> dict[Severity, set[int]]:
    """Rows the receiving server refused during the SMTP session, by what the refusal meant."""
    found: dict[Severity, set[int]] = {severity: set() for severity in Severity}
    rows = session.execute(
        select(OutboxRow.id, OutboxRow.last_code, OutboxRow.last_error).where(
            OutboxRow.campaign_id == campaign_id,
            OutboxRow.state == OutboxState.FAILED.value,
            OutboxRow.last_code.is_not(None),
        )
    )
    for outbox_id, code, error in rows:
        found[classify(code=code, diagnostic=error or "").severity].add(outbox_id)
    return found


def _returned(session: Session, campaign_id: int) -> dict[str, set[int]]:
    """Rows that something came back about, by kind."""
    found: dict[str, set[int]] = {}
    rows = session.execute(select(Bounce.kind, Bounce.outbox_id).where(Bounce.campaign_id == campaign_id).distinct())
    for kind, outbox_id in rows:
        if outbox_id is not None:
            found.setdefault(kind, set()).add(outbox_id)
    return found


def campaign_report(store: Store, slug: str) -> CampaignReport:
    with store.session(commit=False) as session:
        record = ledger.find_campaign(session, slug)
        if record is None:
            raise NotFound(f"campaign {slug!r} has not been sent, so there is nothing to report")
        counts = ledger.counts(session, record)
        refused = _session_failures(session, record.id)
        returned = _returned(session, record.id)
        unsubscribes = session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.kind == EventKind.UNSUBSCRIBED.value, Event.detail["campaign"].as_string() == slug)
        )

        def rows(severity: Severity, kind: FeedbackKind) -> int:
            return len(refused[severity] | returned.get(kind.value, set()))

        complaints = len(returned.get(FeedbackKind.COMPLAINT.value, set()))
        return CampaignReport(
            campaign=slug,
            subject=record.subject,
            audience=counts.audience,
            sent=counts.sent,
            failed=counts.failed,
            pending=counts.pending,
            hard_bounces=rows(Severity.HARD, FeedbackKind.HARD),
            soft_bounces=rows(Severity.SOFT, FeedbackKind.SOFT),
            blocked=rows(Severity.BLOCKED, FeedbackKind.BLOCKED),
            delayed=len(returned.get(FeedbackKind.DELAYED.value, set())),
            complaints=complaints,
            unsubscribes=unsubscribes or 0,
            complaint_rate=complaints / counts.sent if counts.sent else 0.0,
        )


@dataclass(frozen=True)
class BlockedRefusals:
    """Receivers refusing us (policy, spam or authentication), not an address: the doctor shows these."""

    count: int
    latest: str  # the newest status code and diagnostic, for a person to read


def blocked_since(session: Session, since: datetime) -> BlockedRefusals:
    """Blocked refusals since ``since``: during the SMTP session, and in bounces that came back later."""
    diagnostics: list[tuple[datetime, str]] = []
    returned = session.execute(
        select(Bounce.received_at, Bounce.status_code, Bounce.diagnostic).where(
            Bounce.kind == FeedbackKind.BLOCKED.value, Bounce.received_at >= since
        )
    )
    for received_at, status, diagnostic in returned:
        diagnostics.append((received_at, f"{status or ''} {diagnostic}".strip()))
    refused = session.execute(
        select(OutboxRow.claimed_at, OutboxRow.last_code, OutboxRow.last_error).where(
            OutboxRow.state == OutboxState.FAILED.value,
            OutboxRow.last_code.is_not(None),
            OutboxRow.claimed_at >= since,
        )
    )
    for claimed_at, code, error in refused:
        if claimed_at is not None and classify(code=code, diagnostic=error or "").severity is Severity.BLOCKED:
            diagnostics.append((claimed_at, (error or str(code)).strip()))
    diagnostics.sort(key=lambda item: item[0])
    return BlockedRefusals(len(diagnostics), diagnostics[-1][1][:300] if diagnostics else "")
