"""Whole `newsletter campaign send` processes: killed with SIGKILL, started twice at once, run as workers."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import _fresh_postgres_database
from tests.support.campaigns import FAQ_CAMPAIGN, SECRET_ENV, add_subscribers, write_campaign
from tests.support.smtp_servers import RecordingHandler, smtp_server


def command(project: Path, database_url: str, url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "newsletter",
        "--project",
        str(project),
        "--db",
        database_url,
        "campaign",
        "send",
        "faq",
        "--yes",
        "--json",
        "--transport",
        url,
        *extra,
    ]


def environment() -> dict[str, str]:
    return {**os.environ, **SECRET_ENV}


def finish(process: subprocess.Popen[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    out, err = process.communicate(timeout=120)
    assert process.returncode in (0, 75), err
    return process.returncode, json.loads(out)


def received(handler: RecordingHandler) -> collections.Counter[str]:
    return collections.Counter(r for item in handler.received for r in item.recipients)


def sent_rows(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT s.email FROM outbox o JOIN subscribers s ON s.id = o.subscriber_id WHERE o.state = 'sent'")
        )
        emails = {row[0] for row in rows}
    engine.dispose()
    return emails


def wait_for(condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_sigkill_mid_run_then_the_same_command_again(project: Path, database_url: str) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 40)
    handler = RecordingHandler()
    with smtp_server(handler) as server:
        first = subprocess.Popen(
            command(project, database_url, server.url(), "--rate", "25"),
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: len(handler.received) >= 10)
        first.kill()  # SIGKILL: no cleanup of any kind
        first.wait()
        assert first.returncode == -signal.SIGKILL
        first.stdout.close()  # type: ignore[union-attr]
        first.stderr.close()  # type: ignore[union-attr]
        recorded = sent_rows(database_url)
        before = received(handler)
        second = subprocess.Popen(
            command(project, database_url, server.url()),
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        code, data = finish(second)
    after = received(handler) - before
    assert code == 0 and data["pending"] == 0 and data["sent"] == 40
    assert set(received(handler)) == set(emails)  # nobody skipped
    assert not recorded & set(after)  # no row recorded as sent went out again
    duplicated = [e for e, n in received(handler).items() if n > 1]
    assert all(n <= 2 for n in received(handler).values())  # in flight at the kill: at most once more
    assert len(duplicated) <= data["possibly_duplicated"] <= 1  # one connection: one message in flight


def test_two_sends_started_at_the_same_moment_send_each_row_once(project: Path, database_url: str) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 60)
    handler = RecordingHandler()
    with smtp_server(handler) as server:
        processes = [
            subprocess.Popen(
                command(project, database_url, server.url(), "--connections", "2", "--rate", "60"),
                env=environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [finish(p) for p in processes]
        code, data = finish(
            subprocess.Popen(
                command(project, database_url, server.url()),
                env=environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    assert code == 0 and data["sent"] == 60
    assert received(handler) == collections.Counter(emails)  # each exactly once
    assert sum(r[1]["this_run"]["sent"] for r in results) == 60


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    yield from _fresh_postgres_database(postgres_admin_url)


@pytest.mark.postgres
def test_postgresql_workers_share_a_campaign_without_duplicates(project: Path, postgres_url: str) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(postgres_url, 80)
    handler = RecordingHandler()
    with smtp_server(handler) as server:
        # The first run fixes the audience and sends one message; the workers join it.
        code, data = finish(
            subprocess.Popen(
                command(project, postgres_url, server.url(), "--limit", "1"),
                env=environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        assert (code, data["sent"], data["pending"]) == (75, 1, 79)
        workers = [
            subprocess.Popen(
                command(project, postgres_url, server.url(), "--worker", "--rate", "20"),
                env=environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [finish(w) for w in workers]
    per_worker = [r[1]["this_run"]["sent"] for r in results]
    assert all(n > 0 for n in per_worker), per_worker  # both took part
    assert sum(per_worker) == 79
    assert received(handler) == collections.Counter(emails)
