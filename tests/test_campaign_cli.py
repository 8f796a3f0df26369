from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from sqlalchemy import create_engine, text

from newsletter.campaigns.content import load_campaign
from newsletter.config import load_settings
from newsletter.delivery.transports import PermanentFailure, TemporaryFailure
from newsletter.delivery.transports.memory import MemoryTransport
from tests.conftest import Newsletter
from tests.support.campaigns import FAQ_CAMPAIGN, SECRET_ENV, STORY_CAMPAIGN, add_subscribers, write_campaign
from tests.support.dkim_keys import rsa_key

SEND_FIELDS = {"campaign", "audience", "sent", "failed", "pending", "possibly_duplicated", "duration_s"}


@pytest.fixture(autouse=True)
def fresh_mailboxes() -> None:
    MemoryTransport.reset()


def send(newsletter: Newsletter, *args: str):  # type: ignore[no-untyped-def]
    return newsletter("campaign", "send", *args, "--transport", "memory:", "--yes", "--json", env=SECRET_ENV)


def test_new_scaffolds_a_campaign(newsletter: Newsletter, project: Path) -> None:
    result = newsletter("campaign", "new", "winter-update", "--faq", "Does insurance cover therapy?", "--vignette")
    assert result.exit_code == 0, result.output
    text = (project / "campaigns" / "winter-update.md").read_text(encoding="utf-8")
    assert "::: faq Does insurance cover therapy?" in text and "::: vignette" in text
    again = newsletter("campaign", "new", "winter-update")
    assert again.exit_code == 1 and "already exists" in again.output
    bad = newsletter("campaign", "new", "Not A Slug")
    assert bad.exit_code == 1 and "Traceback" not in bad.output


def test_build_writes_html_text_and_mjml(newsletter: Newsletter, project: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    result = newsletter("campaign", "build", "faq", "-o", str(project / "out"), "--json")
    assert result.exit_code == 0, result.output
    files = json.loads(result.output)["files"]
    html = Path(files["html"]).read_text(encoding="utf-8")
    assert "83 studies" in html and "Sample Reader" in html
    assert "Can I get addicted" in Path(files["txt"]).read_text(encoding="utf-8")
    assert Path(files["mjml"]).read_text(encoding="utf-8").startswith("<mjml")
    write_campaign(project, "bad", FAQ_CAMPAIGN + "\n[x](http://insecure.example)\n")
    refused = newsletter("campaign", "build", "bad", "-o", str(project / "out"))
    assert refused.exit_code == 1 and "html.link" in refused.output
    assert not (project / "out" / "bad.html").exists()


def test_send_sends_once_and_reports_json(newsletter: Newsletter, project: Path, database_url: str) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 5)
    add_subscribers(database_url, 2, tags=("clinic-news",), prefix="other")
    result = send(newsletter, "faq")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data.keys() >= SEND_FIELDS
    assert (data["campaign"], data["audience"], data["sent"], data["pending"]) == ("faq", 5, 5, 0)
    outbox = MemoryTransport.outbox()
    assert sorted(m.recipient for m in outbox) == emails
    message = email.message_from_bytes(outbox[0].data, policy=email.policy.default)
    assert message["To"] == outbox[0].recipient and message["Cc"] is None and message["Bcc"] is None
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<https://news.harvest.example/unsubscribe/")
    assert message["Message-ID"].endswith("@harvest.example>")
    rerun = send(newsletter, "faq")
    assert json.loads(rerun.output)["sent"] == 5 and len(MemoryTransport.outbox()) == 5
    status = json.loads(newsletter("campaign", "status", "faq", "--json").output)
    assert status["state"] == "complete" and status["sent"] == 5
    listing = json.loads(newsletter("campaign", "list", "--json").output)
    assert [(c["campaign"], c["state"]) for c in listing] == [("faq", "complete")]


def test_pending_messages_exit_75_and_a_rerun_finishes(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    emails = add_subscribers(database_url, 3)
    MemoryTransport.fail_recipient(emails[1], TemporaryFailure(451, "greylisted"))
    MemoryTransport.fail_recipient(emails[2], PermanentFailure(550, "no such user"))
    env = {**SECRET_ENV, "NEWSLETTER_RETRY_BASE": "0.01", "NEWSLETTER_MAX_ATTEMPTS": "2"}
    first = newsletter("campaign", "send", "faq", "--transport", "memory:", "--yes", "--json", env=env)
    assert first.exit_code == 75
    assert {k: json.loads(first.output)[k] for k in ("sent", "failed", "pending")} == {
        "sent": 1,
        "failed": 1,
        "pending": 1,
    }
    MemoryTransport.fail_recipient(emails[1], None)
    second = newsletter("campaign", "send", "faq", "--transport", "memory:", "--yes", "--json", env=env)
    assert second.exit_code == 0 and json.loads(second.output)["pending"] == 0
    shown = json.loads(newsletter("subscribers", "show", emails[2], "--json").output)
    assert shown["status"] == "bounced"


def test_send_needs_yes_without_a_terminal_and_dry_run_sends_nothing(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    add_subscribers(database_url, 2)
    refused = newsletter("campaign", "send", "faq", "--transport", "memory:", env=SECRET_ENV)
    assert refused.exit_code == 1 and "--yes" in refused.output
    dry = newsletter("campaign", "send", "faq", "--transport", "memory:", "--dry-run", "--json", env=SECRET_ENV)
    assert dry.exit_code == 0 and json.loads(dry.output)["audience"] == 2
    assert MemoryTransport.outbox() == []
    assert json.loads(newsletter("campaign", "status", "faq", "--json").output)["state"] == "not started"


def test_unsigned_vignettes_stop_a_send(newsletter: Newsletter, project: Path, database_url: str) -> None:
    write_campaign(project, "story", STORY_CAMPAIGN)
    add_subscribers(database_url, 1)
    result = send(newsletter, "story")
    assert result.exit_code == 1 and "sign-off" in result.output
    signed = newsletter("campaign", "signoff", "story", "--reviewer", "R. Reviewer")
    assert signed.exit_code == 0, signed.output
    assert send(newsletter, "story").exit_code == 0


def test_worker_cannot_join_a_campaign_that_has_not_started(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    add_subscribers(database_url, 1)
    result = send(newsletter, "faq", "--worker")
    assert result.exit_code == 1 and "has not started" in result.output


def test_send_without_the_secret_key_is_a_clear_error(newsletter: Newsletter, project: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    result = newsletter("campaign", "send", "faq", "--transport", "memory:", "--yes")
    assert result.exit_code == 1 and "NEWSLETTER_SECRET_KEY" in result.output


def test_a_bad_transport_url_is_a_one_line_error(newsletter: Newsletter, project: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    result = newsletter("campaign", "send", "faq", "--transport", "smtp://user:pw@host", "--yes", env=SECRET_ENV)
    assert result.exit_code == 1 and "pw" not in result.output and result.output.count("\n") == 1


def test_test_send_is_one_copy_not_recorded(newsletter: Newsletter, project: Path, database_url: str) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    add_subscribers(database_url, 3)
    result = newsletter("campaign", "test", "faq", "--to", "Staff@Example.org", "--transport", "memory:")
    assert result.exit_code == 0, result.output
    (message,) = MemoryTransport.outbox()
    assert message.recipient == "Staff@example.org"
    assert b"Subject: [Test] Can I get addicted" in message.data
    assert json.loads(newsletter("campaign", "status", "faq", "--json").output)["state"] == "not started"


def test_the_test_copy_is_dkim_signed_like_the_campaign(newsletter: Newsletter, project: Path, tmp_path: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    key, public = rsa_key(tmp_path, 2048)
    env = {"NEWSLETTER_DKIM_KEY_PATH": str(key), "NEWSLETTER_DKIM_SELECTOR": "s1"}
    result = newsletter("campaign", "test", "faq", "--to", "staff@example.org", "--transport", "memory:", env=env)
    assert result.exit_code == 0, result.output
    (message,) = MemoryTransport.outbox()
    assert message.data.startswith(b"DKIM-Signature:") and b"s=s1" in message.data
    record = f"v=DKIM1; k=rsa; p={public}".encode()
    assert dkim.verify(message.data, dnsfunc=lambda name, timeout=5: record) is True


def test_every_recipient_must_build_before_anything_is_sent(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    add_subscribers(database_url, 2)
    # A row from before addresses with non-ASCII local parts were refused at the door: it cannot be
    # written into a header, so the whole send must stop before anything goes out.
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE subscribers SET email = 'ünïcode@example.org', email_key = 'ünïcode@example.org' WHERE id = 1")
        )
    engine.dispose()
    result = send(newsletter, "faq")
    assert result.exit_code == 1 and "nothing was sent" in result.output
    assert MemoryTransport.outbox() == []


def test_progress_lines_for_logs_without_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.cli.campaign_send import _LogProgress

    monkeypatch.setattr(_LogProgress, "INTERVAL", 0.0)
    progress = _LogProgress("faq", 3)
    for outcome in ("sent", "retry", "failed", "sent"):
        progress(outcome)
    assert capsys.readouterr().err.splitlines() == ["faq: 1/3 done", "faq: 2/3 done", "faq: 3/3 done"]


def test_a_mistyped_slug_suggests_the_campaign(newsletter: Newsletter, project: Path) -> None:
    write_campaign(project, "faq-addiction", FAQ_CAMPAIGN)
    result = newsletter("campaign", "lint", "faq-adiction")
    assert result.exit_code == 1
    assert "campaign 'faq-adiction' not found" in result.output and "did you mean 'faq-addiction'?" in result.output


def test_an_empty_audience_list_is_an_error_and_all_means_everyone(newsletter: Newsletter, project: Path) -> None:
    write_campaign(project, "nobody", FAQ_CAMPAIGN.replace("audience: [faq-updates]", "audience: []"))
    refused = newsletter("campaign", "lint", "nobody", "--json")
    errors = json.loads(refused.output)["errors"]
    assert refused.exit_code == 1 and [e["check"] for e in errors] == ["audience.empty"]
    assert "write 'audience: all'" in errors[0]["message"]
    for slug, line in (("everyone", "audience: all"), ("unspecified", "")):
        write_campaign(project, slug, FAQ_CAMPAIGN.replace("audience: [faq-updates]", line))
        assert newsletter("campaign", "lint", slug).exit_code == 0
    assert load_campaign("everyone", load_settings(project).settings).audience == ()


def test_the_scaffold_cannot_pass_lint_and_its_example_date_lies_ahead(newsletter: Newsletter, project: Path) -> None:
    newsletter("campaign", "new", "scaffold-only", "--faq", "Does insurance cover therapy?")
    text = (project / "campaigns" / "scaffold-only.md").read_text(encoding="utf-8")
    example = datetime.fromisoformat(re.search(r"# send_at: (\S+)", text)[1])  # type: ignore[index]
    assert example > datetime.now(UTC)
    strict = newsletter("campaign", "lint", "--strict", "scaffold-only", "--json")
    data = json.loads(strict.output)
    assert strict.exit_code == 1
    assert {"scaffold.placeholder", "preheader.empty"} <= {e["check"] for e in data["errors"]}
    plain = json.loads(newsletter("campaign", "lint", "scaffold-only", "--json").output)
    assert "preheader.empty" in [w["check"] for w in plain["warnings"]]


def test_a_local_try_out_with_an_http_loopback_base_url_can_send(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    add_subscribers(database_url, 1, tags=("faq-updates",))
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    env = {**SECRET_ENV, "NEWSLETTER_PUBLIC_BASE_URL": "http://127.0.0.1:8000", "NEWSLETTER_TRANSPORT": "memory:"}
    MemoryTransport.reset()
    sent = newsletter("campaign", "send", "faq", "--yes", env=env)
    assert sent.exit_code == 0, sent.output
    assert b"http://127.0.0.1:8000/unsubscribe/" in MemoryTransport.outbox()[0].data


def test_test_copies_go_apart_from_the_campaigns_messages(newsletter: Newsletter, project: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    result = newsletter(
        "campaign", "test", "faq", "--to", "staff@example.org", "--transport", "file:outbox/", env=SECRET_ENV
    )
    assert result.exit_code == 0, result.output
    assert [p.parent.name for p in (project / "outbox").rglob("*.eml")] == ["tests"]
    assert "outbox/tests" in result.output


def test_only_file_transports_get_a_test_copies_folder() -> None:
    from newsletter.delivery.transports import url_for_test_copies

    assert url_for_test_copies("file:outbox/") == "file:outbox/tests/"
    assert url_for_test_copies("file:///srv/news/outbox") == "file:///srv/news/outbox/tests/"
    assert url_for_test_copies("smtp://relay.example:587?tls=starttls") == "smtp://relay.example:587?tls=starttls"
    assert url_for_test_copies("memory:") == "memory:"
