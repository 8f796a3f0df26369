"""``newsletter faq changes`` and ``campaign new --from-faq``, on the store of each backend, and the whole
flow: send FAQ entries, edit the FAQ, see the changes, draft, send, and see nothing left."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import date
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from newsletter.campaigns import faq
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store.engine import open_store
from newsletter.store.models import CarriedFaqEntry
from tests.conftest import Newsletter
from tests.support.campaigns import SECRET_ENV, add_subscribers, write_campaign
from tests.support.faq import ADDICTION, CURE, TWO_REFS, write_entry, write_two_entries

INSURANCE = "Use of ketamine for mental health treatment is not covered by health insurance."


@pytest.fixture(autouse=True)
def fresh_mailboxes() -> None:
    MemoryTransport.reset()


def send(newsletter: Newsletter, slug: str) -> dict:  # type: ignore[type-arg]
    result = newsletter("campaign", "send", slug, "--transport", "memory:", "--yes", "--json", env=SECRET_ENV)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def changes(newsletter: Newsletter, *args: str) -> list[dict]:  # type: ignore[type-arg]
    result = newsletter("faq", "changes", "--json", *args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"changes"}
    assert all(set(change) == {"id", "question", "kind", "diff"} for change in data["changes"])
    return data["changes"]  # type: ignore[no-any-return]


def summary(found: list[dict]) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(c["id"], c["kind"]) for c in found]


def test_the_whole_flow(newsletter: Newsletter, project: Path, database_url: str) -> None:
    write_two_entries(project)
    write_entry(project, "what-is-ketamine", "What is ketamine?", "A medication.", name="00-what")
    add_subscribers(database_url, 3)
    write_campaign(project, "first", TWO_REFS)

    # 1. Send a campaign carrying two FAQ entries.
    assert send(newsletter, "first")["sent"] == 3
    message = email.message_from_bytes(MemoryTransport.outbox()[0].data, policy=email.policy.default)
    assert "83 ketamine studies" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert summary(changes(newsletter)) == [("what-is-ketamine", "new")]  # never sent

    # 2. Edit one entry and add one.
    write_entry(
        project,
        "can-i-get-addicted",
        "Can I get addicted to ketamine?",
        ADDICTION.replace("more than 500", "more than 600"),
        name="01-addicted",
    )
    write_entry(project, "does-insurance-cover-therapy", "Does insurance cover therapy?", INSURANCE, name="03-cover")
    (project / "faq" / "00-what.md").unlink()  # the never-sent entry goes away: exactly the two remain

    # 3. `faq changes` lists exactly those two.
    found = changes(newsletter)
    assert summary(found) == [("can-i-get-addicted", "changed"), ("does-insurance-cover-therapy", "new")]
    assert "[-500-] {+600+}" in found[0]["diff"] and found[1]["diff"] == "{+" + INSURANCE + "+}"

    # 4. `--from-faq` drafts them.
    drafted = newsletter("campaign", "new", "second", "--from-faq", "--json")
    assert drafted.exit_code == 0, drafted.output
    assert json.loads(drafted.output)["faq"] == ["can-i-get-addicted", "does-insurance-cover-therapy"]
    path = project / "campaigns" / "second.md"
    draft = path.read_text(encoding="utf-8")
    assert "::: faq ref=can-i-get-addicted\n:::" in draft and "::: faq ref=does-insurance-cover-therapy\n:::" in draft
    assert "ref=can-ketamine-cure-me" not in draft
    unedited = newsletter("campaign", "send", "second", "--transport", "memory:", "--yes", env=SECRET_ENV)
    assert unedited.exit_code == 1 and "scaffold.placeholder" in unedited.output

    # 5. Once the draft is edited and sent, `faq changes` is empty.
    path.write_text(draft.replace(draft.split("---\n", 2)[2].split("\n\n")[0], "Two answers, brought up to date."))
    assert send(newsletter, "second")["sent"] == 3
    assert changes(newsletter) == []
    assert "No FAQ entry is new or changed since second" in newsletter("faq", "changes").output
    # What the first campaign left unchanged is still known, as of the first campaign's own wording.
    since_first = changes(newsletter, "--since", "first")
    assert summary(since_first) == [("can-i-get-addicted", "changed"), ("does-insurance-cover-therapy", "new")]


def test_the_outbox_keeps_what_each_campaign_carried(newsletter: Newsletter, project: Path, database_url: str) -> None:
    write_two_entries(project)
    add_subscribers(database_url, 1)
    write_campaign(project, "first", TWO_REFS)
    send(newsletter, "first")
    store = open_store(database_url)
    try:
        with store.session() as session:
            rows = session.scalars(select(CarriedFaqEntry).order_by(CarriedFaqEntry.faq_id)).all()
            kept = [(r.faq_id, r.question, r.content_hash) for r in rows]
    finally:
        store.dispose()
    library = faq.load_faq(project / "faq")
    assert kept == sorted((e.id, e.question, e.hash) for e in library.entries)
    test_copy = newsletter("campaign", "test", "first", "--to", "me@example.org", "--transport", "memory:")
    assert test_copy.exit_code == 0  # a test copy records nothing, and a rerun adds nothing
    send(newsletter, "first")
    store = open_store(database_url)
    try:
        with store.session() as session:
            assert len(session.scalars(select(CarriedFaqEntry)).all()) == 2
    finally:
        store.dispose()


def test_faq_changes_before_anything_was_sent_lists_every_entry(newsletter: Newsletter, project: Path) -> None:
    write_two_entries(project)
    assert summary(changes(newsletter)) == [("can-i-get-addicted", "new"), ("can-ketamine-cure-me", "new")]
    text = newsletter("faq", "changes")
    assert "2 FAQ entries new or changed (no campaign has carried FAQ entries yet)" in text.output
    assert "new      can-ketamine-cure-me: Can ketamine cure me?" in text.output


def test_a_campaign_without_faq_entries_does_not_reset_what_was_heard(
    newsletter: Newsletter, project: Path, database_url: str
) -> None:
    write_two_entries(project)
    add_subscribers(database_url, 1)
    write_campaign(project, "first", TWO_REFS)
    send(newsletter, "first")
    write_campaign(project, "news", "---\nsubject: Clinic news\n---\nWe have moved upstairs.\n")
    send(newsletter, "news")
    assert changes(newsletter) == []
    assert changes(newsletter, "--since", "news") == []
    assert changes(newsletter, "--since", "campaigns/first.md") == []


def test_faq_changes_refuses_a_campaign_that_was_not_sent(newsletter: Newsletter, project: Path) -> None:
    write_two_entries(project)
    result = newsletter("faq", "changes", "--since", "never-sent")
    assert result.exit_code == 1 and result.output.startswith("Error: campaign 'never-sent' has not been sent")


def test_faq_changes_against_a_folder_needs_no_store(newsletter: Newsletter, project: Path) -> None:
    write_two_entries(project / "base")
    write_two_entries(project)
    write_entry(project, "can-ketamine-cure-me", "Can ketamine cure me?", CURE + " Not alone.", name="02-cure")
    base = str(project / "base" / "faq")
    found = changes(newsletter, "--against", base)
    assert summary(found) == [("can-ketamine-cure-me", "changed")] and found[0]["diff"].endswith("{+Not alone.+}")
    both = newsletter("faq", "changes", "--against", base, "--since", "x")
    assert both.exit_code == 1 and "not both" in both.output
    missing = newsletter("faq", "changes", "--against", str(project / "nowhere"))
    assert missing.exit_code == 1 and "not a folder" in missing.output
    assert not (project / "subscribers.db").exists()


def test_from_faq_drafts_the_changes_and_stamps_their_date(newsletter: Newsletter, project: Path) -> None:
    write_two_entries(project)
    write_entry(project, "what-is-ketamine", "What is ketamine?", "A medication.", topics=("clinic-news",))
    result = newsletter("campaign", "new", "all-of-it", "--from-faq")
    assert result.exit_code == 0, result.output
    assert "from 3 FAQ entries" in result.output and "write the introduction" in result.output
    draft = (project / "campaigns" / "all-of-it.md").read_text(encoding="utf-8")
    assert "audience:\n- faq-updates\n- clinic-news\n" in draft
    assert "subject: Can I get addicted to ketamine? Can ketamine cure me? What is ketamine?\n" in draft
    assert [line for line in draft.splitlines() if line.startswith("::: faq")] == [
        "::: faq ref=can-i-get-addicted",
        "::: faq ref=can-ketamine-cure-me",
        "::: faq ref=what-is-ketamine",
    ]
    assert {e.updated for e in faq.load_faq(project / "faq").entries} == {date.today()}
    lint = json.loads(newsletter("campaign", "lint", "all-of-it", "--json").output)
    assert [e["check"] for e in lint["errors"]] == ["scaffold.placeholder"]


def test_from_faq_refuses_what_it_cannot_draft(newsletter: Newsletter, project: Path, database_url: str) -> None:
    write_two_entries(project)
    mixed = newsletter("campaign", "new", "x", "--from-faq", "--faq", "Another question?")
    assert mixed.exit_code == 1 and "leave out --faq" in mixed.output
    stray = newsletter("campaign", "new", "x", "--since", "first")
    assert stray.exit_code == 1 and "go with --from-faq" in stray.output
    add_subscribers(database_url, 1)
    write_campaign(project, "first", TWO_REFS)
    send(newsletter, "first")
    nothing = newsletter("campaign", "new", "x", "--from-faq")
    assert nothing.exit_code == 1 and "no FAQ entry is new or changed since first" in nothing.output
    assert not (project / "campaigns" / "x.md").exists()
    taken = newsletter("campaign", "new", "first", "--from-faq", "--since", "first")
    assert taken.exit_code == 1


def test_from_faq_against_a_folder(newsletter: Newsletter, project: Path) -> None:
    write_two_entries(project / "base")
    write_two_entries(project)
    write_entry(project, "does-insurance-cover-therapy", "Does insurance cover therapy?", INSURANCE)
    result = newsletter("campaign", "new", "pr", "--from-faq", "--against", str(project / "base" / "faq"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["faq"] == ["does-insurance-cover-therapy"]
    text = (project / "campaigns" / "pr.md").read_text(encoding="utf-8")
    assert "subject: Does insurance cover therapy?\n" in text


# --- the archive's FAQ page -----------------------------------------------------------------------


def test_the_faq_page_has_an_anchor_per_entry(client: FlaskClient, tmp_path: Path) -> None:
    write_two_entries(tmp_path)
    write_entry(tmp_path, "q", "Is <b>this</b> safe?", "Yes. <script>alert(1)</script> ![x](https://cdn.example/x.png)")
    response = client.get("/faq")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for entry_id in ("can-i-get-addicted", "can-ketamine-cure-me", "q"):
        assert f'<section id="{entry_id}"' in page and f'href="#{entry_id}"' in page
    assert "83 ketamine studies" in page and CURE in page
    assert "<script>" not in page and "<b>this</b>" not in page and "&lt;script&gt;" in page
    assert "<img" not in page and "cdn.example" in page  # a link, not a remote image
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "public, max-age=300"


def test_the_faq_page_without_entries_and_with_a_broken_one(client: FlaskClient, tmp_path: Path) -> None:
    assert "no questions here yet" in client.get("/faq").get_data(as_text=True)
    write_entry(tmp_path, "q", "Q?", "A.")
    (tmp_path / "faq" / "broken.md").write_text("no front matter\n", encoding="utf-8")
    broken = client.get("/faq")
    assert broken.status_code == 503 and "front matter" not in broken.get_data(as_text=True)
