"""The store: engine, sessions and schema upgrades (Alembic migrations shipped in the package)."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, Engine, Result, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from newsletter.config import mask_url
from newsletter.errors import StoreError
from newsletter.files import touch_private

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration. Kept here so that opening the store does not import Alembic (a test checks it
# against the migration scripts); every command opens the store, only `init` migrates.
SCHEMA_REVISION = "0007_public_ids"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# RETURNING (the send ledger's claims, bounces, the signup intake) came in 3.35; json_each (the
# import) is built in since then on every usual build. Debian 12 has 3.40.
SQLITE_MINIMUM = (3, 35, 0)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets a web process read while a send writes; the busy timeout makes writers queue, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


SUPPORTED = "the supported databases are SQLite (sqlite:///subscribers.db) and PostgreSQL (postgresql+psycopg://user@host/dbname)"


class UnsupportedDatabase(StoreError):
    """A database URL for a backend or driver this project does not run on."""

    exit_code = 2  # a usage error, like a bad option


def _check_backend(url: URL) -> None:
    # From the name alone: asking SQLAlchemy for the driver would import it (and fail for MySQL).
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        fixed = mask_url(url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
        raise UnsupportedDatabase(f"unusable database URL: postgres:// is not understood; write {fixed}")
    if (backend, driver) not in {("sqlite", ""), ("sqlite", "pysqlite"), ("postgresql", "psycopg")}:
        raise UnsupportedDatabase(f"unusable database URL: {url.drivername}:// is not supported; {SUPPORTED}")


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings this project relies on."""
    try:
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
        _check_backend(parsed)
        if parsed.get_backend_name() == "sqlite":
            if sqlite3.sqlite_version_info < SQLITE_MINIMUM:
                raise StoreError(
                    f"this Python's SQLite is {sqlite3.sqlite_version}; the store needs "
                    f"{'.'.join(map(str, SQLITE_MINIMUM))} or newer (or use PostgreSQL)"
                )
            if parsed.database and parsed.database != ":memory:":
                folder = Path(parsed.database).parent
                if not folder.is_dir():
                    raise StoreError(f"cannot create the store: folder {folder} does not exist")
                # SQLite gives its -wal and -shm files the mode of the database file.
                touch_private(Path(parsed.database))
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise StoreError(f"unusable database URL: {exc}") from exc


def _upgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def affected(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (SQLAlchemy types ``execute`` as a plain Result)."""
    return cast("CursorResult[Any]", result).rowcount or 0


@dataclass
class Store:
    """A database with the project's schema: its engine (for Core reads) and sessions for the ORM."""

    engine: Engine

    @functools.cached_property
    def sessions(self) -> sessionmaker[Session]:
        # The ORM loads with the first session: a command that reads with Core alone never pays for
        # it (``subscribers list`` starts about a fifth faster).
        from sqlalchemy.orm import sessionmaker

        return sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self, *, commit: bool = True) -> Iterator[Session]:
        """A session in one transaction: committed on success (unless ``commit`` is false, as for a
        dry run), rolled back on any exception."""
        with self.sessions() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise
            if commit:
                session.commit()
            else:
                session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()


def _describe(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    return str(original or exc).strip().splitlines()[0]


def init_store(url: str) -> tuple[str | None, str | None]:
    """Create the schema or upgrade it to the newest revision. Safe to run any number of times.

    Returns the revision before and after.
    """
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        _upgrade(engine)
        return before, current_revision(engine)
    except OperationalError as exc:
        raise StoreError(f"cannot reach the store: {_describe(exc)}") from exc
    finally:
        engine.dispose()


def open_store(url: str, *, create: bool = True) -> Store:
    """Open the store at ``url``.

    An empty database is initialised on first use when ``create`` is true. A store at an older revision
    is never upgraded behind the user's back: that takes ``newsletter init``.
    """
    engine = make_engine(url)
    try:
        revision = current_revision(engine)
        if revision is None:
            if not create:
                raise StoreError("the store is not initialised; run `newsletter init`")
            if inspect(engine).get_table_names():
                raise StoreError("the database holds tables that are not a newsletter store")
            _upgrade(engine)
        elif revision != SCHEMA_REVISION:
            raise StoreError(
                f"the store is at schema revision {revision}, this version needs {SCHEMA_REVISION}; "
                "run `newsletter init` to upgrade it"
            )
    except OperationalError as exc:
        engine.dispose()
        raise StoreError(f"cannot reach the store: {_describe(exc)}") from exc
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)
