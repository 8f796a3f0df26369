"""Whole `newsletter campaign send` processes: killed with SIGKILL, started twice at once, run as workers."""

from __future__ import annotations

import asyncio
import collections
import contextlib
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


class SlowPipelining(RecordingHandler):
    """Advertises PIPELINING and takes 50 ms over each message, so that each connection always has one
    message on the server."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


@contextlib.contextmanager
def writes_blocked(database_url: str) -> Iterator[None]:
    """Hold the database's write lock: every group commit of a send waits for it, mid-transaction."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")
            connection.exec_driver_sql("LOCK TABLE outbox IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            connection.exec_driver_sql("ROLLBACK")
    engine.dispose()


def test_sigkill_during_a_group_commit_duplicates_at_most_one_per_connection(project: Path, database_url: str) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 160)
    handler = SlowPipelining()
    connections = 4
    with smtp_server(handler) as server:
        first = subprocess.Popen(
            command(project, database_url, server.url(), "--connections", str(connections), "--rate", "0"),
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: len(handler.received) >= 20)
        with writes_blocked(database_url):
            # Each connection finishes the message whose end it had sent, then waits for the group
            # commit that records it: nothing more can go out while outcomes are not committed.
            time.sleep(1.0)
            stalled_at = len(handler.received)
            time.sleep(1.0)
            assert len(handler.received) == stalled_at
            first.kill()  # SIGKILL while the group's transaction waits for the lock
            first.wait()
        assert first.returncode == -signal.SIGKILL
        recorded = sent_rows(database_url)
        before = received(handler)
        code, data = finish(
            subprocess.Popen(
                command(project, database_url, server.url(), "--connections", str(connections)),
                env=environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    after = received(handler) - before
    assert code == 0 and data["pending"] == 0 and data["sent"] == 160
    assert set(received(handler)) == set(emails)  # nobody skipped
    assert not recorded & set(after)  # no row recorded as sent went out again
    duplicated = [e for e, n in received(handler).items() if n > 1]
    assert all(n <= 2 for n in received(handler).values())
    assert duplicated  # the blocked commit really held delivered outcomes
    assert len(duplicated) <= data["possibly_duplicated"] <= connections  # at most one per connection


def test_a_worker_started_first_waits_for_the_campaign_to_start(project: Path, database_url: str) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 30)
    handler = RecordingHandler()
    with smtp_server(handler) as server:
        worker = subprocess.Popen(
            command(project, database_url, server.url(), "--worker", "--wait", "30", "--rate", "30"),
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)  # the worker is up and waiting
        assert worker.poll() is None
        starter = subprocess.Popen(
            command(project, database_url, server.url(), "--rate", "30"),
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        results = [finish(worker), finish(starter)]
        late = subprocess.run(
            command(project, "sqlite:///" + str(project / "never.db"), server.url(), "--worker", "--wait", "0.5"),
            env=environment(),
            capture_output=True,
            text=True,
        )
    assert received(handler) == collections.Counter(emails)
    assert all(r[1]["this_run"]["sent"] > 0 for r in results)  # both took part
    assert late.returncode == 1 and "has not started sending within 0.5 s" in late.stderr


def test_two_workers_share_one_rate(project: Path, database_url: str) -> None:
    """--rate is the campaign's, whatever the number of workers: two at 20/s send 20/s together."""
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    add_subscribers(database_url, 40)
    arrivals: list[float] = []

    class Timed(RecordingHandler):
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            arrivals.append(time.monotonic())
            return await super().handle_DATA(server, session, envelope)

    with smtp_server(Timed()) as server:
        processes = [
            subprocess.Popen(
                command(project, database_url, server.url(), *extra, "--rate", "20"),
                env=environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for extra in ((), ("--worker", "--wait", "30"))
        ]
        results = [finish(p) for p in processes]
    assert sum(r[1]["this_run"]["sent"] for r in results) == 40 and len(arrivals) == 40
    achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert achieved <= 20 * 1.1  # one pace for both, not 20/s each
