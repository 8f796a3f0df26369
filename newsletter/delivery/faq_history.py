"""What subscribers have heard from the FAQ: the entries each started campaign carried.

:func:`newsletter.delivery.service.start` records them in the transaction that fixes the campaign's
audience, so a campaign is in the history exactly when its messages are in the outbox (a test copy
records nothing). :func:`changes_since` compares the FAQ with that history: for each entry, the version
in the latest campaign that carried it, up to the latest campaign that carried any entry, or up to
``since``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from newsletter.campaigns.faq import ChangeReport, Faq, Heard, changes
from newsletter.errors import NotFound
from newsletter.store.models import CarriedFaqEntry, StartedCampaign


class CampaignNotSent(NotFound):
    """``--since`` names a campaign that has not started sending."""


def record(session: Session, campaign: StartedCampaign, entries: Iterable[Heard]) -> None:
    """Keep the FAQ entries ``campaign`` carries, as its email says them."""
    session.add_all(
        CarriedFaqEntry(campaign_id=campaign.id, faq_id=e.id, question=e.question, content_hash=e.hash, answer=e.answer)
        for e in entries
    )
    session.flush()


def latest_carrier(session: Session) -> StartedCampaign | None:
    """The last started campaign that carried FAQ entries."""
    carried = exists().where(CarriedFaqEntry.campaign_id == StartedCampaign.id)
    return session.scalar(
        select(StartedCampaign)
        .where(carried)
        .order_by(StartedCampaign.created_at.desc(), StartedCampaign.id.desc())
        .limit(1)
    )


def heard_up_to(session: Session, campaign: StartedCampaign) -> dict[str, Heard]:
    """Each entry as the latest campaign that carried it said it, counting campaigns up to ``campaign``."""
    not_later = or_(
        StartedCampaign.created_at < campaign.created_at,
        and_(StartedCampaign.created_at == campaign.created_at, StartedCampaign.id <= campaign.id),
    )
    rows = session.scalars(
        select(CarriedFaqEntry)
        .join(StartedCampaign, StartedCampaign.id == CarriedFaqEntry.campaign_id)
        .where(not_later)
        .order_by(StartedCampaign.created_at, StartedCampaign.id)
    )
    # In sending order, so a later campaign's version of an entry replaces an earlier one's.
    return {row.faq_id: Heard(row.faq_id, row.question, row.content_hash, row.answer) for row in rows}


def changes_since(session: Session, library: Faq, since: str | None = None) -> ChangeReport:
    """The entries of ``library`` that are new, or whose answer changed, since subscribers last heard
    of them: by default as of the latest campaign that carried FAQ entries, else as of ``since`` (a
    campaign's slug or file)."""
    if since is None:
        campaign = latest_carrier(session)
    else:
        slug = Path(since).stem if since.endswith(".md") or "/" in since else since
        campaign = session.scalar(select(StartedCampaign).where(StartedCampaign.slug == slug))
        if campaign is None:
            raise CampaignNotSent(f"campaign {slug!r} has not been sent, so nothing was heard from it")
    if campaign is None:
        return ChangeReport(changes(library.entries, {}))
    heard = heard_up_to(session, campaign)
    return ChangeReport(changes(library.entries, heard), f"{campaign.slug} (sent {campaign.created_at:%Y-%m-%d})")
