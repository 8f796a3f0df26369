"""The public archive: campaigns that have gone out, as their web versions (no personal data)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.store.models import StartedCampaign


@dataclasses.dataclass(frozen=True)
class ArchiveEntry:
    slug: str
    subject: str
    sent: datetime


def entries(session: Session) -> list[ArchiveEntry]:
    """Campaigns with a web version, newest first (by when sending started)."""
    rows = session.scalars(
        select(StartedCampaign)
        .where(StartedCampaign.web_html != "")
        .order_by(StartedCampaign.created_at.desc(), StartedCampaign.id.desc())
    )
    return [ArchiveEntry(r.slug, r.subject, r.created_at) for r in rows]


def with_web_versions(session: Session) -> list[tuple[ArchiveEntry, str]]:
    """Campaigns with a web version, newest first, each with that web version (for the feed)."""
    rows = session.execute(
        select(StartedCampaign.slug, StartedCampaign.subject, StartedCampaign.created_at, StartedCampaign.web_html)
        .where(StartedCampaign.web_html != "")
        .order_by(StartedCampaign.created_at.desc(), StartedCampaign.id.desc())
    )
    return [(ArchiveEntry(slug, subject, sent), html) for slug, subject, sent, html in rows]


def web_version(session: Session, slug: str) -> str | None:
    record = session.scalar(select(StartedCampaign).where(StartedCampaign.slug == slug))
    return record.web_html if record is not None and record.web_html else None
