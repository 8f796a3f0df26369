"""Leases: database locks that expire, so a scheduler run that dies cannot block the next one forever.

A lease is a row naming its holder and when it runs out. Acquiring inserts the row, or takes it over
when it has expired; both are single statements, so two processes racing for it cannot both win on
SQLite (one writer at a time) or PostgreSQL (the primary key and a conditional UPDATE).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.store.engine import Store, affected
from newsletter.store.models import Lease, utcnow


def try_acquire(store: Store, name: str, holder: str, ttl: timedelta) -> bool:
    now = utcnow()
    with store.session() as session:
        taken = session.execute(
            update(Lease)
            .where(Lease.name == name, (Lease.expires_at < now) | (Lease.holder == holder))
            .values(holder=holder, expires_at=now + ttl)
            .execution_options(synchronize_session=False)
        )
        if affected(taken):
            return True
    try:
        with store.session() as session:
            if session.get(Lease, name) is not None:
                return False
            session.add(Lease(name=name, holder=holder, expires_at=now + ttl))
        return True
    except IntegrityError:
        return False  # another process inserted it first


def renew(store: Store, name: str, holder: str, ttl: timedelta) -> bool:
    with store.session() as session:
        result = session.execute(
            update(Lease)
            .where(Lease.name == name, Lease.holder == holder)
            .values(expires_at=utcnow() + ttl)
            .execution_options(synchronize_session=False)
        )
        return bool(affected(result))


def release(store: Store, name: str, holder: str) -> None:
    with store.session() as session:
        session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


def holder_until(store: Store, name: str) -> datetime | None:
    with store.session() as session:
        return session.scalar(select(Lease.expires_at).where(Lease.name == name))


@contextmanager
def held(store: Store, name: str, ttl: timedelta) -> Iterator[bool]:
    """Hold the lease for the block, renewing it in the background; yields False if someone else has it."""
    holder = uuid.uuid4().hex
    if not try_acquire(store, name, holder, ttl):
        yield False
        return
    stop = threading.Event()

    def keep() -> None:
        while not stop.wait(ttl.total_seconds() / 3):
            renew(store, name, holder, ttl)

    keeper = threading.Thread(target=keep, name=f"lease-{name}", daemon=True)
    keeper.start()
    try:
        yield True
    finally:
        stop.set()
        keeper.join()
        release(store, name, holder)
