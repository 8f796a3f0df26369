"""Importing signup-form exports (CSV) into the store.

The file is streamed and written in batches inside ONE transaction: a row that cannot be used is reported
and skipped, while anything else (a decode error, a lost database) rolls the whole import back. Rows are
written with set-based statements per batch rather than through the ORM, because the import must stay
within 1.5x of validating the addresses and inserting the rows by hand (see ``bench/``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, NamedTuple, cast

from sqlalchemy import JSON, ColumnElement, Connection, Integer, Table, bindparam, func, insert, literal, select, update
from sqlalchemy.orm import Session

from newsletter.errors import ConfigError, InputError, NewsletterError
from newsletter.store.models import (
    Consent,
    Erasure,
    Event,
    EventKind,
    Source,
    Status,
    Subscriber,
    SubscriberTag,
    UTCDateTime,
    utcnow,
)
from newsletter.subscribers.addresses import Address, clean_name, clean_tags, erasure_hash, normalise_address
from newsletter.subscribers.service import Known, Merge, merge

BATCH = 5000
EMAIL_HEADERS = ("email", "email address", "e-mail", "e-mail address", "email_address")
NAME_HEADERS = ("name", "full name", "full_name")
FIRST_NAME_HEADERS = ("first name", "first_name", "firstname", "given name")
LAST_NAME_HEADERS = ("last name", "last_name", "lastname", "surname", "family name")


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    suppressed: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "invalid": self.invalid,
            "dry_run": self.dry_run,
        }


@dataclass(frozen=True)
class Columns:
    email: int
    name: int | None = None
    first_name: int | None = None
    last_name: int | None = None

    def name_of(self, row: list[str]) -> str:
        def cell(index: int | None) -> str:
            return row[index] if index is not None and index < len(row) else ""

        if self.name is not None:
            return cell(self.name)
        return " ".join(p for p in (cell(self.first_name), cell(self.last_name)) if p.strip())


def _find(header: list[str], wanted: Iterable[str]) -> int | None:
    folded = [h.strip().casefold() for h in header]
    for name in wanted:
        if name.casefold() in folded:
            return folded.index(name.casefold())
    return None


def detect_columns(header: list[str], email_column: str | None, name_column: str | None) -> Columns:
    email = _find(header, [email_column] if email_column else EMAIL_HEADERS)
    if email is None:
        wanted = repr(email_column) if email_column else "Email, Email Address or E-mail"
        raise InputError(
            f"no email column found (looked for {wanted}; the header is {', '.join(header) or 'empty'}); "
            "name it with --email-column"
        )
    if name_column:
        name = _find(header, [name_column])
        if name is None:
            raise InputError(f"no column named {name_column!r} in the header")
        return Columns(email, name=name)
    name = _find(header, NAME_HEADERS)
    if name is not None:
        return Columns(email, name=name)
    return Columns(email, first_name=_find(header, FIRST_NAME_HEADERS), last_name=_find(header, LAST_NAME_HEADERS))


class Row(NamedTuple):
    line: int
    address: Address
    name: str


def read_rows(stream: IO[str], columns_hint: tuple[str | None, str | None], report: ImportReport) -> Iterator[Row]:
    """Valid rows, one at a time; invalid ones go into the report with their line number."""
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("the file is empty") from None
    columns = detect_columns(header, *columns_hint)
    # Duplicates within the file are remembered as short digests: a set of 8-byte keys keeps memory
    # flat enough for very large exports.
    seen: set[bytes] = set()
    line = reader.line_num + 1
    for row in reader:
        first_line, line = line, reader.line_num + 1  # a quoted cell may span several lines
        if not any(cell.strip() for cell in row):
            continue
        raw = row[columns.email] if columns.email < len(row) else ""
        try:
            address = normalise_address(raw)
            name = clean_name(columns.name_of(row))
        except NewsletterError as exc:
            report.invalid.append({"line": first_line, "reason": str(exc)})
            continue
        digest = hashlib.blake2b(address.key.encode(), digest_size=8).digest()
        if digest in seen:
            report.duplicates += 1
            continue
        seen.add(digest)
        yield Row(first_line, address, name)


_SUBSCRIBER_COLUMNS = (
    "email",
    "email_key",
    "name",
    "status",
    "source",
    "created_at",
    "updated_at",
    "confirmed_at",
    "paused",
)


def _raw_inserter(
    connection: Connection, table: Table, columns: tuple[str, ...], now: datetime
) -> tuple[Callable[[list[tuple[Any, ...]]], None], Any]:
    """An executemany straight to the driver, and ``now`` as the driver wants it.

    SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself; here the statement
    is compiled once for the dialect and rows go to the DBAPI as they are. Only the timestamp needs the
    column type's processing, and it is the same for every row, so it is done once.
    """
    dialect = connection.dialect
    compiled = insert(table).values({c: bindparam(c) for c in columns}).compile(dialect=dialect)
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    now_param = process(now) if process else now
    order = [columns.index(name) for name in compiled.positiontup or ()] if compiled.positional else None

    def execute(rows: list[tuple[Any, ...]]) -> None:
        params: list[Any]
        if order is None:
            params = [dict(zip(columns, row, strict=True)) for row in rows]
        elif order == sorted(order):
            params = rows  # already in the statement's order
        else:
            params = [tuple(row[i] for i in order) for row in rows]
        connection.exec_driver_sql(compiled.string, params)

    return execute, now_param


# Built once: the batch's addresses go in as one expanding parameter.
_EXISTING = select(Subscriber.id, Subscriber.email_key, Subscriber.name, Subscriber.status).where(
    Subscriber.email_key.in_(bindparam("keys", expanding=True))
)


class _Writer:
    """Writes batches of rows by the rules of :func:`newsletter.subscribers.service.merge`; knows nothing about CSV."""

    def __init__(
        self,
        session: Session,
        report: ImportReport,
        *,
        confirmed: bool,
        tags: list[str],
        wording_version: str,
        origin: str,
        secret_key: str,
    ) -> None:
        self.session = session
        self.report = report
        self.confirmed = confirmed
        self.tags = tags
        self.wording_version = wording_version
        self.origin = origin
        self.now = utcnow()
        self.secret_key = secret_key
        self.insert_subscribers, self.now_param = _raw_inserter(
            session.connection(), cast(Table, Subscriber.__table__), _SUBSCRIBER_COLUMNS, self.now
        )
        self.check_erasures = session.scalar(select(Erasure.address_hash).limit(1)) is not None
        if self.check_erasures and not secret_key:
            raise ConfigError("the store holds erased addresses; set NEWSLETTER_SECRET_KEY so they stay suppressed")

    def _erased(self, rows: list[Row]) -> set[str]:
        if not self.check_erasures:
            return set()
        hashes = {erasure_hash(self.secret_key, r.address.key): r.address.key for r in rows}
        found = self.session.scalars(select(Erasure.address_hash).where(Erasure.address_hash.in_(hashes)))
        return {hashes[h] for h in found}

    def write(self, rows: list[Row]) -> None:
        keys = [r.address.key for r in rows]
        existing = {row.email_key: row for row in self.session.execute(_EXISTING, {"keys": keys})}
        erased = self._erased([r for r in rows if r.address.key not in existing])
        tagged: set[tuple[int, str]] = set()
        if self.tags and existing:
            tagged = {
                (subscriber_id, tag)
                for subscriber_id, tag in self.session.execute(
                    select(SubscriberTag.subscriber_id, SubscriberTag.tag).where(
                        SubscriberTag.subscriber_id.in_([r.id for r in existing.values()]),
                        SubscriberTag.tag.in_(self.tags),
                    )
                )
            }
        new: list[Row] = []
        for row in rows:
            current = existing.get(row.address.key)
            known = None
            if current is not None:
                tags = frozenset(t for t in self.tags if (current.id, t) in tagged)
                known = Known(current.status, current.name, tags)
            plan = merge(known, name=row.name, tags=self.tags, confirmed=self.confirmed)
            if row.address.key in erased or plan.outcome == "suppressed":
                self.report.suppressed += 1
            elif plan.outcome == "added":
                new.append(row)
            elif plan.outcome == "unchanged":
                self.report.unchanged += 1
            elif current is not None:
                self._update(current.id, plan)
        if new:
            self._insert(new)

    def _insert(self, rows: list[Row]) -> None:
        status = (Status.CONFIRMED if self.confirmed else Status.PENDING).value
        source = Source.IMPORT.value
        now = self.now_param
        confirmed_at = now if self.confirmed else None
        before = self.session.scalar(select(func.coalesce(func.max(Subscriber.id), 0)))
        self.insert_subscribers(
            [(r.address.email, r.address.key, r.name, status, source, now, now, confirmed_at, False) for r in rows]
        )
        # The rows just inserted are exactly those above the previous highest id that have no event
        # yet: every other way in logs an event in the same transaction as the insert, and ids only
        # grow. This avoids sending the batch's addresses back to the database as a long IN list.
        is_new = (Subscriber.id > before) & ~Subscriber.events.any()
        for tag in self.tags:
            self.session.execute(
                insert(SubscriberTag).from_select(
                    ["subscriber_id", "tag"], select(Subscriber.id, literal(tag)).where(is_new)
                )
            )
        self._log(is_new, EventKind.IMPORTED, {"file": self.origin, "confirmed": self.confirmed})
        now = literal(self.now, UTCDateTime())
        # New subscribers have exactly one event so far, the import, which is also what confirms an
        # import made with --confirmed.
        self.session.execute(
            insert(Consent).from_select(
                [
                    "subscriber_id",
                    "method",
                    "wording_version",
                    "given_at",
                    "origin",
                    "confirmed_at",
                    "confirm_event_id",
                ],
                select(
                    Subscriber.id,
                    literal(Source.IMPORT.value),
                    literal(self.wording_version),
                    now,
                    literal(self.origin),
                    now if self.confirmed else literal(None, UTCDateTime()),
                    Event.id if self.confirmed else literal(None, Integer()),
                )
                .join(Event, Event.subscriber_id == Subscriber.id)
                .where(Subscriber.id > before, ~Subscriber.consents.any()),
            )
        )
        self.report.imported += len(rows)

    def _log(self, which: ColumnElement[bool], kind: EventKind, detail: dict[str, Any]) -> None:
        """One event for each subscriber matching ``which``, in one statement."""
        self.session.execute(
            insert(Event).from_select(
                ["subscriber_id", "kind", "at", "actor", "detail"],
                select(
                    Subscriber.id,
                    literal(kind.value),
                    literal(self.now, UTCDateTime()),
                    literal("import"),
                    literal(detail, JSON()),
                ).where(which),
            )
        )

    def _update(self, subscriber_id: int, plan: Merge) -> None:
        changes: dict[str, Any] = {}
        values: dict[str, Any] = {}
        if plan.name is not None:
            changes["name"] = values["name"] = plan.name
        if plan.tags_added:
            changes["tags_added"] = list(plan.tags_added)
            self.session.execute(
                insert(SubscriberTag), [{"subscriber_id": subscriber_id, "tag": t} for t in plan.tags_added]
            )
        if plan.confirm:
            changes["status"] = values["status"] = Status.CONFIRMED.value
            values["confirmed_at"] = self.now
        values["updated_at"] = self.now
        self.session.execute(update(Subscriber).where(Subscriber.id == subscriber_id).values(**values))
        this = Subscriber.id == subscriber_id
        self._log(this, EventKind.UPDATED, {"file": self.origin, **changes})
        if plan.confirm:
            self._log(this, EventKind.CONFIRMED, {"via": "import"})
            event_id = self.session.scalar(select(func.max(Event.id)).where(Event.subscriber_id == subscriber_id))
            self.session.execute(
                update(Consent)
                .where(Consent.subscriber_id == subscriber_id, Consent.confirmed_at.is_(None))
                .values(confirmed_at=self.now, confirm_event_id=event_id)
            )
        self.report.updated += 1


def _batches(rows: Iterator[Row]) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def import_csv(
    session: Session,
    stream: IO[str],
    *,
    origin: str,
    wording_version: str,
    confirmed: bool = False,
    tags: Iterable[str] = (),
    email_column: str | None = None,
    name_column: str | None = None,
    secret_key: str = "",
) -> ImportReport:
    """Import a CSV export into the session's transaction; the caller commits or, for a dry run, rolls back.

    ``stream`` must be opened with ``newline=""`` (quoted cells may hold line breaks) and an encoding of
    ``utf-8-sig`` so that a byte-order mark is dropped.
    """
    report = ImportReport()
    writer = _Writer(
        session,
        report,
        confirmed=confirmed,
        tags=clean_tags(list(tags)),
        wording_version=wording_version,
        origin=origin,
        secret_key=secret_key,
    )
    try:
        for batch in _batches(read_rows(stream, (email_column, name_column), report)):
            writer.write(batch)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"the file is not UTF-8 text (byte {exc.start} of a read block); nothing was imported"
        ) from None
    except csv.Error as exc:
        raise InputError(f"the file is not valid CSV ({exc}); nothing was imported") from None
    return report


def open_csv(path: str) -> IO[str]:
    """Open an export for :func:`import_csv`; ``-`` is standard input."""
    # utf-8-sig drops a byte-order mark; newline="" lets the csv module see line breaks inside quotes.
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
