"""Sending a campaign through the smtp transport into real aiosmtpd servers, faults included."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

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


FAST = {**SECRET_ENV, "NEWSLETTER_RETRY_BASE": "0.05"}


def send(newsletter: Newsletter, url: str, *extra: str, env: dict[str, str] = FAST) -> tuple[int, dict[str, Any]]:
    result = newsletter("campaign", "send", "faq", "--transport", url, "--yes", "--json", *extra, env=env)
    return result.exit_code, json.loads(result.output) if result.output.startswith("{") else {"output": result.output}


def received(handler: RecordingHandler) -> collections.Counter[str]:
    return collections.Counter(r for item in handler.received for r in item.recipients)


def test_451_then_success(newsletter: Newsletter, project: Path, database_url: str) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 4)
    handler = ScriptedHandler({emails[1]: ["451 4.7.1 Greylisted, try again", "451 4.7.1 Still greylisted"]})
    with smtp_server(handler) as server:
        code, data = send(newsletter, server.url())
    assert code == 0 and data["sent"] == 4 and data["this_run"]["retry"] == 2
    assert received(handler) == collections.Counter(emails)
    assert all(len(item.recipients) == 1 for item in handler.received)


def test_550_fails_and_bounces_only_those_addresses(newsletter: Newsletter, project: Path, database_url: str) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 5)
    handler = RecordingHandler(
        rcpt_replies={emails[0]: "550 5.1.1 No such user", emails[3]: "553 5.1.3 Bad address syntax"}
    )
    with smtp_server(handler) as server:
        code, data = send(newsletter, server.url())
    assert code == 0 and (data["sent"], data["failed"]) == (3, 2)
    statuses = {e: json.loads(newsletter("subscribers", "show", e, "--json").output)["status"] for e in emails}
    assert statuses == {e: "bounced" if e in (emails[0], emails[3]) else "confirmed" for e in emails}


def test_connection_cut_before_the_reply_to_data(newsletter: Newsletter, project: Path, database_url: str) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 3)
    handler = ScriptedHandler({}, data_script={emails[1]: [DROP]})
    with smtp_server(handler) as server:
        code, data = send(newsletter, server.url())
    assert code == 0 and data["sent"] == 3
    # The drop came after the whole message was sent: it may have been delivered, so it is flagged.
    assert data["possibly_duplicated"] == 1
    assert received(handler) == collections.Counter(emails)


def test_a_stalled_server_times_out_and_leaves_the_message_pending(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 2)
    handler = ScriptedHandler({}, data_script={emails[0]: [STALL, STALL]})
    env = {**FAST, "NEWSLETTER_MAX_ATTEMPTS": "2"}
    with smtp_server(handler) as server:
        code, data = send(newsletter, server.url(timeout="0.5"), env=env)
        assert code == 75 and (data["sent"], data["pending"]) == (1, 1)
        code, data = send(newsletter, server.url(timeout="5"), env=env)
    assert code == 0 and data["pending"] == 0
    assert received(handler) == collections.Counter(emails)


def test_an_unreachable_server_exits_75_with_a_warning(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    add_subscribers(database_url, 2)
    code, data = send(newsletter, "smtp://127.0.0.1:1?tls=none&timeout=2")
    assert code == 75 and data["pending"] == 2 and "cannot connect" in data["warnings"][0]
