"""Sending a campaign through the smtp transport into real aiosmtpd servers, faults included.

Each fault runs at 1, 4 and 20 connections, against a server that advertises PIPELINING (as Postfix
and the big relays do) and, at one connection, one that does not (aiosmtpd's default).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import Newsletter
from tests.support.campaigns import FAQ_CAMPAIGN, SECRET_ENV, add_subscribers, write_campaign
from tests.support.smtp_servers import DROP, STALL, RecordingHandler, smtp_server


class ScriptedHandler(RecordingHandler):
    """Answers each listed recipient's first RCPTs from a script, then accepts them."""

    def __init__(self, script: dict[str, list[str]], data_script: dict[str, list[str]] | None = None) -> None:
        super().__init__()
        self.script = {k: collections.deque(v) for k, v in script.items()}
        self.data_script = {k: collections.deque(v) for k, v in (data_script or {}).items()}

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        replies = self.script.get(address)
        if replies:
            self.rcpt_replies[address] = replies.popleft()
        else:
            self.rcpt_replies.pop(address, None)
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for recipient in envelope.rcpt_tos:
            replies = self.data_script.get(recipient)
            if replies:
                self.data_replies[recipient] = replies.popleft()
            else:
                self.data_replies.pop(recipient, None)
        return await super().handle_DATA(server, session, envelope)


class PipeliningScript(ScriptedHandler):
    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


FAST = {**SECRET_ENV, "NEWSLETTER_RETRY_BASE": "0.05"}
SHAPES = [(1, False), (1, True), (4, True), (20, True)]


@pytest.fixture(params=SHAPES, ids=[f"{c}conn{'-pipelining' if p else ''}" for c, p in SHAPES])
def shape(request: pytest.FixtureRequest) -> tuple[int, bool]:
    return request.param  # type: ignore[no-any-return]


def handler_for(shape: tuple[int, bool], script: dict[str, list[str]], data_script: dict[str, list[str]] | None = None):  # type: ignore[no-untyped-def]
    return (PipeliningScript if shape[1] else ScriptedHandler)(script, data_script)


def send(
    newsletter: Newsletter, url: str, *extra: str, env: dict[str, str] = FAST, connections: int = 1
) -> tuple[int, dict[str, Any]]:
    result = newsletter(
        "campaign", "send", "faq", "--transport", url, "--yes", "--json", "--connections", str(connections), *extra,
        env=env,
    )  # fmt: skip
    return result.exit_code, json.loads(result.output) if result.output.startswith("{") else {"output": result.output}


def received(handler: RecordingHandler) -> collections.Counter[str]:
    return collections.Counter(r for item in handler.received for r in item.recipients)


def test_451_then_success(newsletter: Newsletter, project: Path, database_url: str, shape: tuple[int, bool]) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 4)
    handler = handler_for(shape, {emails[1]: ["451 4.7.1 Greylisted, try again", "451 4.7.1 Still greylisted"]})
    with smtp_server(handler) as server:
        code, data = send(newsletter, server.url(), connections=shape[0])
    assert code == 0 and data["sent"] == 4 and data["this_run"]["retry"] == 2
    assert received(handler) == collections.Counter(emails)
    assert all(len(item.recipients) == 1 for item in handler.received)


def test_550_fails_and_bounces_only_those_addresses(
    newsletter: Newsletter, project: Path, database_url: str, shape: tuple[int, bool]
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 5)
    handler = handler_for(shape, {emails[0]: ["550 5.1.1 No such user"], emails[3]: ["553 5.1.3 Bad address syntax"]})
    with smtp_server(handler) as server:
        code, data = send(newsletter, server.url(), connections=shape[0])
    assert code == 0 and (data["sent"], data["failed"]) == (3, 2)
    statuses = {e: json.loads(newsletter("subscribers", "show", e, "--json").output)["status"] for e in emails}
    assert statuses == {e: "bounced" if e in (emails[0], emails[3]) else "confirmed" for e in emails}


def test_connection_cut_before_the_reply_to_data(
    newsletter: Newsletter, project: Path, database_url: str, shape: tuple[int, bool]
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 3)
    handler = handler_for(shape, {}, data_script={emails[1]: [DROP]})
    with smtp_server(handler) as server:
        code, data = send(newsletter, server.url(), connections=shape[0])
    assert code == 0 and data["sent"] == 3
    # The drop came after the whole message was sent: it may have been delivered, so it is flagged.
    assert data["possibly_duplicated"] == 1
    assert received(handler) == collections.Counter(emails)


def test_a_stalled_server_times_out_and_leaves_the_message_pending(
    newsletter: Newsletter, project: Path, database_url: str, shape: tuple[int, bool]
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 2)
    handler = handler_for(shape, {}, data_script={emails[0]: [STALL, STALL]})
    env = {**FAST, "NEWSLETTER_MAX_ATTEMPTS": "2"}
    with smtp_server(handler) as server:
        code, data = send(newsletter, server.url(timeout="0.5"), env=env, connections=shape[0])
        assert code == 75 and (data["sent"], data["pending"]) == (1, 1)
        code, data = send(newsletter, server.url(timeout="5"), env=env, connections=shape[0])
    assert code == 0 and data["pending"] == 0
    assert received(handler) == collections.Counter(emails)


def test_an_unreachable_server_exits_75_with_a_warning(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    add_subscribers(database_url, 2)
    code, data = send(newsletter, "smtp://127.0.0.1:1?tls=none&timeout=2")
    assert code == 75 and data["pending"] == 2 and "cannot connect" in data["warnings"][0]


def test_status_says_why_messages_wait_without_addresses(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 5)
    handler = RecordingHandler(
        rcpt_replies={
            emails[0]: f"451 4.7.1 <{emails[0]}>: greylisted, try later",
            emails[1]: f"451 4.7.1 <{emails[1]}>: greylisted, try later",
            emails[2]: "550 5.1.1 No such user",
        }
    )
    env = {**FAST, "NEWSLETTER_MAX_ATTEMPTS": "1"}
    with smtp_server(handler) as server:
        code, data = send(newsletter, server.url(), env=env)
    assert code == 75 and (data["sent"], data["failed"], data["pending"]) == (2, 1, 2)
    status = json.loads(newsletter("campaign", "status", "faq", "--json").output)
    assert (status["pending"], status["failed"]) == (2, 1)  # the existing fields stay
    lines = [reason["line"] for reason in status["reasons"]]
    assert lines == ["451 4.7.1 <redacted>: greylisted, try later \u00d72", "550 5.1.1 No such user \u00d71"]
    assert [(r["state"], r["code"], r["status"], r["count"]) for r in status["reasons"]] == [
        ("pending", 451, "4.7.1", 2),
        ("failed", 550, "5.1.1", 1),
    ]
    text = newsletter("campaign", "status", "faq").output
    assert "pending: 451 4.7.1 <redacted>: greylisted, try later \u00d72" in text
    assert "failed: 550 5.1.1 No such user \u00d71" in text
    assert not any(email in text + json.dumps(status) for email in emails)


def test_the_send_summary_separates_this_run_from_earlier_ones(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    add_subscribers(database_url, 3)
    with smtp_server(RecordingHandler()) as server:
        first = newsletter("campaign", "send", "faq", "--transport", server.url(), "--yes", "--limit", "1", env=FAST)
        again = newsletter("campaign", "send", "faq", "--transport", server.url(), "--yes", env=FAST)
        last = newsletter("campaign", "send", "faq", "--transport", server.url(), "--yes", env=FAST)
        code, data = send(newsletter, server.url())
    assert code == 0 and (data["this_run"]["sent"], data["sent_earlier"], data["sent"]) == (0, 3, 3)
    assert first.exit_code == 75 and "faq: 1 sent now; 0 already sent earlier;" in first.output
    assert again.exit_code == 0 and "faq: 2 sent now; 1 already sent earlier;" in again.output
    assert last.exit_code == 0 and "faq: 0 sent now; 3 already sent earlier;" in last.output
