from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from newsletter.delivery.transports import TemporaryFailure
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store import lease
from newsletter.store.engine import Store
from tests.conftest import Newsletter
from tests.support.campaigns import FAQ_CAMPAIGN, SECRET_ENV, add_subscribers, write_campaign
from tests.support.smtp_servers import RecordingHandler, smtp_server

ENV = {**SECRET_ENV, "NEWSLETTER_TRANSPORT": "memory:", "NEWSLETTER_RETRY_BASE": "0.01", "NEWSLETTER_MAX_ATTEMPTS": "2"}


def scheduled(when: str, subject: str = "Can I get addicted to ketamine?") -> str:
    return FAQ_CAMPAIGN.replace("subject: Can I get addicted to ketamine?", f"subject: {subject}\nsend_at: {when}")


def due(newsletter: Newsletter, *args: str, env: dict[str, str] = ENV):  # type: ignore[no-untyped-def]
    return newsletter("send-due", "--yes", "--json", *args, env=env)


def setup_function() -> None:
    MemoryTransport.reset()


def test_nothing_due_exits_0(newsletter: Newsletter, project: Path) -> None:
    result = due(newsletter)
    assert result.exit_code == 0 and json.loads(result.output)["campaigns"] == []
    write_campaign(project, "later", scheduled("2030-01-01T09:00:00+00:00"))
    write_campaign(project, "unscheduled", FAQ_CAMPAIGN)
    result = newsletter("send-due", env=ENV)  # no --yes needed when nothing is due
    assert result.exit_code == 0 and "Nothing is due" in result.output


def test_due_campaigns_are_sent_once_and_resumed(newsletter: Newsletter, project: Path, database_url: str) -> None:
    emails = add_subscribers(database_url, 3)
    write_campaign(project, "first", scheduled("2026-11-24T09:00:00+01:00", "First"))
    write_campaign(project, "second", scheduled("2026-11-24T09:00:00+00:00", "Second"))
    write_campaign(project, "future", scheduled("2026-12-24T09:00:00+00:00", "Future"))
    MemoryTransport.fail_recipient(emails[0], TemporaryFailure(451, "later"))
    first = due(newsletter, "--now", "2026-11-24T12:00:00+00:00")
    data = json.loads(first.output)
    assert first.exit_code == 75 and data["exit_code"] == 75
    assert [(c["campaign"], c["outcome"], c["sent"], c["pending"]) for c in data["campaigns"]] == [
        ("first", "pending", 2, 1),
        ("second", "pending", 2, 1),
    ]
    MemoryTransport.fail_recipient(emails[0], None)
    second = due(newsletter, "--now", "2026-11-24T12:05:00+00:00")
    assert second.exit_code == 0
    assert [c["outcome"] for c in json.loads(second.output)["campaigns"]] == ["sent", "sent"]
    third = due(newsletter, "--now", "2026-11-24T12:10:00+00:00")
    assert third.exit_code == 0 and json.loads(third.output)["campaigns"] == []
    per_recipient = collections.Counter(m.recipient for m in MemoryTransport.outbox())
    assert per_recipient == collections.Counter(dict.fromkeys(emails, 2))


def test_a_broken_campaign_is_reported_and_the_others_still_go(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    add_subscribers(database_url, 1)
    write_campaign(project, "good", scheduled("2026-11-24T09:00:00+00:00"))
    write_campaign(project, "broken", "---\nsubject: [unclosed\n---\nbody\n")
    result = due(newsletter, "--now", "2026-11-24T12:00:00+00:00")
    data = json.loads(result.output)
    assert result.exit_code == 1
    outcomes = {c["campaign"]: c["outcome"] for c in data["campaigns"]}
    assert outcomes == {"broken": "error", "good": "sent"}


def test_bad_now_and_missing_yes(newsletter: Newsletter, project: Path, database_url: str) -> None:
    naive = newsletter("send-due", "--now", "2026-11-24T12:00:00", env=ENV)
    assert naive.exit_code == 1 and "offset" in naive.output
    add_subscribers(database_url, 1)
    write_campaign(project, "good", scheduled("2026-11-24T09:00:00+00:00"))
    refused = newsletter("send-due", "--now", "2026-11-24T12:00:00+00:00", env=ENV)
    assert refused.exit_code == 1 and "--yes" in refused.output
    assert MemoryTransport.outbox() == []


def test_a_held_lease_blocks_others_until_it_expires(store: Store) -> None:
    assert lease.try_acquire(store, "send-due", "a", timedelta(minutes=2))
    assert not lease.try_acquire(store, "send-due", "b", timedelta(minutes=2))
    assert lease.try_acquire(store, "send-due", "a", timedelta(minutes=2))  # the holder renews
    assert lease.try_acquire(store, "other", "b", timedelta(minutes=2))  # names are independent
    assert lease.try_acquire(store, "expired", "a", timedelta(seconds=-1))
    assert lease.try_acquire(store, "expired", "b", timedelta(minutes=2))  # an expired lease is taken over
    lease.release(store, "send-due", "a")
    assert lease.try_acquire(store, "send-due", "b", timedelta(minutes=2))


def test_two_send_due_processes_at_once_send_each_message_once(project: Path, database_url: str) -> None:
    emails = add_subscribers(database_url, 30)
    write_campaign(project, "first", scheduled("2026-11-24T09:00:00+00:00", "First"))
    write_campaign(project, "second", scheduled("2026-11-24T09:00:00+00:00", "Second"))
    handler = RecordingHandler()
    with smtp_server(handler) as server:
        env = {**os.environ, **SECRET_ENV, "NEWSLETTER_TRANSPORT": server.url(), "NEWSLETTER_RATE": "30"}
        argv = [
            sys.executable,
            "-m",
            "newsletter",
            "--project",
            str(project),
            "--db",
            database_url,
            "send-due",
            "--yes",
            "--json",
            "--now",
            "2026-11-24T12:00:00+00:00",
        ]
        processes = [
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
        ]
        outputs = [p.communicate(timeout=120) for p in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    reports = [json.loads(out) for out, _ in outputs]
    # Usually the second run finds the lease held; on a slow machine it may start after the first
    # finished and find nothing due. Either way, every message goes out exactly once.
    assert not all(r["locked_by_another_run"] for r in reports)
    sent = [c["this_run"]["sent"] for r in reports for c in r["campaigns"]]
    assert sum(sent) == 60
    received = collections.Counter(r for item in handler.received for r in item.recipients)
    assert received == collections.Counter(dict.fromkeys(emails, 2))


def test_a_send_at_long_past_is_refused_unless_the_campaign_already_started(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    add_subscribers(database_url, 2)
    write_campaign(project, "stale", scheduled("2026-11-20T09:00:00+00:00", "Stale"))
    write_campaign(project, "recent", scheduled("2026-11-23T13:00:00+00:00", "Recent"))  # 23 hours before now
    result = due(newsletter, "--now", "2026-11-24T12:00:00+00:00")
    data = json.loads(result.output)
    assert result.exit_code == 1
    outcomes = {c["campaign"]: (c["outcome"], c.get("error", "")) for c in data["campaigns"]}
    assert outcomes["recent"][0] == "sent"
    assert outcomes["stale"][0] == "error" and "more than 24 hours in the past" in outcomes["stale"][1]
    assert {m.recipient for m in MemoryTransport.outbox()} and len(MemoryTransport.outbox()) == 2  # only "recent"
    text = newsletter("send-due", "--yes", "--now", "2026-11-24T12:00:00+00:00", env=ENV).output
    assert "stale: error: send_at 2026-11-20T09:00:00+00:00 is more than 24 hours in the past" in text
    # Once staff start it by hand, the schedule resumes it like any partly sent campaign.
    started = newsletter("campaign", "send", "stale", "--yes", "--limit", "1", env=ENV)
    assert started.exit_code == 75
    resumed = due(newsletter, "--now", "2026-11-24T12:05:00+00:00")
    assert {c["campaign"]: c["outcome"] for c in json.loads(resumed.output)["campaigns"]} == {"stale": "sent"}
