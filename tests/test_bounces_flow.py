"""The whole way back, as staff would run it: send a campaign through the file transport, build what
comes back against the .eml files it wrote, ingest a Maildir, and check statuses, events, the
evidence, the campaign report, and that ingesting again changes nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from newsletter.store.engine import open_store
from newsletter.store.models import OutboxRow, OutboxState, Source, StartedCampaign
from newsletter.subscribers import service
from newsletter.subscribers.service import ConsentInfo
from tests.conftest import Newsletter
from tests.support.bounces import Sent, arf, auto_reply, dsn, person_reply, send_campaign, write_maildir
from tests.support.campaigns import FAQ_CAMPAIGN, add_subscribers, write_campaign

ENV = {
    "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef-long",
    "NEWSLETTER_BOUNCE_ADDRESS": "bounce@news.harvest.example",
}


def sent_messages(project: Path) -> dict[str, Sent]:
    return {sent.to: sent for sent in map(Sent.from_file, (project / "outbox").glob("*.eml"))}


def statuses(database_url: str, emails: list[str]) -> dict[str, str]:
    store = open_store(database_url)
    try:
        with store.session() as session:
            return {email: service.get(session, email).status for email in emails}
    finally:
        store.dispose()


@pytest.fixture
def sent_campaign(newsletter: Newsletter, project: Path, database_url: str) -> tuple[list[str], dict[str, Sent]]:
    return send_campaign(newsletter, project, database_url, 8, ENV)


def test_every_message_goes_out_with_its_own_verp_sender(sent_campaign: tuple[list[str], dict[str, Sent]]) -> None:
    emails, sent = sent_campaign
    assert sorted(sent) == emails
    senders = {s.return_path for s in sent.values()}
    assert len(senders) == len(emails)
    for sender in senders:
        local, _, domain = sender.partition("@")
        assert domain == "news.harvest.example" and local.startswith("bounce+") and len(local) == len("bounce+") + 26


def test_without_a_bounce_address_the_envelope_sender_is_the_from_address(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    add_subscribers(database_url, 2)
    env = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef-long"}
    assert newsletter("campaign", "send", "faq", "--transport", "file:outbox/", "--yes", env=env).exit_code == 0
    assert {s.return_path for s in sent_messages(project).values()} == {"news@harvest.example"}


def test_the_whole_flow(
    newsletter: Newsletter,
    project: Path,
    database_url: str,
    sent_campaign: tuple[list[str], dict[str, Sent]],
    tmp_path: Path,
) -> None:
    emails, sent = sent_campaign
    # Someone on the list whom this campaign did not mail: a forged report about them must not count.
    store = open_store(database_url)
    with store.session() as session:
        service.add(session, "unmailed@example.org", consent=ConsentInfo(Source.MANUAL, "v1"), confirmed=True)
    store.dispose()
    template = sent[emails[0]]
    forged = template.headers.replace(emails[0], "unmailed@example.org").replace(
        template.message_id, "<forged@x.example>"
    )
    unmailed = Sent(forged.encode())

    e = emails
    maildir = write_maildir(
        tmp_path / "Maildir",
        [
            dsn(sent[e[0]]),  # hard, VERP intact
            dsn(sent[e[1]], verp=False),  # hard, the relay lost the VERP: matched by Final-Recipient
            dsn(sent[e[2]], status="4.2.2", diagnostic="smtp; 452 4.2.2 Mailbox full"),  # soft, Action: failed
            dsn(sent[e[3]], status="5.7.1", diagnostic="smtp; 550 5.7.1 Message rejected as spam"),  # blocked
            dsn(sent[e[4]], action="delayed", status="4.4.1", diagnostic="X-Postfix; connection timed out"),
            arf(sent[e[5]]),  # complaint, matched by Original-Rcpt-To
            arf(sent[e[6]], original_rcpt_to=False),  # complaint, redacted: matched by the original Message-ID
            auto_reply(sent[e[7]]),
            person_reply(sent[e[7]], "Please remove me from your list."),
            dsn(unmailed, verp=False, recipient="unmailed@example.org"),  # forged: never mailed
            dsn(unmailed, verp=False, recipient="stranger@example.net"),  # about no subscriber at all
        ],
    )
    first = newsletter("bounces", "ingest", str(maildir), "--json", env=ENV)
    assert first.exit_code == 0, first.output
    counts = json.loads(first.output)
    expected = {
        "processed": 11,
        "hard": 2,
        "soft": 1,
        "blocked": 1,
        "delayed": 1,
        "complaints": 2,
        "auto_replies": 1,
        "other": 1,
        "unmatched": 2,
        "duplicates": 0,
        "suppressed": 4,
        "errors": [],
    }
    assert counts == expected

    after = statuses(database_url, [*emails, "unmailed@example.org"])
    assert after == {
        e[0]: "bounced",
        e[1]: "bounced",
        e[2]: "confirmed",  # one soft bounce is recorded, not acted on
        e[3]: "confirmed",  # a block is about us, never the address
        e[4]: "confirmed",
        e[5]: "complained",
        e[6]: "complained",
        e[7]: "confirmed",  # the auto-reply and the "please remove me" change nothing
        "unmailed@example.org": "confirmed",
    }

    shown = json.loads(newsletter("subscribers", "show", e[0], "--json").output)
    bounced = next(ev for ev in shown["events"] if ev["kind"] == "bounced")
    assert bounced["actor"] == "bounces"
    assert bounced["detail"]["status_code"] == "5.1.1" and "User unknown" in bounced["detail"]["diagnostic"]
    assert bounced["detail"]["campaign"] == "faq" and bounced["detail"]["via"] == "file"
    events = json.loads(newsletter("subscribers", "show", e[6], "--json").output)["events"]
    complained = next(ev for ev in events if ev["kind"] == "complained")
    assert "ARF" in complained["detail"]["reason"]

    listed = json.loads(newsletter("bounces", "list", "--json").output)
    assert len(listed) == 11
    by_who = {(r["subscriber"], r["kind"]): r for r in listed}
    assert by_who[(e[0], "hard")]["matched_by"] == "verp"
    assert by_who[(e[1], "hard")]["matched_by"] == "final-recipient"
    assert by_who[(e[6], "complaint")]["matched_by"] == "message-id"
    staff = json.loads(newsletter("bounces", "list", "--kind", "other", "--json").output)
    assert [r["subscriber"] for r in staff] == [e[7]]
    unmatched = json.loads(newsletter("bounces", "list", "--kind", "unmatched", "--json").output)
    assert sorted(r["recipient"] for r in unmatched) == ["stranger@example.net", "unmailed@example.org"]
    assert all("changes nothing" in r["reason"] for r in unmatched)
    one = newsletter("bounces", "show", str(by_who[(e[0], "hard")]["id"]))
    assert one.exit_code == 0 and "Kind: hard" in one.output and "Status: 5.1.1" in one.output
    assert "Final-Recipient: rfc822;" in one.output  # the raw message, as evidence

    report = json.loads(newsletter("campaign", "report", "faq", "--json").output)
    assert {k: report[k] for k in ("audience", "sent", "failed", "pending")} == {
        "audience": 8,
        "sent": 8,
        "failed": 0,
        "pending": 0,
    }
    assert (report["hard_bounces"], report["soft_bounces"], report["blocked"], report["complaints"]) == (2, 1, 1, 2)
    assert report["complaint_rate"] == pytest.approx(2 / 8) and report["complaint_level"] == "over-limit"
    text = newsletter("campaign", "report", "faq")
    assert "25.00%" in text.output and "0.3%" in text.output and "No opens or clicks" in text.output

    events_before = json.loads(newsletter("subscribers", "show", e[0], "--json").output)["events"]
    again = newsletter("bounces", "ingest", str(maildir), "--json", env=ENV)
    assert again.exit_code == 0
    assert json.loads(again.output) == {
        **dict.fromkeys(expected, 0),
        "processed": 11,
        "duplicates": 11,
        "errors": [],
    }
    assert statuses(database_url, emails) == {k: v for k, v in after.items() if k in emails}
    events_after = json.loads(newsletter("subscribers", "show", e[0], "--json").output)["events"]
    # nothing new but the access report that `show` itself logs
    assert [ev["kind"] for ev in events_after] == [ev["kind"] for ev in events_before] + ["exported"]
    assert len(json.loads(newsletter("bounces", "list", "--json").output)) == 11
    assert json.loads(newsletter("campaign", "report", "faq", "--json").output) == report

    # A wrong suppression is undone by staff, through the existing logged path.
    back = newsletter("subscribers", "add", e[1], "--resubscribe", "--confirmed", "--json", env=ENV)
    assert back.exit_code == 0 and json.loads(back.output)["status"] == "confirmed"


def test_a_complaint_rate_between_the_gmail_lines_is_a_warning(
    newsletter: Newsletter, database_url: str, sent_campaign: tuple[list[str], dict[str, Sent]], tmp_path: Path
) -> None:
    emails, sent = sent_campaign
    store = open_store(database_url)
    with store.session() as session:
        # 492 more sent messages make the 8 sent ones 500: one complaint is then 0.2%.
        campaign_id = session.scalars(select(StartedCampaign.id).where(StartedCampaign.slug == "faq")).one()
        session.execute(insert(OutboxRow), [{"campaign_id": campaign_id, "state": OutboxState.SENT.value}] * 492)
        service.unsubscribe(session, service.get(session, emails[1]), actor="web", via="one-click", campaign="faq")
    store.dispose()
    maildir = write_maildir(tmp_path / "Maildir", [arf(sent[emails[0]])])
    assert newsletter("bounces", "ingest", str(maildir), env=ENV).exit_code == 0

    result = newsletter("campaign", "report", "faq", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["sent"], report["complaints"], report["unsubscribes"]) == (500, 1, 1)
    assert report["complaint_rate"] == pytest.approx(0.002) and report["complaint_level"] == "warning"
    assert report["thresholds"] == {"gmail_recommended": 0.001, "gmail_limit": 0.003}


def test_standard_input_as_a_pipe_transport_hands_it_over(
    newsletter: Newsletter, database_url: str, sent_campaign: tuple[list[str], dict[str, Sent]]
) -> None:
    emails, sent = sent_campaign
    # Postfix pipe(8) with flag F writes an mbox "From " line first.
    message = b"From MAILER-DAEMON  Tue Nov  3 09:14:07 2026\n" + dsn(sent[emails[0]])
    result = newsletter("bounces", "ingest", "-", "--json", input=message.decode(), env=ENV)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["hard"] == 1
    assert statuses(database_url, [emails[0]]) == {emails[0]: "bounced"}
    assert json.loads(newsletter("bounces", "list", "--json").output)[0]["source"] == "stdin"


def test_files_and_mbox_files_are_read_and_bad_input_exits_1(
    newsletter: Newsletter, sent_campaign: tuple[list[str], dict[str, Sent]], tmp_path: Path
) -> None:
    emails, sent = sent_campaign
    single = tmp_path / "one.eml"
    single.write_bytes(dsn(sent[emails[0]]))
    mbox = tmp_path / "bounces.mbox"
    mbox.write_bytes(
        b"".join(
            b"From MAILER-DAEMON Tue Nov  3 09:14:07 2026\n" + dsn(sent[e]) + b"\n" for e in (emails[1], emails[2])
        )
    )
    result = newsletter("bounces", "ingest", str(single), str(mbox), "--json", env=ENV)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["hard"] == 3

    missing = newsletter("bounces", "ingest", str(tmp_path / "nope"), env=ENV)
    assert missing.exit_code == 1 and "no such file" in missing.output and "Traceback" not in missing.output
    unreadable = tmp_path / "folder"
    unreadable.mkdir()
    (unreadable / "broken.eml").symlink_to(tmp_path / "gone.eml")
    (unreadable / "fine.eml").write_bytes(dsn(sent[emails[3]]))
    partial = newsletter("bounces", "ingest", str(unreadable), "--json", env=ENV)
    assert partial.exit_code == 1
    data = json.loads(partial.output)
    assert data["processed"] == 1 and len(data["errors"]) == 1 and "broken.eml" in data["errors"][0]


def test_a_report_for_a_campaign_never_sent_is_a_one_line_error(newsletter: Newsletter) -> None:
    result = newsletter("campaign", "report", "nothing-here")
    assert result.exit_code == 1 and "has not been sent" in result.output and "Traceback" not in result.output


def test_bounces_list_for_one_campaign_shows_only_that_campaigns_bounces(
    newsletter: Newsletter, project: Path, sent_campaign: tuple[list[str], dict[str, Sent]], tmp_path: Path
) -> None:
    emails, first = sent_campaign
    write_campaign(project, "later", FAQ_CAMPAIGN.replace("subject: Can I", "subject: Again, can I"))
    sent = newsletter("campaign", "send", "later", "--transport", "file:later-outbox/", "--yes", env=ENV)
    assert sent.exit_code == 0, sent.output
    later = {s.to: s for s in map(Sent.from_file, (project / "later-outbox").glob("*.eml"))}
    maildir = write_maildir(tmp_path / "Maildir", [dsn(first[emails[0]]), dsn(later[emails[1]]), arf(later[emails[2]])])
    assert newsletter("bounces", "ingest", str(maildir), env=ENV).exit_code == 0

    def listed(*campaign: str) -> list[tuple[str, str, str]]:
        result = newsletter("bounces", "list", *campaign, "--json")
        assert result.exit_code == 0, result.output
        return sorted((r["campaign"], r["subscriber"], r["kind"]) for r in json.loads(result.output))

    assert listed("--campaign", "faq") == [("faq", emails[0], "hard")]
    assert listed("--campaign", "later") == [("later", emails[1], "hard"), ("later", emails[2], "complaint")]
    assert len(listed()) == 3
