"""The public archive: campaigns that have gone out, as their web versions (no personal data)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from newsletter.store.models import StartedCampaign


@dataclasses.dataclass(frozen=True)
class ArchiveEntry:
    slug: str
    subject: str
    sent: datetime


def _published(*also: Any) -> Select[Any]:
    """Campaigns with a web version, newest first (by when sending started): each one's entry, and ``also``."""
    return (
        select(StartedCampaign.slug, StartedCampaign.subject, StartedCampaign.created_at, *also)
        .where(StartedCampaign.web_html != "")
        .order_by(StartedCampaign.created_at.desc(), StartedCampaign.id.desc())
    )


def entries(session: Session) -> list[ArchiveEntry]:
    """Campaigns with a web version, newest first."""
    return [ArchiveEntry(slug, subject, sent) for slug, subject, sent in session.execute(_published())]


def with_web_versions(session: Session) -> list[tuple[ArchiveEntry, str]]:
    """Campaigns with a web version, newest first, each with that web version (for the feed)."""
    rows = session.execute(_published(StartedCampaign.web_html))
    return [(ArchiveEntry(slug, subject, sent), html) for slug, subject, sent, html in rows]


def web_version(session: Session, slug: str) -> str | None:
    record = session.scalar(select(StartedCampaign).where(StartedCampaign.slug == slug))
    return record.web_html if record is not None and record.web_html else None
