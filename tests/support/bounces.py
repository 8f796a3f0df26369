"""Returned messages built against real sent messages, as the MTAs and providers in the sample corpus
(tests/data/bounces/) write them: a Postfix DSN, an ARF complaint, an auto-reply, a person's reply.

Each takes the bytes of a message as the file transport wrote it (``Return-Path:`` first, then the
message), so a test can send a campaign, then build what would come back for any of its messages.
"""

from __future__ import annotations

import email
import email.policy
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from newsletter.delivery import ledger
from newsletter.store.engine import Store
from newsletter.store.models import OutboxRow, OutboxState, utcnow
from newsletter.subscribers import service
from tests.support.campaigns import FAQ_CAMPAIGN, add_subscribers, write_campaign

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bounces"
BOUNCE_ADDRESS = "bounce@news.harvest.example"
_serial = itertools.count(1)


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


class Sent:
    """What a bounce needs to know about a sent message."""

    def __init__(self, data: bytes) -> None:
        message = email.message_from_bytes(data, policy=email.policy.compat32)
        self.return_path = parseaddr(message["Return-Path"])[1]
        self.to = parseaddr(message["To"])[1]
        self.message_id = message["Message-ID"].strip()
        self.subject = str(message["Subject"])
        self.headers = data.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n", "\n")

    @classmethod
    def from_file(cls, path: Path) -> Sent:
        return cls(path.read_bytes())

    def returned_headers(self, *, keep_return_path: bool = True) -> str:
        lines = self.headers.splitlines()
        if not keep_return_path:
            lines = [line for line in lines if not line.startswith("Return-Path:")]
        return "\n".join(lines)


def dsn(
    sent: Sent,
    *,
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str = "smtp; 550 5.1.1 <{to}>: Recipient address rejected: User unknown in local recipient table",
    verp: bool = True,
    recipient: str | None = None,
    message_id: str | None = None,
) -> bytes:
    """A Postfix delivery status notification. With ``verp=False`` the relay rewrote the envelope:
    the bounce arrives at the plain bounce address and the returned headers lose the Return-Path."""
    to = sent.return_path if verp else BOUNCE_ADDRESS
    final = recipient or sent.to
    serial = next(_serial)
    boundary = f"4Xy{serial:05}Z.1793783647/relay.news.harvest.example"
    diagnostic = diagnostic.format(to=final)
    subject = "Delayed Mail (still being retried)" if action == "delayed" else "Undelivered Mail Returned to Sender"
    return f"""Return-Path: <>
Delivered-To: {to}
Date: Tue,  3 Nov 2026 09:14:07 +0000 (UTC)
From: MAILER-DAEMON@relay.news.harvest.example (Mail Delivery System)
Subject: {subject}
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="{boundary}"
Message-Id: {message_id or f"<20261103091407.4Xy{serial:05}Z@relay.news.harvest.example>"}

This is a MIME-encapsulated message.

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host relay.news.harvest.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<{final}>: host mx.example.org[192.0.2.25] said: {diagnostic.removeprefix("smtp; ")}

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.news.harvest.example
X-Postfix-Queue-ID: 4Xy{serial:05}Z
Arrival-Date: Tue,  3 Nov 2026 09:14:05 +0000 (UTC)

Final-Recipient: rfc822; {final}
Original-Recipient: rfc822;{final}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: {diagnostic}

--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{sent.returned_headers(keep_return_path=verp)}

--{boundary}--
""".encode()


def arf(sent: Sent, *, original_rcpt_to: bool = True, verp: bool = False) -> bytes:
    """A feedback-loop complaint (RFC 5965). Providers send these to the address registered for the
    loop, not to the VERP address; some name the recipient, some redact it."""
    serial = next(_serial)
    rcpt = f"Original-Rcpt-To: <{sent.to}>\n" if original_rcpt_to else ""
    mail_from = sent.return_path if verp else BOUNCE_ADDRESS
    headers = sent.returned_headers(keep_return_path=verp)
    if not original_rcpt_to:
        headers = headers.replace(sent.to, "redacted@fbl.example.net")
    return f"""Return-Path: <>
Delivered-To: fbl@news.harvest.example
From: Example Mail Feedback Loop <feedbackloop@fbl.mail.example.com>
To: fbl@news.harvest.example
Subject: FW: {sent.subject}
Date: Wed, 4 Nov 2026 18:02:44 +0000
Message-ID: <fbl.{serial}.1793815364@fbl.mail.example.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
	boundary="----=_Part_{serial}"

------=_Part_{serial}
Content-Type: text/plain; charset=us-ascii

This is an email abuse report for an email message received from IP 198.51.100.7.

------=_Part_{serial}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleMail-FBL/2.1
Version: 1
Original-Mail-From: <{mail_from}>
{rcpt}Arrival-Date: Tue, 03 Nov 2026 09:14:12 +0000
Source-IP: 198.51.100.7
Reported-Domain: news.harvest.example

------=_Part_{serial}
Content-Type: text/rfc822-headers

{headers}

------=_Part_{serial}--
""".encode()


def auto_reply(sent: Sent) -> bytes:
    """An out-of-office answer, sent to the envelope sender as RFC 3834 asks."""
    serial = next(_serial)
    return f"""Return-Path: <>
Delivered-To: {sent.return_path}
From: <{sent.to}>
To: <{sent.return_path}>
Subject: Automatic reply: {sent.subject}
Date: Tue, 3 Nov 2026 09:15:40 +0000
Message-ID: <oof.{serial}@mail.example.org>
In-Reply-To: {sent.message_id}
Auto-Submitted: auto-replied
Content-Type: text/plain; charset="utf-8"

I am out of the office until Monday.
""".encode()


def person_reply(sent: Sent, text: str) -> bytes:
    serial = next(_serial)
    return f"""Return-Path: <{sent.to}>
Delivered-To: {sent.return_path}
From: <{sent.to}>
To: <{sent.return_path}>
Subject: Re: {sent.subject}
Date: Tue, 3 Nov 2026 10:02:11 +0000
Message-ID: <reply.{serial}@mail.example.org>
In-Reply-To: {sent.message_id}
Content-Type: text/plain; charset="utf-8"

{text}

> Hi, three client stories this month.
""".encode()


def record_sends(store: Store, email: str, count: int, *, first: datetime | None = None) -> list[int]:
    """``count`` campaigns, each recorded as sent to ``email`` a day apart; their outbox ids, oldest first."""
    start = first or utcnow() - timedelta(days=count)
    ids = []
    with store.session() as session:
        subscriber_id = service.get(session, email).id
        for n in range(count):
            campaign = ledger.record_campaign(session, f"c{n}-{email.partition('@')[0]}", f"Issue {n}", "")
            row = OutboxRow(
                campaign_id=campaign.id,
                subscriber_id=subscriber_id,
                state=OutboxState.SENT.value,
                attempts=1,
                sent_at=start + timedelta(days=n),
                message_id=f"<c{campaign.id}.m0@x>",
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
    return ids


def send_campaign(
    newsletter: Callable[..., Any], project: Path, database_url: str, count: int, env: dict[str, str]
) -> tuple[list[str], dict[str, Sent]]:
    """Send the FAQ campaign to ``count`` new subscribers through the file transport, as staff would;
    their addresses, and what was sent to each, read back from the .eml files."""
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, count)
    result = newsletter("campaign", "send", "faq", "--transport", "file:outbox/", "--yes", env=env)
    assert result.exit_code == 0, result.output
    return emails, {sent.to: sent for sent in map(Sent.from_file, (project / "outbox").glob("*.eml"))}


def write_maildir(folder: Path, messages: list[bytes]) -> Path:
    """A Maildir as a delivery agent leaves it: new messages in new/, one file each."""
    for sub in ("new", "cur", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(messages):
        (folder / "new" / f"1793783647.M{n}P4242.mx1.news.harvest.example").write_bytes(data)
    return folder
