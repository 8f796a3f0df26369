from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from newsletter.errors import StoreError
from newsletter.store.engine import MIGRATIONS, SCHEMA_REVISION, init_store, make_engine, open_store
from newsletter.store.models import Base


def test_init_creates_then_leaves_an_up_to_date_store_alone(database_url: str) -> None:
    assert init_store(database_url) == (None, SCHEMA_REVISION)
    assert init_store(database_url) == (SCHEMA_REVISION, SCHEMA_REVISION)


def test_migrations_match_the_models(database_url: str) -> None:
    init_store(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_the_schema_revision_constant_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == SCHEMA_REVISION


def test_sqlite_runs_with_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    store.dispose()


def test_an_outdated_store_is_not_upgraded_behind_the_users_back(database_url: str) -> None:
    init_store(database_url)
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    engine.dispose()
    with pytest.raises(StoreError, match="run `newsletter init`"):
        open_store(database_url)


def test_a_foreign_database_is_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE customers (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(StoreError, match="not a newsletter store"):
        open_store(database_url)


def test_unreachable_or_malformed_stores_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    with pytest.raises(StoreError, match="unusable database URL"):
        make_engine("nosuchdb://x")
    with pytest.raises(StoreError, match="cannot reach the store"):
        init_store("postgresql+psycopg://nobody@127.0.0.1:1/none")
