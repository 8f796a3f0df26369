"""The list as staff see it (``subscribers list`` and ``export``), read with SQLAlchemy Core alone.

Listing is what staff run most, and it should answer at once: loading the ORM and the models costs
about a fifth of a short command's start. So the two tables a listing reads are named here by the
columns it needs; a test keeps them equal to the models'. Everything that changes a subscriber, or
reads more of one, goes through the models (``service``, ``queries``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, Integer, String, column, select, table

from newsletter.store.values import Status, UTCDateTime

SUBSCRIBERS = table(
    "subscribers",
    column("id", Integer()),
    column("email", String()),
    column("name", String()),
    column("status", String()),
    column("source", String()),
    column("created_at", UTCDateTime()),
    column("confirmed_at", UTCDateTime()),
    column("unsubscribed_at", UTCDateTime()),
)
TAGS = table("subscriber_tags", column("subscriber_id", Integer()), column("tag", String()))


class Listed(NamedTuple):
    """One subscriber as a listing shows them."""

    id: int
    email: str
    name: str
    status: str
    source: str
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    tag_names: list[str]


class Summarised(Protocol):
    """What :func:`summary` reads: a :class:`Listed` row, or a model's ``Subscriber``."""

    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def confirmed_at(self) -> datetime | None: ...
    @property
    def unsubscribed_at(self) -> datetime | None: ...
    @property
    def tag_names(self) -> list[str]: ...


def rows(db: Connection, *, status: str | None = None, tag: str | None = None, batch: int = 1000) -> Iterator[Listed]:
    """Subscribers, optionally by status and tag, in id order; read in batches, so memory stays flat."""
    s = SUBSCRIBERS.c
    statement = select(*SUBSCRIBERS.c).order_by(s.id)
    if status:
        statement = statement.where(s.status == Status(status).value)
    if tag:
        statement = statement.where(s.id.in_(select(TAGS.c.subscriber_id).where(TAGS.c.tag == tag)))
    last_id = 0
    while True:
        page = db.execute(statement.where(s.id > last_id).limit(batch)).all()
        if not page:
            return
        first, last = page[0].id, page[-1].id
        # The page's tags by its id range, not by an IN list of its ids: two variables whatever the
        # page's size (SQLite caps them per statement: 999 before 3.32). Tags of people the filters
        # left out are read and dropped; pages' ranges do not overlap, so each tag is read once.
        held = select(TAGS.c.subscriber_id, TAGS.c.tag).where(TAGS.c.subscriber_id.between(first, last))
        tags: defaultdict[int, list[str]] = defaultdict(list)
        for subscriber_id, name in db.execute(held.order_by(TAGS.c.subscriber_id, TAGS.c.tag)):
            tags[subscriber_id].append(name)
        for row in page:
            yield Listed._make((*row, tags[row.id]))
        last_id = last


def isoformat(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def summary(subscriber: Summarised) -> dict[str, Any]:
    """The fields of a listing's or an export's row."""
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status,
        "tags": subscriber.tag_names,
        "source": subscriber.source,
        "created_at": isoformat(subscriber.created_at),
        "confirmed_at": isoformat(subscriber.confirmed_at),
        "unsubscribed_at": isoformat(subscriber.unsubscribed_at),
    }
