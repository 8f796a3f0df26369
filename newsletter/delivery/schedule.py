"""``send-due``: send every campaign whose ``send_at`` has passed and that is not complete.

Meant to run every few minutes from cron or a CI schedule. One run at a time holds the ``send-due``
lease (a database lock that expires, renewed while the run works); a run that finds it held does
nothing and exits 0, since the holder is doing the work. Campaigns left partly sent are resumed: the
send ledger makes a rerun safe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from newsletter.campaigns.content import Campaign
from newsletter.campaigns.service import campaign_files
from newsletter.config import Settings
from newsletter.delivery import service
from newsletter.delivery.prepare import prepare
from newsletter.delivery.transports import TransportFactory
from newsletter.errors import NewsletterError
from newsletter.store import lease
from newsletter.store.engine import Store

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

    @property
    def exit_code(self) -> int:
        if any(c.outcome == "error" for c in self.campaigns):
            return 1
        if any(c.outcome == "pending" for c in self.campaigns):
            return service.EXIT_PENDING
        return 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "locked_by_another_run": self.locked_until is not None,
            "campaigns": [c.as_dict() for c in self.campaigns],
            "exit_code": self.exit_code,
        }


def due_campaigns(store: Store, settings: Settings, now: datetime) -> tuple[list[Campaign], list[DueCampaign]]:
    """Due, unfinished campaigns in send_at order, and the files that could not be read."""
    due, broken = [], []
    for file in campaign_files(settings):
        campaign = file.campaign
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
) -> DueReport:
    with lease.held(store, LEASE_NAME, LEASE_TTL) as mine:
        if not mine:
            return DueReport(now, [], locked_until=lease.holder_until(store, LEASE_NAME) or now)
        due, report = due_campaigns(store, settings, now)
        if due and not confirm(due):
            return DueReport(now, report)
        for campaign in due:
            send_at = campaign.send_at.isoformat() if campaign.send_at else None
            try:
                prepared = prepare(campaign.path or campaign.slug, settings)
                result = service.send(store, prepared, transport=transport)
            except NewsletterError as exc:
                report.append(DueCampaign(campaign.slug, send_at, "error", error=str(exc)))
                continue
            outcome = "pending" if result.exit_code else "sent"
            report.append(DueCampaign(campaign.slug, send_at, outcome, result=result.as_dict()))
        return DueReport(now, report)
