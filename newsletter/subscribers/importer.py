"""Importing signup-form exports (CSV) into the store, with each person's own topics, consent and signup time.

The file is streamed and written in batches inside ONE transaction: a row that cannot be used is reported
and skipped, while anything else (a decode error, a lost database) rolls the whole import back. Rows are
written with set-based statements per batch rather than through the ORM, because the import must stay
within 1.5x of validating the addresses and inserting the rows by hand (see ``bench/``).

Columns are found by their headers, whatever their case and punctuation (``Submitted At``,
``submitted_at``, ``SUBMITTED AT``); see :func:`detect_columns`. What a row's cells mean:

- **topics**: labels separated by commas or semicolons. A label is a topic's title from the settings
  ("Clinic news"), a topic's tag ("clinic-news"), or a label mapped by ``topic_map``; other labels are
  reported as unknown. The topics become the subscriber's tags, with ``tags`` added to every row.
- **consent**: a yes (yes, true, 1, checked, "I agree...") or a no (no, false, 0, unchecked, an empty
  cell). A no is not imported and is reported with its line; a cell that says neither is invalid.
- **signup time**: ISO 8601, ``YYYY-MM-DD HH:MM[:SS]`` or US ``M/D/YYYY H:MM[:SS]`` (as Google Forms
  writes it); a time without a zone is in ``zone``. It becomes the consent record's time.
"""

from __future__ import annotations

import csv
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Dialect,
    Integer,
    Table,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.errors import InputError, NewsletterError
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
    new_public_id,
    utcnow,
)
from newsletter.subscribers.addresses import (
    Address,
    clean_name,
    clean_tag,
    clean_tags,
    erasure_hash,
    normalise_address,
    one_line,
)
from newsletter.subscribers.consent import consent_given
from newsletter.subscribers.csv_input import not_decodable, read_header
from newsletter.subscribers.csv_input import open_csv as open_csv  # part of this module's API
from newsletter.subscribers.service import Known, Merge, holds_erasures, merge, unnamed_consent

if TYPE_CHECKING:
    import _csv

BATCH = 5000

# Header names, as _normalised() leaves them ("E-mail Address" -> "e mail address"), most specific first.
EMAIL_HEADERS = ("email", "email address", "e mail", "e mail address", "mail")
NAME_HEADERS = ("name", "full name", "your name")
FIRST_NAME_HEADERS = ("first name", "firstname", "given name", "fname")
LAST_NAME_HEADERS = ("last name", "lastname", "surname", "family name", "lname")
TOPIC_HEADERS = (
    "topics", "topic", "interests", "interest", "lists", "list", "newsletter topics", "mailing lists",
    "newsletters", "groups", "subscriptions",
)  # fmt: skip
CONSENT_HEADERS = (
    "consent", "consented", "opt in", "optin", "opted in", "gdpr", "gdpr consent", "marketing consent",
    "email consent", "email opt in", "marketing opt in", "newsletter opt in", "agree", "agreed", "i agree",
    "permission", "marketing permission", "marketing permissions", "accepts marketing", "accepts email marketing",
)  # fmt: skip
SUBMITTED_HEADERS = (
    "submitted at", "submitted", "submitted on", "submission date", "submission time", "date submitted",
    "signup date", "sign up date", "signup time", "sign up time", "signed up", "signed up at", "signed up on",
    "timestamp", "created", "created at", "created on", "date created", "optin time", "opt in time",
    "opt in date", "subscribed at", "subscribed on", "date subscribed", "date added", "date",
)  # fmt: skip
# A question used as a header: "Which topics would you like?", "I agree to receive emails from...".
_TOPIC_WORDS = frozenset({"topic", "topics", "interest", "interests"})
_CONSENT_WORDS = frozenset({"consent", "gdpr", "permission", "permissions"})
_CONSENT_STARTS = ("i agree", "i consent", "i accept", "i would like to receive", "yes i")
_TIME_WORDS = frozenset({"time", "date", "timestamp", "at", "on", "when"})
_NON_WORD = re.compile(r"[^0-9a-z]+")
_TOPIC_SEPARATORS = re.compile(r"[,;]")
# Google Forms writes 9/1/2026 9:12:33; some sheets add AM/PM.
_US_TIME = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:\s*([ap])\.?m\.?)?)?", re.I
)
FUTURE_SKEW = timedelta(minutes=5)


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    suppressed: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)
    no_consent: list[dict[str, Any]] = field(default_factory=list)
    unknown_topics: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "invalid": self.invalid,
            "no_consent": self.no_consent,
            "unknown_topics": self.unknown_topics,
            "ignored_columns": self.ignored_columns,
            "dry_run": self.dry_run,
        }


# --- columns -----------------------------------------------------------------------------------------


def _normalised(header: str) -> str:
    return " ".join(_NON_WORD.sub(" ", header.casefold()).split())


@dataclass(frozen=True)
class Columns:
    """Where each field is in a row (None: the file has no such column), and the columns left unused."""

    email: int
    name: int | None = None
    first_name: int | None = None
    last_name: int | None = None
    topics: int | None = None
    consent: int | None = None
    submitted: int | None = None
    ignored: tuple[str, ...] = ()

    def name_of(self, row: list[str]) -> str:
        if self.name is not None:
            return row[self.name]
        first = row[self.first_name] if self.first_name is not None else ""
        last = row[self.last_name] if self.last_name is not None else ""
        return f"{first} {last}" if first and last else first or last


def _shown(text: str, limit: int = 200) -> str:
    """Text from the file, safe in a one-line message: on one line, printable, not too long."""
    line = one_line(text)
    return line if len(line) <= limit else line[:limit] + "..."


class _Header:
    def __init__(self, header: list[str]) -> None:
        self.names = header
        self.normalised = [_normalised(h) for h in header]
        self.taken: set[int] = set()

    def named(self, wanted: str, flag: str, separator: str = "commas") -> int:
        """The column a flag names; an error if there is none."""
        index = self._first((_normalised(wanted),))
        if index is None:
            raise InputError(
                f"no column named {wanted!r} in the header (given with {flag}); split at {separator}, "
                f"the header is {_shown(', '.join(self.names)) or 'empty'}"
            )
        return self.take(index)

    def find(self, names: Sequence[str], guess: Callable[[str], bool] | None = None) -> int | None:
        """The first free column with one of ``names`` (in that order), else the first ``guess`` accepts."""
        index = self._first(names)
        if index is None and guess is not None:
            index = next((i for i, h in enumerate(self.normalised) if i not in self.taken and h and guess(h)), None)
        return None if index is None else self.take(index)

    def _first(self, names: Iterable[str]) -> int | None:
        for name in names:
            for index, header in enumerate(self.normalised):
                if header == name and index not in self.taken:
                    return index
        return None

    def take(self, index: int) -> int:
        self.taken.add(index)
        return index

    def unused(self) -> tuple[str, ...]:
        return tuple(name for i, name in enumerate(self.names) if i not in self.taken and name.strip())


def _looks_like_topics(header: str) -> bool:
    return not _TOPIC_WORDS.isdisjoint(header.split())


def _looks_like_consent(header: str) -> bool:
    words = set(header.split())
    if not _TIME_WORDS.isdisjoint(words):
        return False  # "Consent date" is a time, not a consent
    return not _CONSENT_WORDS.isdisjoint(words) or header.startswith(_CONSENT_STARTS)


@dataclass(frozen=True)
class ColumnHints:
    """Headers named on the command line (``--email-column`` and so on); None: find it by its header."""

    email: str | None = None
    name: str | None = None
    topics: str | None = None
    consent: str | None = None
    submitted: str | None = None


def has_email_column(header: list[str], hints: ColumnHints = ColumnHints()) -> bool:
    """Whether ``header`` holds the email column (the one named by ``hints``, or a usual name)."""
    wanted = (_normalised(hints.email),) if hints.email else EMAIL_HEADERS
    return any(_normalised(cell) in wanted for cell in header)


def detect_columns(header: list[str], hints: ColumnHints = ColumnHints(), *, separator: str = "commas") -> Columns:
    """Where each field is; ``separator`` names what split the header, for the errors."""
    found = _Header(header)
    if hints.email:
        email = found.named(hints.email, "--email-column", separator)
    else:
        located = found.find(EMAIL_HEADERS)
        if located is None:
            raise InputError(
                f"no email column found (looked for Email, Email Address or E-mail in the header, split at "
                f"{separator}: {_shown(', '.join(header)) or 'empty'}); name it with --email-column"
            )
        email = located
    # The signup time first, so that "Opt-in time" is a time and not a consent column.
    submitted = found.named(hints.submitted, "--submitted-column") if hints.submitted else found.find(SUBMITTED_HEADERS)
    consent = (
        found.named(hints.consent, "--consent-column")
        if hints.consent
        else found.find(CONSENT_HEADERS, _looks_like_consent)
    )
    topics = (
        found.named(hints.topics, "--topics-column") if hints.topics else found.find(TOPIC_HEADERS, _looks_like_topics)
    )
    names: dict[str, int | None]
    if hints.name:
        names = {"name": found.named(hints.name, "--name-column")}
    else:
        name = found.find(NAME_HEADERS)
        if name is not None:
            names = {"name": name}
        else:
            names = {"first_name": found.find(FIRST_NAME_HEADERS), "last_name": found.find(LAST_NAME_HEADERS)}
    return Columns(email, topics=topics, consent=consent, submitted=submitted, ignored=found.unused(), **names)


# --- cells -------------------------------------------------------------------------------------------


def _label_key(label: str) -> str:
    return " ".join(label.casefold().split())


def parse_topic_map(items: Iterable[str]) -> dict[str, str]:
    """``--topic-map "Clinic news=clinic-news"`` items as {label: tag}."""
    mapping = {}
    for item in items:
        label, sep, tag = item.rpartition("=")
        if not sep or not label.strip() or not tag.strip():
            raise InputError(f'--topic-map {item!r}: expected LABEL=TAG, e.g. "Clinic news=clinic-news"')
        mapping[label.strip()] = clean_tag(tag)
    return mapping


class TopicLabels:
    """Turns a topics cell into tags: each label by the topics' titles and tags, and by ``topic_map``.

    Cells repeat ("FAQ updates" on thousands of rows), so each distinct cell is worked out once.
    """

    def __init__(self, topic_choices: Mapping[str, str], topic_map: Mapping[str, str], extra_tags: Sequence[str]):
        self.by_label: dict[str, str] = {}
        for tag, title in topic_choices.items():
            self.by_label[_label_key(tag)] = tag
            self.by_label[_label_key(title)] = tag
        for label, tag in topic_map.items():
            self.by_label[_label_key(label)] = tag
        self.extra = tuple(extra_tags)
        self.unknown: dict[str, None] = {}  # in the order first seen
        self._cells: dict[str, tuple[str, ...]] = {}

    def tags_for(self, cell: str) -> tuple[str, ...]:
        tags = self._cells.get(cell)
        if tags is None:
            chosen = set(self.extra)
            for label in _TOPIC_SEPARATORS.split(cell):
                key = _label_key(label)
                if not key:
                    continue
                tag = self.by_label.get(key)
                if tag is None:
                    self.unknown.setdefault(" ".join(label.split()))
                else:
                    chosen.add(tag)
            tags = self._cells[cell] = tuple(sorted(chosen))
        return tags


def parse_signup_time(text: str, zone: tzinfo) -> datetime:
    """A signup time from an export, in UTC; raises ValueError with a reason for people."""
    return _naive_utc(text, zone).replace(tzinfo=UTC)


def _naive_utc(text: str, zone: tzinfo) -> datetime:
    """:func:`parse_signup_time` without the time zone attached: what the import keeps per row."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = _us_time(text)
    if value.tzinfo is None:
        if zone is UTC:
            return value
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC).replace(tzinfo=None)


def _us_time(text: str) -> datetime:
    match = _US_TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"the signup time {text!r} is not ISO 8601, YYYY-MM-DD HH:MM[:SS] or M/D/YYYY H:MM[:SS]")
    month, day, year, hour, minute, second, half = match.groups()
    hours = int(hour or 0)
    if half:
        if not 1 <= hours <= 12:
            raise ValueError(f"the signup time {text!r} has an hour that is not on a 12-hour clock")
        hours = hours % 12 + (12 if half.lower() == "p" else 0)
    try:
        return datetime(int(year), int(month), int(day), hours, int(minute or 0), int(second or 0))
    except ValueError as exc:
        raise ValueError(f"the signup time {text!r} is not a date ({exc})") from None


# --- reading -------------------------------------------------------------------------------------------


class Row(NamedTuple):
    line: int
    address: Address
    name: str
    tags: tuple[str, ...]
    signed_up: datetime | None  # from the file, in UTC but without a tzinfo (saves work per row); None: not given


@dataclass(frozen=True)
class ReadOptions:
    hints: ColumnHints
    topics: TopicLabels
    zone: tzinfo
    now: datetime


def read_rows(stream: IO[str], options: ReadOptions, report: ImportReport) -> Iterator[Row]:
    """Usable rows, one at a time; the others go into the report with their line number.

    The separator and the columns are worked out once, from the header (see :mod:`.csv_input`).
    """
    found = read_header(stream, functools.partial(has_email_column, hints=options.hints))
    header = found.cells
    columns = detect_columns(header, options.hints, separator=found.separator_name)
    report.ignored_columns = list(columns.ignored)
    reader = csv.reader(stream, delimiter=found.separator)
    try:
        yield from _rows(reader, found.lines + 1, header, columns, options, report)
    except UnicodeDecodeError as exc:
        raise not_decodable(exc, found.lines + reader.line_num) from None


def _rows(
    reader: _csv.Reader,
    offset: int,
    header: list[str],
    columns: Columns,
    options: ReadOptions,
    report: ImportReport,
) -> Iterator[Row]:
    """The rows after the header; ``offset`` is the file's line number of the reader's first line."""
    width = len(header)
    email_at, topics_at, consent_at, submitted_at = columns.email, columns.topics, columns.consent, columns.submitted
    no_topics = options.topics.tags_for("")
    tags_for = options.topics.tags_for
    zone, latest = options.zone, (options.now + FUTURE_SKEW).astimezone(UTC).replace(tzinfo=None)
    consent_cells: dict[str, bool | None] = {}
    # Duplicates within the file are remembered by a 64-bit hash of the address, not the address:
    # memory stays flat enough for very large exports. (Two addresses sharing a hash would make the
    # second a "duplicate": about one chance in 40 million for a million rows.)
    seen: set[int] = set()
    line = offset
    for row in reader:
        first_line, line = line, reader.line_num + offset  # a quoted cell may span several lines
        if len(row) < width:
            row += [""] * (width - len(row))
        raw = row[email_at]
        if not raw.strip() and not "".join(row).strip():
            continue
        if consent_at is not None:
            cell = row[consent_at]
            if cell in consent_cells:
                given = consent_cells[cell]
            else:
                given = consent_cells[cell] = consent_given(cell)
            if not given:
                if given is None:
                    report.invalid.append(
                        {"line": first_line, "reason": f"the consent cell {cell.strip()!r} says neither yes nor no"}
                    )
                else:
                    report.no_consent.append({"line": first_line, "email": raw.strip()})
                continue
        try:
            address = normalise_address(raw)
            name = clean_name(columns.name_of(row))
        except NewsletterError as exc:
            report.invalid.append({"line": first_line, "reason": str(exc)})
            continue
        signed_up = None
        if submitted_at is not None and (when := row[submitted_at].strip()):
            try:
                signed_up = _naive_utc(when, zone)
            except ValueError as exc:
                report.invalid.append({"line": first_line, "reason": str(exc)})
                continue
            if signed_up > latest:
                report.invalid.append(
                    {
                        "line": first_line,
                        "reason": f"the signup time {when!r} is in the future (is the timezone setting right?)",
                    }
                )
                continue
        digest = hash(address.key)
        if digest in seen:
            report.duplicates += 1
            continue
        seen.add(digest)
        yield Row(
            first_line, address, name, tags_for(row[topics_at]) if topics_at is not None else no_topics, signed_up
        )


# --- writing -------------------------------------------------------------------------------------------


def _time_param(dialect: Dialect) -> Callable[[datetime], Any]:
    """A UTC time (aware, or naive meaning UTC) as the driver wants it for a UTCDateTime column, fast.

    SQLAlchemy's own processing costs about 2 µs per value; on SQLite the same text is made here
    directly (the format SQLAlchemy writes and reads), elsewhere the driver takes the datetime.
    """
    if dialect.name != "sqlite":
        process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        return lambda value: process(value if value.tzinfo else value.replace(tzinfo=UTC)) if process else value

    def sqlite_text(value: datetime) -> str:
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        text = value.isoformat(" ")
        return text if value.microsecond else text + ".000000"

    return sqlite_text


class _BulkInsert:
    """Many rows into one table, as fast as the driver allows: per row only ``columns``, the same
    ``constants`` for all rows of one call. Values must already be as the driver wants them (see
    :func:`_time_param`). With one column, each row is that column's value rather than a tuple.

    On SQLite the rows go as one JSON array that the database unpacks itself (``json_each``), in half
    the time an ``executemany`` takes: binding each row's parameters from Python is what costs.
    Elsewhere it is an ``executemany`` of a statement compiled once.
    """

    def __init__(self, connection: Connection, table: Table, columns: Sequence[str], constants: Sequence[str]) -> None:
        self.connection = connection
        self.single = len(columns) == 1
        names = [*columns, *constants]
        self.json = connection.dialect.name == "sqlite"
        if self.json:
            values = ["value"] if self.single else [f"json_extract(value, '$[{i}]')" for i in range(len(columns))]
            picked = ", ".join(values + ["?"] * len(constants))
            # In the array's order, so that new rowids follow the order of the rows given.
            self.sql = f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {picked} FROM json_each(?) ORDER BY key"
            return
        compiled = insert(table).values({c: bindparam(c) for c in names}).compile(dialect=connection.dialect)
        self.sql = compiled.string
        self.order = [names.index(n) for n in compiled.positiontup or ()] if compiled.positional else None
        self.names = names

    def __call__(self, rows: Sequence[Any], *constants: Any) -> int | None:
        """Insert the rows; on SQLite, returns the rowid of the last one."""
        if not rows:
            return None
        if self.json:
            # ensure_ascii=False: text goes through as it is, never as escapes for SQLite to undo.
            result = self.connection.exec_driver_sql(self.sql, (*constants, json.dumps(rows, ensure_ascii=False)))
            return result.lastrowid
        full = [((row,) if self.single else row) + constants for row in rows]
        if self.order is None:
            params: list[Any] = [dict(zip(self.names, row, strict=True)) for row in full]
        else:
            params = [tuple(row[i] for i in self.order) for row in full]
        self.connection.exec_driver_sql(self.sql, params)
        return None


_NEW_SINCE = select(Subscriber.email_key, Subscriber.id).where(Subscriber.id > bindparam("before", type_=Integer()))


class _Driver:
    """Statements run on the session's own DBAPI connection (so in its transaction), their rows coming
    back as the driver's plain tuples: SQLAlchemy's rendering of a 5,000-item IN list and its Row
    objects cost more, per batch, than the database takes to answer. Only for integers and text."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        new_since = _NEW_SINCE.compile(dialect=connection.dialect)
        self.new_since_sql = new_since.string
        self.new_since_positional = new_since.positional
        self._existing: dict[int, str] = {}

    def rows(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        cursor = self.connection.connection.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def existing(self, keys: list[str]) -> list[tuple[Any, ...]]:
        """(id, email_key, name, status) of the subscribers among ``keys``."""
        sql = self._existing.get(len(keys))
        if sql is None:
            marks = ", ".join([self.mark] * len(keys))
            sql = self._existing[len(keys)] = (
                f"SELECT id, email_key, name, status FROM {Subscriber.__tablename__} WHERE email_key IN ({marks})"
            )
        return self.rows(sql, tuple(keys))

    def new_since(self, before: int) -> dict[str, int]:
        """{email_key: id} of the subscribers with an id above ``before``."""
        params: Any = (before,) if self.new_since_positional else {"before": before}
        return dict(self.rows(self.new_since_sql, params))

    def new_ids(self, keys: list[str], before: int, last_id: int | None) -> dict[str, int]:
        """{email_key: id} of the subscribers just inserted, in the order of ``keys``.

        SQLite gives the rows of one INSERT consecutive rowids in insertion order, after the highest
        so far, while the transaction holds the write lock: they are known from the last one. That is
        checked at both ends (a cheap look-up); anything unexpected falls back to asking for them.
        """
        if last_id is not None and keys:
            first_id = last_id - len(keys) + 1
            ends = dict(
                self.rows(
                    f"SELECT id, email_key FROM {Subscriber.__tablename__} WHERE id IN ({self.mark}, {self.mark})",
                    (first_id, last_id),
                )
            )
            if first_id > before and ends.get(first_id) == keys[0] and ends.get(last_id) == keys[-1]:
                return dict(zip(keys, range(first_id, last_id + 1), strict=True))
        return self.new_since(before)


class _Existing(NamedTuple):
    id: int
    email_key: str
    name: str
    status: str


class _Writer:
    """Writes batches of rows by the rules of :func:`newsletter.subscribers.service.merge`; knows nothing about CSV."""

    def __init__(
        self,
        session: Session,
        report: ImportReport,
        *,
        confirmed: bool,
        wording_version: str,
        origin: str,
        secret_key: str,
        now: datetime,
    ) -> None:
        self.session = session
        self.report = report
        self.confirmed = confirmed
        self.wording_version = wording_version
        self.origin = origin
        self.now = now
        self.secret_key = secret_key
        connection = session.connection()
        self.time_param = _time_param(connection.dialect)
        self.now_param = self.time_param(now)
        tables = cast(Table, Subscriber.__table__), cast(Table, SubscriberTag.__table__), cast(Table, Consent.__table__)
        self.insert_subscribers = _BulkInsert(
            connection,
            tables[0],
            ("email", "email_key", "name", "public_id"),
            ("status", "source", "created_at", "updated_at", "confirmed_at", "paused"),
        )
        self.insert_tags = _BulkInsert(connection, tables[1], ("subscriber_id",), ("tag",))
        self.insert_consents = _BulkInsert(
            connection,
            tables[2],
            ("subscriber_id", "given_at", "confirm_event_id"),
            ("method", "wording_version", "origin", "confirmed_at"),
        )
        self.driver = _Driver(connection)
        self.check_erasures = holds_erasures(session, secret_key)

    def _erased(self, rows: list[Row]) -> set[str]:
        if not self.check_erasures:
            return set()
        hashes = {erasure_hash(self.secret_key, r.address.key): r.address.key for r in rows}
        found = self.session.scalars(select(Erasure.address_hash).where(Erasure.address_hash.in_(hashes)))
        return {hashes[h] for h in found}

    def _known_tags(self, rows: list[Row], existing: Mapping[str, _Existing]) -> set[tuple[int, str]]:
        wanted = {tag for r in rows if r.address.key in existing for tag in r.tags}
        if not wanted:
            return set()
        statement = select(SubscriberTag.subscriber_id, SubscriberTag.tag).where(
            SubscriberTag.subscriber_id.in_([r.id for r in existing.values()]), SubscriberTag.tag.in_(wanted)
        )
        return {(subscriber_id, tag) for subscriber_id, tag in self.session.execute(statement)}

    def write(self, rows: list[Row]) -> None:
        keys = [r.address.key for r in rows]
        existing = {row[1]: _Existing(*row) for row in self.driver.existing(keys)}
        erased = self._erased([r for r in rows if r.address.key not in existing])
        tagged = self._known_tags(rows, existing)
        new: list[Row] = []
        for row in rows:
            current = existing.get(row.address.key)
            known = None
            if current is not None:
                known = Known(current.status, current.name, frozenset(t for t in row.tags if (current.id, t) in tagged))
            plan = merge(known, name=row.name, tags=row.tags, confirmed=self.confirmed)
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
        now = self.now_param
        confirmed_at = now if self.confirmed else None
        status = (Status.CONFIRMED if self.confirmed else Status.PENDING).value
        source = Source.IMPORT.value
        before = int(self.session.scalar(select(func.coalesce(func.max(Subscriber.id), 0))) or 0)
        last_id = self.insert_subscribers(
            [(r.address.email, r.address.key, r.name, new_public_id()) for r in rows],
            status,
            source,
            now,
            now,
            confirmed_at,
            False,
        )
        # The rows just inserted are above the previous highest id; a row someone else added meanwhile
        # (the web form) is not in this batch, so it is not in ids either.
        ids = self.driver.new_ids([r.address.key for r in rows], before, last_id)
        # Rows with the same choices share one tuple of tags (see TopicLabels), so grouping is cheap.
        by_tags: dict[tuple[str, ...], list[int]] = {}
        for r in rows:
            if r.tags:
                by_tags.setdefault(r.tags, []).append(ids[r.address.key])
        by_tag: dict[str, list[int]] = {}
        for tags, subscriber_ids in by_tags.items():
            for tag in tags:
                by_tag.setdefault(tag, []).extend(subscriber_ids)
        for tag, subscriber_ids in by_tag.items():
            self.insert_tags(subscriber_ids, tag)
        # Every other way in logs an event in the same transaction as the insert, and ids only grow:
        # the new rows without an event are exactly this batch's.
        is_new = (Subscriber.id > before) & ~Subscriber.events.any()
        # The import event also confirms an import made with --confirmed: only then are its ids needed.
        detail = {"file": self.origin, "confirmed": self.confirmed}
        events = self._log(is_new, EventKind.IMPORTED, detail, returning=self.confirmed)
        param = self.time_param
        self.insert_consents(
            [
                (subscriber_id, now if r.signed_up is None else param(r.signed_up), events.get(subscriber_id))
                for r in rows
                for subscriber_id in (ids[r.address.key],)
            ],
            source,
            self.wording_version,
            self.origin,
            confirmed_at,
        )
        self.report.imported += len(rows)

    def _log(
        self, which: ColumnElement[bool], kind: EventKind, detail: dict[str, Any], *, returning: bool = True
    ) -> dict[int, int]:
        """One event for each subscriber matching ``which``, in one statement; {subscriber id: event id}
        when ``returning``, else nothing."""
        statement = insert(Event).from_select(
            ["subscriber_id", "kind", "at", "actor", "detail"],
            select(
                Subscriber.id,
                literal(kind.value),
                literal(self.now, UTCDateTime()),
                literal("import"),
                literal(detail, JSON()),
            ).where(which),
        )
        if not returning:
            self.session.execute(statement)
            return {}
        result = self.session.execute(statement.returning(Event.subscriber_id, Event.id))
        return dict(result.all())

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
            event_id = self._log(this, EventKind.CONFIRMED, {"via": "import"})[subscriber_id]
            self.session.execute(
                update(Consent)
                .where(unnamed_consent(subscriber_id))
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
    topics_column: str | None = None,
    consent_column: str | None = None,
    submitted_column: str | None = None,
    topic_map: Mapping[str, str] | None = None,
    topic_choices: Mapping[str, str] | None = None,
    zone: tzinfo = UTC,
    secret_key: str = "",
    now: datetime | None = None,
) -> ImportReport:
    """Import a CSV export into the session's transaction; the caller commits or, for a dry run, rolls back.

    ``stream`` must be opened with ``newline=""`` (quoted cells may hold line breaks), as
    :func:`open_csv` opens it; cells may be separated by commas, semicolons, tabs or bars.
    ``topic_choices`` are the settings' topics ({tag: title}); ``topic_map`` maps other labels to tags
    ({label: tag}, see :func:`parse_topic_map`).
    """
    now = now or utcnow()
    report = ImportReport()
    topics = TopicLabels(topic_choices or {}, topic_map or {}, clean_tags(list(tags)))
    hints = ColumnHints(email_column, name_column, topics_column, consent_column, submitted_column)
    writer = _Writer(
        session,
        report,
        confirmed=confirmed,
        wording_version=wording_version,
        origin=origin,
        secret_key=secret_key,
        now=now,
    )
    try:
        for batch in _batches(read_rows(stream, ReadOptions(hints, topics, zone, now), report)):
            writer.write(batch)
    except csv.Error as exc:
        raise InputError(f"the file is not valid CSV ({exc}); nothing was imported") from None
    report.unknown_topics = list(topics.unknown)
    return report
