"""``send-due``: the scheduled job. Send every campaign whose ``send_at`` has passed and that is not
complete, send the welcome to those who confirmed since the last run, and apply the retention policy.

Meant to run every few minutes from cron or a CI schedule. One run at a time holds the ``send-due``
lease (a database lock that expires, renewed while the run works); a run that finds it held does
nothing and exits 0, since the holder is doing the work. Campaigns left partly sent are resumed: the
send ledger makes a rerun safe. Each part fails on its own: a retention error does not stop a send.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from newsletter.campaigns.content import SYSTEM_SLUGS, WELCOME_SLUG, Campaign
from newsletter.campaigns.service import campaign_files
from newsletter.config import Settings
from newsletter.delivery import service, welcome
from newsletter.delivery.prepare import prepare
from newsletter.delivery.transports import TransportFactory
from newsletter.errors import NewsletterError
from newsletter.store import lease
from newsletter.store.engine import Store
from newsletter.subscribers import retention
from newsletter.subscribers.retention import RetentionReport

LEASE_NAME = "send-due"
LEASE_TTL = timedelta(minutes=2)
STALE_AFTER = timedelta(hours=24)  # a send_at older than this is not sent unless the campaign already started


@dataclasses.dataclass
class DueCampaign:
    campaign: str
    send_at: str | None
    outcome: str  # "sent", "pending", "error"
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"campaign": self.campaign, "send_at": self.send_at, "outcome": self.outcome}
        data.update(self.result)
        if self.error:
            data["error"] = self.error
        return data


@dataclasses.dataclass
class DueReport:
    now: datetime
    campaigns: list[DueCampaign]
    locked_until: datetime | None = None  # set when another run held the lease
    welcome: DueCampaign | None = None  # None: the project has no campaigns/_welcome.md
    retention: RetentionReport | None = None
    retention_error: str | None = None
    bounces: dict[str, Any] | None = None  # what reading the bounce mailbox did, or {"error": ...}; None: not read

    @property
    def exit_code(self) -> int:
        parts = [*self.campaigns, *([self.welcome] if self.welcome else [])]
        bounces_failed = self.bounces is not None and "error" in self.bounces
        if self.retention_error or bounces_failed or any(c.outcome == "error" for c in parts):
            return 1
        if any(c.outcome == "pending" for c in parts):
            return service.EXIT_PENDING
        return 0

    def as_dict(self) -> dict[str, Any]:
        retention = {"error": self.retention_error} if self.retention_error else None
        return {
            "now": self.now.isoformat(),
            "locked_by_another_run": self.locked_until is not None,
            "campaigns": [c.as_dict() for c in self.campaigns],
            "welcome": self.welcome.as_dict() if self.welcome else None,
            "retention": self.retention.as_dict() if self.retention else retention,
            "exit_code": self.exit_code,
            **({"bounces": self.bounces} if self.bounces is not None else {}),
        }


def due_campaigns(store: Store, settings: Settings, now: datetime) -> tuple[list[Campaign], list[DueCampaign]]:
    """Due, unfinished campaigns in send_at order, and the files that could not be read."""
    due, broken = [], []
    for file in campaign_files(settings):
        campaign = file.campaign
        if file.slug in SYSTEM_SLUGS:
            continue  # sent to one person at a time when something happens, never as a dated send
        if campaign is None:
            broken.append(DueCampaign(file.slug, None, "error", error=file.error))
            continue
        if campaign.send_at is None or campaign.send_at > now:
            continue
        counts = service.status(store, campaign.slug)
        if counts is not None and counts.done:
            continue
        if counts is None and campaign.send_at < now - STALE_AFTER:
            # Most likely a date copied from an old campaign or left from the scaffold: sending a
            # week-old "tomorrow" announcement at once would be worse than asking.
            broken.append(
                DueCampaign(
                    campaign.slug,
                    campaign.send_at.isoformat(),
                    "error",
                    error=f"send_at {campaign.send_at.isoformat()} is more than {STALE_AFTER.days * 24} hours in "
                    "the past and the campaign never started; not sending it. Set a new send_at, or send it now "
                    f"with `newsletter campaign send {campaign.slug}`",
                )
            )
            continue
        due.append(campaign)
    due.sort(key=lambda c: (c.send_at, c.slug))
    return due, broken


def send_due(
    store: Store,
    settings: Settings,
    now: datetime,
    transport: TransportFactory,
    *,
    confirm: Callable[[list[Campaign]], bool] = lambda due: True,
    read_bounces: Callable[[], dict[str, Any]] | None = None,
) -> DueReport:
    """``read_bounces`` runs first, under the same lease, so that whoever bounced or complained since
    the last run is not mailed again (a front door passes it: reading bounces sits above delivery)."""
    with lease.held(store, LEASE_NAME, LEASE_TTL) as mine:
        if not mine:
            return DueReport(now, [], locked_until=lease.holder_until(store, LEASE_NAME) or now)
        result = DueReport(now, [])
        if read_bounces is not None:
            result.bounces = read_bounces()
        _apply_retention(store, settings, now, result)
        result.welcome = _send_welcome(store, settings, transport)
        due, result.campaigns = due_campaigns(store, settings, now)
        if due and not confirm(due):
            return result
        for campaign in due:
            send_at = campaign.send_at.isoformat() if campaign.send_at else None
            try:
                prepared = prepare(campaign.path or campaign.slug, settings)
                sent = service.send(store, prepared, transport=transport)
            except NewsletterError as exc:
                result.campaigns.append(DueCampaign(campaign.slug, send_at, "error", error=str(exc)))
                continue
            outcome = "pending" if sent.exit_code else "sent"
            result.campaigns.append(DueCampaign(campaign.slug, send_at, outcome, result=sent.as_dict()))
        return result


def _apply_retention(store: Store, settings: Settings, now: datetime, result: DueReport) -> None:
    try:
        with store.session() as session:
            result.retention = retention.apply_policy(session, settings, now)
    except NewsletterError as exc:
        result.retention_error = str(exc)


def _send_welcome(store: Store, settings: Settings, transport: TransportFactory) -> DueCampaign | None:
    try:
        sent = welcome.send_welcomes(store, settings, transport)
    except NewsletterError as exc:
        return DueCampaign(WELCOME_SLUG, None, "error", error=str(exc))
    if sent is None:
        return None
    return DueCampaign(WELCOME_SLUG, None, "pending" if sent.exit_code else "sent", result=sent.as_dict())
