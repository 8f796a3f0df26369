"""`bounces fetch` against a real IMAP server the tests start (Debian's Dovecot), with no mocks:
recognised messages move, everything else stays where it was, unread, and nothing is deleted."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import imapclient
import pytest

from newsletter.delivery.schedule import LEASE_NAME, LEASE_TTL
from newsletter.store import lease
from newsletter.store.engine import open_store
from tests.conftest import Newsletter
from tests.support.bounces import Sent, arf, auto_reply, dsn, person_reply, send_campaign
from tests.support.campaigns import FAQ_CAMPAIGN, write_campaign
from tests.support.imap_server import ImapServer, running_dovecot

SEND_ENV = {
    "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef-long",
    "NEWSLETTER_BOUNCE_ADDRESS": "bounce@news.harvest.example",
}
UNRELATED = b"""From: Supplier <news@supplier.example.com>
To: bounce@news.harvest.example
Subject: Our autumn catalogue
Message-ID: <catalogue.2026@supplier.example.com>
Date: Tue, 3 Nov 2026 08:00:00 +0000

A message that has nothing to do with the newsletter.
"""


@pytest.fixture(scope="module")
def imap_server() -> Iterator[ImapServer]:
    with running_dovecot() as server:
        yield server


@pytest.fixture
def mailbox(imap_server: ImapServer) -> Iterator[tuple[imapclient.IMAPClient, str]]:
    """A folder of its own for each test, and a client to look into it."""
    client = imapclient.IMAPClient(imap_server.host, imap_server.port, ssl=False, timeout=10)
    client.login(imap_server.user, imap_server.password)
    folder = f"Bounces-{uuid.uuid4().hex[:8]}"
    client.create_folder(folder)
    yield client, folder
    client.logout()


def env(server: ImapServer, folder: str, password: str | None = None) -> dict[str, str]:
    return {
        **SEND_ENV,
        "NEWSLETTER_BOUNCE_MAILBOX": server.url(folder),
        "NEWSLETTER_BOUNCE_PROCESSED_FOLDER": f"{folder}-done",
        "NEWSLETTER_IMAP_PASSWORD": password or server.password,
    }


def contents(client: imapclient.IMAPClient, folder: str) -> dict[str, set[bytes]]:
    """Message-ID -> flags of every message in a folder."""
    client.select_folder(folder, readonly=True)
    uids = client.search("ALL")
    found = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]", "FLAGS"]) if uids else {}
    client.unselect_folder()
    return {
        data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1].strip(): set(data[b"FLAGS"])
        for data in found.values()
    }


def test_fetch_moves_what_it_recognised_and_leaves_the_rest_unread(
    newsletter: Newsletter,
    project: Path,
    database_url: str,
    imap_server: ImapServer,
    mailbox: tuple[imapclient.IMAPClient, str],
) -> None:
    client, folder = mailbox
    emails, by_to = send_campaign(newsletter, project, database_url, 3, SEND_ENV)
    messages = {
        "hard": dsn(by_to[emails[0]]),
        "complaint": arf(by_to[emails[1]]),
        "auto-reply": auto_reply(by_to[emails[2]]),
        "person": person_reply(by_to[emails[2]], "Please remove me from this list."),
        "unrelated": UNRELATED,
    }
    for data in messages.values():
        client.append(folder, data.replace(b"\n", b"\r\n"))
    before = contents(client, folder)
    assert len(before) == 5 and all(b"\\Seen" not in flags for flags in before.values())

    result = newsletter("bounces", "fetch", "--json", env=env(imap_server, folder))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["hard"], report["complaints"], report["auto_replies"], report["other"]) == (1, 1, 1, 2)
    assert (report["moved"], report["left"]) == (3, 2)

    def message_id(name: str) -> str:
        return next(line for line in messages[name].decode().splitlines() if line.lower().startswith("message-id:"))[
            11:
        ].strip()

    left = contents(client, folder)
    processed = contents(client, f"{folder}-done")
    assert set(left) == {message_id("person"), message_id("unrelated")}
    assert all(b"\\Seen" not in flags for flags in left.values())  # staff still see them as new
    assert set(processed) == {message_id("hard"), message_id("complaint"), message_id("auto-reply")}
    assert set(left) | set(processed) == set(before)  # nothing deleted

    statuses = {e: json.loads(newsletter("subscribers", "show", e, "--json").output)["status"] for e in emails}
    assert statuses == {emails[0]: "bounced", emails[1]: "complained", emails[2]: "confirmed"}
    assert json.loads(newsletter("bounces", "list", "--json").output)[0]["source"] == "imap"

    again = json.loads(newsletter("bounces", "fetch", "--json", env=env(imap_server, folder)).output)
    assert (again["processed"], again["duplicates"], again["moved"], again["left"]) == (2, 2, 0, 2)
    assert contents(client, folder) == left


def test_without_a_processed_folder_setting_recognised_messages_go_to_processed(
    newsletter: Newsletter,
    project: Path,
    database_url: str,
    imap_server: ImapServer,
    mailbox: tuple[imapclient.IMAPClient, str],
) -> None:
    client, folder = mailbox
    emails, by_to = send_campaign(newsletter, project, database_url, 1, SEND_ENV)
    for data in (dsn(by_to[emails[0]]), UNRELATED):
        client.append(folder, data.replace(b"\n", b"\r\n"))
    before = contents(client, folder)
    run_env = {k: v for k, v in env(imap_server, folder).items() if k != "NEWSLETTER_BOUNCE_PROCESSED_FOLDER"}
    result = newsletter("bounces", "fetch", "--json", env=run_env)
    assert result.exit_code == 0, result.output
    assert (json.loads(result.output)["moved"], json.loads(result.output)["left"]) == (1, 1)
    left = contents(client, folder)
    assert len(left) == 1 and "<catalogue.2026@supplier.example.com>" in left
    # Other tests' runs file into the same Processed folder: look for this one's bounce only.
    assert set(before) - set(left) <= set(contents(client, "Processed"))


def test_a_wrong_password_or_no_server_is_a_one_line_error(
    newsletter: Newsletter, imap_server: ImapServer, mailbox: tuple[imapclient.IMAPClient, str]
) -> None:
    _, folder = mailbox
    refused = newsletter("bounces", "fetch", env=env(imap_server, folder, password="wrong"))
    assert refused.exit_code == 1 and "refused the login" in refused.output
    assert "wrong" not in refused.output and "Traceback" not in refused.output
    gone = {**env(imap_server, folder), "NEWSLETTER_BOUNCE_MAILBOX": "imap://bounces@127.0.0.1:1/INBOX?tls=none"}
    unreachable = newsletter("bounces", "fetch", env=gone)
    assert unreachable.exit_code == 1 and "cannot reach" in unreachable.output
    unset = newsletter("bounces", "fetch", env=SEND_ENV)
    assert unset.exit_code == 1 and "bounce_mailbox is not set" in unset.output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("pop3://bounces@mail.example.org/INBOX", "expected imaps://"),
        ("imaps://mail.example.org/INBOX", "needs a user"),
        ("imaps://bounces:secret@mail.example.org/INBOX", "no password in the URL"),
        ("imap://bounces@mail.example.org/INBOX?tls=maybe", "tls must be"),
        ("imap://bounces@mail.example.org/INBOX?colour=blue", "unknown option"),
        ("imap://bounces@mail.example.org/INBOX?timeout=5&timeout=60", "option 'timeout' given twice"),
        ("imaps://bounces@mail.example.org/INBOX?timeout=0", "timeout must be a positive number"),
        ("imaps://bounces@mail.example.org/INBOX?timeout=-5", "timeout must be a positive number"),
    ],
)
def test_a_bad_mailbox_url_is_a_one_line_error(newsletter: Newsletter, url: str, message: str) -> None:
    result = newsletter(
        "bounces", "fetch", env={"NEWSLETTER_BOUNCE_MAILBOX": url, "NEWSLETTER_IMAP_PASSWORD": "x", **SEND_ENV}
    )
    assert result.exit_code == 1 and message in result.output and "secret" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_send_due_fetches_bounces_first_so_they_count_for_this_run(
    newsletter: Newsletter,
    project: Path,
    database_url: str,
    imap_server: ImapServer,
    mailbox: tuple[imapclient.IMAPClient, str],
) -> None:
    client, folder = mailbox
    emails, by_to = send_campaign(newsletter, project, database_url, 3, SEND_ENV)
    client.append(folder, dsn(by_to[emails[0]]).replace(b"\n", b"\r\n"))
    later = FAQ_CAMPAIGN.replace("subject: Can I", "send_at: 2026-11-24T09:00:00+00:00\nsubject: Again, can I")
    write_campaign(project, "later", later)
    run_env = {**env(imap_server, folder), "NEWSLETTER_TRANSPORT": "file:later-outbox/"}
    result = newsletter("send-due", "--yes", "--json", "--now", "2026-11-24T12:00:00+00:00", env=run_env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["bounces"]["hard"], data["bounces"]["moved"]) == (1, 1)
    assert [(c["campaign"], c["sent"]) for c in data["campaigns"]] == [("later", 2)]
    assert sorted(Sent.from_file(p).to for p in (project / "later-outbox").glob("*.eml")) == emails[1:]

    broken = {**run_env, "NEWSLETTER_IMAP_PASSWORD": "wrong"}
    failed = newsletter("send-due", "--yes", "--json", "--now", "2026-11-24T12:05:00+00:00", env=broken)
    report = json.loads(failed.output)
    assert failed.exit_code == 1 and report["exit_code"] == 1 and "refused the login" in report["bounces"]["error"]
    text = newsletter("send-due", "--yes", "--now", "2026-11-24T12:05:00+00:00", env=broken)
    assert text.exit_code == 1 and "Bounces: error:" in text.output and "Nothing is due" in text.output


def test_a_send_due_run_that_finds_another_working_leaves_the_mailbox_to_it(
    newsletter: Newsletter,
    project: Path,
    database_url: str,
    imap_server: ImapServer,
    mailbox: tuple[imapclient.IMAPClient, str],
) -> None:
    client, folder = mailbox
    emails, by_to = send_campaign(newsletter, project, database_url, 2, SEND_ENV)
    client.append(folder, dsn(by_to[emails[0]]).replace(b"\n", b"\r\n"))
    store = open_store(database_url)
    try:
        with lease.held(store, LEASE_NAME, LEASE_TTL) as mine:  # another send-due run, mid-way
            assert mine
            result = newsletter("send-due", "--yes", "--json", env=env(imap_server, folder))
    finally:
        store.dispose()
    data = json.loads(result.output)
    assert result.exit_code == 0 and data["locked_by_another_run"] and "bounces" not in data
    client.select_folder(folder)
    assert len(client.search("ALL")) == 1  # still there for the run that holds the lease
