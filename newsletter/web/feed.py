"""The archive as an Atom feed (RFC 4287), for people who would rather follow by feed reader than by email.

Each entry carries the campaign's full web version: the same HTML as its archive page, with no
personal data in it. The feed is made by feedgen; nothing here writes XML by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

from feedgen.feed import FeedGenerator

from newsletter.store.models import utcnow
from newsletter.web.archive import ArchiveEntry

_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S | re.I)


def body_of(html: str) -> str:
    """What a feed reader shows: the document's body (MJML's output is a whole page with its head)."""
    match = _BODY.search(html)
    return match[1].strip() if match else html


def atom_feed(
    entries: Sequence[tuple[ArchiveEntry, str]],
    *,
    organisation: str,
    archive_url: str,
    feed_url: str,
    entry_url: Callable[[str], str],
    now: datetime | None = None,
) -> bytes:
    """The feed, newest entry first; ``entry_url(slug)`` is a campaign's archive page."""
    feed = FeedGenerator()
    feed.id(archive_url)
    feed.title(f"{organisation} newsletter")
    feed.subtitle(f"Every newsletter {organisation} has sent, in full.")
    feed.author({"name": organisation})
    feed.link(href=archive_url, rel="alternate", type="text/html")
    feed.link(href=feed_url, rel="self", type="application/atom+xml")
    feed.language("en")
    feed.updated(max((entry.sent for entry, _ in entries), default=now or utcnow()))
    for entry, html in entries:
        url = entry_url(entry.slug)
        item = feed.add_entry(order="append")
        item.id(url)
        item.title(entry.subject)
        item.link(href=url, rel="alternate", type="text/html")
        item.published(entry.sent)
        item.updated(entry.sent)
        item.content(body_of(html), type="html")
    data: bytes = feed.atom_str(pretty=True)
    return data
