"""The send ledger: one outbox row per (campaign, subscriber), claimed, sent and recorded.

The rules that make sending safe to crash, rerun and run twice at once:

- The audience is materialised once, under a unique (campaign, subscriber) key.
- A run *claims* rows before sending them (state ``sending``, ``claimed_by`` = the run). On PostgreSQL
  claims use ``FOR UPDATE SKIP LOCKED``, so concurrent workers take disjoint rows without waiting; on
  SQLite the claiming UPDATE holds the single write lock, which serialises claimers just as well.
- A row is marked ``in_flight`` in a committed transaction before its message can be delivered (before
  SMTP's final dot), and that same transaction records the outcome of the message that connection
  sent before it. So each connection has at most one message whose outcome is not committed, and
  only that one can be duplicated by a crash. The delivery engine commits these transactions for all
  its connections at once (group commit). A row recorded as ``sent`` is never claimed again.
- Rows left ``sending`` by a run that died are put back to ``pending`` and flagged
  ``possibly_duplicated``: the message may have gone out before the crash. A run counts as dead when it
  has finished, when its heartbeat is older than the lease, or when it ran on this host and its
  process is gone (so a rerun after ``kill -9`` can resume at once).
- The subscriber's status is checked at claim time: someone who unsubscribed is skipped.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.delivery.outcomes import ENHANCED_STATUS
from newsletter.store.engine import affected
from newsletter.store.models import (
    OutboxRow,
    OutboxState,
    SendRun,
    StartedCampaign,
    Status,
    Subscriber,
    UTCDateTime,
    utcnow,
)
from newsletter.subscribers.queries import audience

HOST = socket.gethostname()[:255]

# Who still receives mail, checked when rows are claimed, marked in flight, retried or skipped.
_RECEIVES_MAIL = and_(Subscriber.status == Status.CONFIRMED.value, Subscriber.paused.is_(False))


@dataclass(frozen=True)
class Counts:
    audience: int
    sent: int
    failed: int
    pending: int
    skipped: int
    possibly_duplicated: int

    @property
    def done(self) -> bool:
        return self.pending == 0


@dataclass(frozen=True)
class Claim:
    """A claimed row, with what is needed to address its message."""

    outbox_id: int
    subscriber_id: int
    public_id: str  # the subscriber's name in links
    email: str
    email_key: str
    name: str
    possibly_duplicated: bool


_BRACKETED_ADDRESS = re.compile(r"<[^<>\s]*@[^<>\s]*>")
_BARE_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")


def redact(error: str) -> str:
    """A server's reply or our error text without any address in it: servers echo ``RCPT TO:<addr>``."""
    if "@" not in error:
        return error
    return _BARE_ADDRESS.sub("redacted", _BRACKETED_ADDRESS.sub("<redacted>", error))


def find_campaign(session: Session, slug: str) -> StartedCampaign | None:
    return session.scalar(select(StartedCampaign).where(StartedCampaign.slug == slug))


def record_campaign(session: Session, slug: str, subject: str, web_html: str) -> StartedCampaign:
    record = find_campaign(session, slug)
    if record is None:
        record = StartedCampaign(slug=slug, subject=subject, web_html=web_html, created_at=utcnow())
        session.add(record)
        session.flush()
    return record


def materialise(
    session: Session, campaign: StartedCampaign, tags: list[str], *, who: ColumnElement[bool] | None = None
) -> int:
    """Add one pending row per audience member who has none yet; returns how many were added.

    The audience is ``audience(tags)``, or ``who`` for a campaign that picks its own (the welcome).
    """
    already = exists().where(OutboxRow.campaign_id == campaign.id, OutboxRow.subscriber_id == Subscriber.id)
    size = select(func.count()).select_from(OutboxRow).where(OutboxRow.campaign_id == campaign.id)
    before = session.scalar(size) or 0
    # Counted rather than taken from rowcount, which psycopg reports as -1 for an INSERT ... SELECT.
    session.execute(
        insert(OutboxRow).from_select(
            ["campaign_id", "subscriber_id", "state", "attempts", "possibly_duplicated"],
            select(
                literal(campaign.id),
                Subscriber.id,
                literal(OutboxState.PENDING.value),
                literal(0),
                false(),
            )
            .where(audience(tags) if who is None else who, ~already)
            .order_by(Subscriber.id),
        )
    )
    return (session.scalar(size) or 0) - before


def counts(session: Session, campaign: StartedCampaign) -> Counts:
    state = OutboxRow.state
    row = session.execute(
        select(
            func.count(),
            func.count().filter(state == OutboxState.SENT.value),
            func.count().filter(state == OutboxState.FAILED.value),
            func.count().filter(state.in_([OutboxState.PENDING.value, OutboxState.SENDING.value])),
            func.count().filter(state == OutboxState.SKIPPED.value),
            func.count().filter(OutboxRow.possibly_duplicated.is_(True)),
        ).where(OutboxRow.campaign_id == campaign.id)
    ).one()
    return Counts(*row)


# Our own error texts wrap the server's reply: "451 RCPT TO:<...> refused: 4.7.1 Try again later".
_OUR_WRAPPING = re.compile(
    r"(?:\d{3} )?(?:MAIL FROM:<[^>]*>.*?|RCPT TO:<[^>]*>|DATA|message) refused: (?P<reply>.*)", re.S
)


@dataclass(frozen=True)
class Reason:
    """Why messages wait or failed: the latest reply of one class (state, code, enhanced status), with a count."""

    state: str  # "pending" or "failed"
    code: int | None
    status: str | None  # the enhanced status code (RFC 3463), e.g. "4.7.1"
    text: str  # the latest reply of the class, addresses redacted
    count: int

    def line(self) -> str:
        parts = [str(self.code) if self.code is not None else "", self.status or "", self.text]
        return f"{' '.join(p for p in parts if p)} \u00d7{self.count}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "code": self.code,
            "status": self.status,
            "text": self.text,
            "count": self.count,
            "line": self.line(),
        }


def reasons(session: Session, campaign: StartedCampaign) -> list[Reason]:
    """For pending and failed messages, the latest server reply per class, most frequent first."""
    state = case((OutboxRow.state == OutboxState.FAILED.value, "failed"), else_="pending")
    rows = session.execute(
        select(state, OutboxRow.last_code, OutboxRow.last_error, func.count(), func.max(OutboxRow.claimed_at))
        .where(
            OutboxRow.campaign_id == campaign.id,
            OutboxRow.state.in_([OutboxState.PENDING.value, OutboxState.SENDING.value, OutboxState.FAILED.value]),
            OutboxRow.last_error.is_not(None),
        )
        .group_by(state, OutboxRow.last_code, OutboxRow.last_error)
    ).all()
    classes: dict[tuple[str, int | None, str | None], tuple[int, Any, str]] = {}
    for row_state, code, error, count, latest in rows:
        text = redact(error)
        wrapped = _OUR_WRAPPING.fullmatch(text)
        if wrapped:
            text = wrapped["reply"]
        elif code is not None and text.startswith(f"{code} "):
            text = text[4:]
        enhanced = ENHANCED_STATUS.match(text)
        status = enhanced[0] if enhanced else None
        if enhanced:
            text = text[enhanced.end() :].lstrip()
        key = (row_state, code, status)
        total, seen, shown = classes.get(key, (0, None, text))
        if seen is None or (latest is not None and latest > seen):
            seen, shown = latest, text
        classes[key] = (total + count, seen, shown)
    found = [Reason(st, code, status, text, total) for (st, code, status), (total, _, text) in classes.items()]
    return sorted(found, key=lambda r: (r.state != "pending", -r.count, r.code or 0))


def start_run(session: Session, campaign: StartedCampaign) -> str:
    run_id = uuid.uuid4().hex
    now = utcnow()
    session.add(
        SendRun(id=run_id, campaign_id=campaign.id, host=HOST, pid=os.getpid(), started_at=now, heartbeat_at=now)
    )
    session.flush()
    return run_id


def heartbeat(session: Session, run_id: str) -> None:
    session.execute(update(SendRun).where(SendRun.id == run_id).values(heartbeat_at=utcnow()))


def finish_run(session: Session, run_id: str) -> None:
    session.execute(update(SendRun).where(SendRun.id == run_id).values(finished_at=utcnow()))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim_abandoned(session: Session, campaign: StartedCampaign, *, lease: timedelta) -> int:
    """Put back rows claimed by runs that are gone; the one each was sending may have gone out: flag it."""
    stale = utcnow() - lease
    dead: list[str] = []
    holders = session.execute(
        select(SendRun.id, SendRun.host, SendRun.pid, SendRun.heartbeat_at, SendRun.finished_at).where(
            SendRun.id.in_(
                select(OutboxRow.claimed_by)
                .where(OutboxRow.campaign_id == campaign.id, OutboxRow.state == OutboxState.SENDING.value)
                .distinct()
            )
        )
    ).all()
    for run_id, host, pid, beat, finished in holders:
        if finished is not None or beat < stale or (host == HOST and not _process_alive(pid)):
            dead.append(run_id)
    orphaned = and_(
        OutboxRow.campaign_id == campaign.id,
        OutboxRow.state == OutboxState.SENDING.value,
        or_(OutboxRow.claimed_by.in_(dead), ~exists().where(SendRun.id == OutboxRow.claimed_by)),
    )
    result = session.execute(
        update(OutboxRow)
        .where(orphaned)
        .values(
            state=OutboxState.PENDING.value,
            claimed_by=None,
            in_flight=False,
            possibly_duplicated=or_(OutboxRow.possibly_duplicated, OutboxRow.in_flight),
        )
        .execution_options(synchronize_session=False)
    )
    return affected(result)


def skip_departed(session: Session, campaign: StartedCampaign) -> int:
    """Pending rows whose subscriber left, paused or was erased will never be sent: say so."""
    still_wanted = exists().where(Subscriber.id == OutboxRow.subscriber_id, _RECEIVES_MAIL)
    result = session.execute(
        update(OutboxRow)
        .where(OutboxRow.campaign_id == campaign.id, OutboxRow.state == OutboxState.PENDING.value, ~still_wanted)
        .values(state=OutboxState.SKIPPED.value)
        .execution_options(synchronize_session=False)
    )
    return affected(result)


# The statements of the hot path (claim, mark, record) are built once with bind parameters: building
# a SQLAlchemy statement per message costs more than SQLite takes to run it.
_T = cast(Table, OutboxRow.__table__)
_S = cast(Table, Subscriber.__table__)
_NOW = bindparam("p_now", type_=UTCDateTime())
_RUN = bindparam("p_run", type_=String())
_ROW = and_(_T.c.id == bindparam("p_id", type_=Integer()), _T.c.claimed_by == _RUN)
_CLAIM = (
    update(_T)
    .where(
        _T.c.id.in_(
            select(_T.c.id)
            .join(_S, _S.c.id == _T.c.subscriber_id)
            .where(
                _T.c.campaign_id == bindparam("p_campaign", type_=Integer()),
                _T.c.state == OutboxState.PENDING.value,
                or_(_T.c.retry_after.is_(None), _T.c.retry_after <= _NOW),
                or_(_T.c.deferred_by.is_(None), _T.c.deferred_by != _RUN),
                # Checked at claim time: an unsubscribe committed before this point is honoured.
                _RECEIVES_MAIL,
            )
            .order_by(_T.c.id)
            .limit(bindparam("p_limit", type_=Integer()))
            .with_for_update(of=_T, skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(state=OutboxState.SENDING.value, claimed_by=_RUN, claimed_at=_NOW)
    .returning(_T.c.id)
)
_CLAIMED = (
    select(_T.c.id, _S.c.id, _S.c.public_id, _S.c.email, _S.c.email_key, _S.c.name, _T.c.possibly_duplicated)
    .join(_S, _S.c.id == _T.c.subscriber_id)
    .where(_T.c.id.in_(bindparam("p_ids", expanding=True)))
    .order_by(_T.c.id)
)
# Checked again at the point of no return: an unsubscribe committed after the claim is honoured too.
_STILL_WANTED = exists(select(_S.c.id).where(_S.c.id == _T.c.subscriber_id, _RECEIVES_MAIL))
_BEGIN = update(_T).where(_ROW, _STILL_WANTED).values(in_flight=True, attempts=_T.c.attempts + 1)
_SENT = (
    update(_T)
    .where(_ROW)
    .values(
        state=OutboxState.SENT.value,
        sent_at=_NOW,
        message_id=bindparam("p_message_id", type_=String()),
        last_code=bindparam("p_code", type_=Integer()),
        last_error=None,
        claimed_by=None,
        in_flight=False,
    )
)
# A refusal before the point of no return (SMTP's final dot) was never marked in flight: its attempt
# is counted with its outcome (p_more = 1).
_ATTEMPTS = _T.c.attempts + bindparam("p_more", type_=Integer())
_FAILED = (
    update(_T)
    .where(_ROW)
    .values(
        state=OutboxState.FAILED.value,
        last_code=bindparam("p_code", type_=Integer()),
        last_error=bindparam("p_error", type_=Text()),
        attempts=_ATTEMPTS,
        claimed_by=None,
        in_flight=False,
    )
)
_RETRY = (
    update(_T)
    .where(_ROW)
    .values(
        state=OutboxState.PENDING.value,
        last_code=bindparam("p_code", type_=Integer()),
        last_error=bindparam("p_error", type_=Text()),
        attempts=_ATTEMPTS,
        claimed_by=None,
        in_flight=False,
        retry_after=bindparam("p_retry_after", type_=UTCDateTime()),
        deferred_by=bindparam("p_deferred_by", type_=String()),
        possibly_duplicated=or_(_T.c.possibly_duplicated, bindparam("p_duplicated", type_=Boolean())),
    )
)


class Ledger:
    """Everything one connection of one run does to a campaign's outbox: claim, begin, sent, retry,
    failed, release.

    The caller owns the transactions (``with ledger.db.begin():``), so that recording outcomes and
    marking the next messages in flight, for every connection of a run, cost a single commit. The
    two statements that run once per message are compiled here for the connection's dialect and go
    to the driver as they are (``executemany`` for a group): SQLAlchemy's per-execution work costs
    more than SQLite takes to run them.
    """

    def __init__(self, db: Connection, campaign_id: int, run_id: str) -> None:
        self.db = db
        self.campaign_id = campaign_id
        self.run_id = run_id
        dialect = db.dialect
        self._sent = _SENT.compile(dialect=dialect)  # compiled once: per message it goes to the driver as is
        self._begin = _BEGIN.compile(dialect=dialect)
        process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        self._now: Callable[[], Any] = (lambda: process(utcnow())) if process else utcnow

    def _run_many(self, compiled: Any, many: list[dict[str, Any]]) -> int:
        """Run a precompiled statement once per parameter set; returns the rows changed (-1: unknown)."""
        if not many:
            return 0
        rows = [compiled.construct_params(params) for params in many]
        if compiled.positional:
            names = compiled.positiontup
            result = self.db.exec_driver_sql(compiled.string, [tuple(row[name] for name in names) for row in rows])
        else:
            result = self.db.exec_driver_sql(compiled.string, rows)
        return result.rowcount if result.rowcount is not None else -1

    def claim(self, limit: int) -> list[Claim]:
        """Claim up to ``limit`` sendable rows for this run, oldest first."""
        params = {"p_campaign": self.campaign_id, "p_run": self.run_id, "p_now": utcnow(), "p_limit": limit}
        claimed_ids = self.db.execute(_CLAIM, params).scalars().all()
        if not claimed_ids:
            return []
        return [Claim(*row) for row in self.db.execute(_CLAIMED, {"p_ids": list(claimed_ids)})]

    def begin_many(self, outbox_ids: list[int]) -> set[int]:
        """Mark rows in flight; returns those not marked because their subscriber has left meanwhile
        (unsubscribed, paused, erased): they must not be sent."""
        run = self.run_id
        changed = self._run_many(self._begin, [{"p_id": outbox_id, "p_run": run} for outbox_id in outbox_ids])
        if changed == len(outbox_ids):
            return set()
        marked = self.db.execute(
            select(_T.c.id).where(_T.c.id.in_(outbox_ids), _T.c.in_flight.is_(True), _T.c.claimed_by == run)
        )
        return set(outbox_ids) - set(marked.scalars())

    def sent_many(self, rows: list[tuple[int, str, int | None]]) -> None:
        """Record accepted messages: (outbox id, Message-ID, the server's reply code)."""
        if not rows:
            return
        run, now = self.run_id, self._now()
        self._run_many(
            self._sent,
            [
                {"p_id": outbox_id, "p_run": run, "p_now": now, "p_message_id": message_id, "p_code": code}
                for outbox_id, message_id, code in rows
            ],
        )

    def failed(self, outbox_id: int, code: int | None, error: str, *, counted: bool = True) -> None:
        """Refused for good. ``counted``: the attempt was counted when the row was marked in flight."""
        self.db.execute(
            _FAILED,
            {
                "p_id": outbox_id,
                "p_run": self.run_id,
                "p_code": code,
                "p_error": redact(error)[:2000],
                "p_more": 0 if counted else 1,
            },
        )

    def retry(
        self,
        outbox_id: int,
        *,
        code: int | None,
        error: str,
        retry_after: datetime | None,
        possibly_duplicated: bool,
        counted: bool = True,
    ) -> None:
        """Back to pending: after ``retry_after`` in this run, or (``None``) only in a later run."""
        self.db.execute(
            _RETRY,
            {
                "p_id": outbox_id,
                "p_run": self.run_id,
                "p_code": code,
                "p_error": redact(error)[:2000],
                "p_more": 0 if counted else 1,
                "p_retry_after": retry_after,
                "p_deferred_by": self.run_id if retry_after is None else None,
                "p_duplicated": possibly_duplicated,
            },
        )

    def release(self, outbox_ids: list[int]) -> None:
        """Give back claimed rows that were never handed to the transport (the run is stopping)."""
        if not outbox_ids:
            return
        self.db.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(outbox_ids), OutboxRow.claimed_by == self.run_id)
            .values(
                state=OutboxState.PENDING.value,
                claimed_by=None,
                in_flight=False,
                # A row marked for its attempt but never sent gets that attempt back.
                attempts=case((OutboxRow.in_flight.is_(True), OutboxRow.attempts - 1), else_=OutboxRow.attempts),
            )
            .execution_options(synchronize_session=False)
        )

    def next_retry_at(self) -> datetime | None:
        """When the earliest row this run may still retry becomes due (None: nothing left for this run)."""
        due_now, earliest = self.db.execute(
            select(func.count().filter(OutboxRow.retry_after.is_(None)), func.min(OutboxRow.retry_after))
            .join(Subscriber, Subscriber.id == OutboxRow.subscriber_id)
            .where(
                OutboxRow.campaign_id == self.campaign_id,
                OutboxRow.state == OutboxState.PENDING.value,
                or_(OutboxRow.deferred_by.is_(None), OutboxRow.deferred_by != self.run_id),
                _RECEIVES_MAIL,
            )
        ).one()
        return utcnow() if due_now else earliest


def mark_complete_if_done(session: Session, campaign: StartedCampaign) -> bool:
    if counts(session, campaign).done:
        session.execute(
            update(StartedCampaign)
            .where(StartedCampaign.id == campaign.id, StartedCampaign.completed_at.is_(None))
            .values(completed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return True
    return False
