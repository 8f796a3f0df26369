"""Campaigns and the FAQ: ``::: faq ref=ID`` blocks, the lint around them, placeholders, and ``faq lint``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter.campaigns.content import CampaignError, load_campaign
from newsletter.campaigns.lint import lint_campaign, lint_file
from newsletter.campaigns.render import render_campaign
from newsletter.campaigns.scaffold import PLACEHOLDERS
from newsletter.config import Settings, load_settings
from newsletter.delivery.prepare import LintFailed, prepare
from tests.conftest import Newsletter
from tests.support.campaigns import FAQ_CAMPAIGN, SECRET_ENV, write_campaign
from tests.support.faq import ADDICTION, CURE, TWO_REFS, write_entry, write_two_entries

REPO = Path(__file__).resolve().parents[1]
FIELDS = {"name": "Ana", "unsubscribe_url": "https://x.example/u", "preferences_url": "https://x.example/p"}


@pytest.fixture
def two_refs(project: Path) -> Path:
    write_two_entries(project)
    return write_campaign(project, "two", TWO_REFS)


# --- ::: faq ref=ID -------------------------------------------------------------------------------


def test_a_ref_block_carries_the_faqs_question_answer_and_a_link(settings: Settings, two_refs: Path) -> None:
    campaign = load_campaign("two", settings)
    assert [(b.ref, b.question) for b in campaign.faqs] == [
        ("can-i-get-addicted", "Can I get addicted to ketamine?"),
        ("can-ketamine-cure-me", "Can ketamine cure me?"),
    ]
    html, text = render_campaign(campaign, settings).personalise(FIELDS)
    assert "Can I get addicted to ketamine?" in html and "83 ketamine studies" in html and CURE in html
    assert 'href="https://news.harvest.example/faq#can-i-get-addicted"' in html
    assert "This answer in our FAQ:\nhttps://news.harvest.example/faq#can-ketamine-cure-me" in text
    assert "83 ketamine studies" in text
    assert lint_campaign(campaign, settings).errors == []


def test_the_email_follows_the_faq_when_an_answer_changes(settings: Settings, project: Path, two_refs: Path) -> None:
    write_entry(project, "can-ketamine-cure-me", "Can ketamine cure me?", "No, but it can help.", name="02-cure")
    html, _ = render_campaign(load_campaign("two", settings), settings).personalise(FIELDS)
    assert "No, but it can help." in html and CURE not in html


def test_faq_url_points_the_link_elsewhere(project: Path, two_refs: Path) -> None:
    (project / "newsletter.toml").write_text(
        (project / "newsletter.toml").read_text() + 'faq_url = "https://harvest.example/faq/#{id}"\n'
    )
    settings = load_settings(project, environ={}).settings
    html, _ = render_campaign(load_campaign("two", settings), settings).personalise(FIELDS)
    assert 'href="https://harvest.example/faq/#can-i-get-addicted"' in html


def test_inline_faq_blocks_keep_working(settings: Settings, project: Path) -> None:
    write_campaign(project, "inline", FAQ_CAMPAIGN)
    campaign = load_campaign("inline", settings)
    (block,) = campaign.faqs
    assert block.ref == "" and "83 studies" in block.source
    html, _ = render_campaign(campaign, settings).personalise(FIELDS)
    assert "/faq#" not in html  # an author's own answer has no entry to link to


def test_an_unknown_ref_fails_lint_on_its_line(settings: Settings, project: Path, two_refs: Path) -> None:
    write_campaign(project, "two", TWO_REFS.replace("ref=can-ketamine-cure-me", "ref=can-ketamine-cure"))
    report = lint_file("two", settings)
    (issue,) = report.errors
    assert (issue.check, issue.line) == ("faq.ref", 10)
    assert "'can-ketamine-cure'" in issue.message and "did you mean 'can-ketamine-cure-me'" in issue.message
    with pytest.raises(CampaignError, match="no FAQ entry has the id"):
        prepare("two", settings, for_send=False)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("::: faq ref=can-i-get-addicted\nMy own answer.\n:::\n", "leave its body empty"),
        ("::: faq ref=Not_An_Id\n:::\n", "takes the id of an FAQ entry"),
        ("::: faq ref=\n:::\n", "takes the id of an FAQ entry"),
        ("::: faq Can I get addicted?\n:::\n", "the faq block is empty"),
    ],
)
def test_ref_blocks_that_cannot_work(settings: Settings, project: Path, block: str, message: str) -> None:
    write_two_entries(project)
    write_campaign(project, "bad", f"---\nsubject: Hi\n---\nIntro.\n\n{block}")
    with pytest.raises(CampaignError, match=message):
        load_campaign("bad", settings)


def test_a_broken_faq_file_is_a_campaign_error_naming_that_file(
    settings: Settings, project: Path, two_refs: Path
) -> None:
    (project / "faq" / "02-cure.md").write_text("---\nquestion: Q?\n---\nA.\n", encoding="utf-8")
    report = lint_file("two", settings)
    assert report.errors[0].check == "campaign" and "needs an 'id'" in report.errors[0].message


def test_lint_proposes_a_ref_for_an_inline_block_asking_an_faq_question(settings: Settings, project: Path) -> None:
    write_two_entries(project)
    write_campaign(project, "inline", FAQ_CAMPAIGN)  # "::: faq Can I get addicted to ketamine?" on line 8
    report = lint_campaign(load_campaign("inline", settings), settings)
    assert report.errors == []
    (warning,) = report.warnings
    assert (warning.check, warning.line) == ("faq.inline", 8)
    assert "::: faq ref=can-i-get-addicted" in warning.message
    write_campaign(project, "other", FAQ_CAMPAIGN.replace("faq Can I get addicted", "faq Can I get hooked"))
    assert lint_campaign(load_campaign("other", settings), settings).warnings == []


# --- placeholders ---------------------------------------------------------------------------------


def test_the_scaffold_cannot_go_out_unedited(newsletter: Newsletter, project: Path) -> None:
    created = newsletter("campaign", "new", "winter", "--faq", "Does insurance cover therapy?", "--vignette")
    assert created.exit_code == 0, created.output
    result = newsletter("campaign", "lint", "winter", "--json")
    assert result.exit_code == 1
    errors = [e for e in json.loads(result.output)["errors"] if e["check"] == "scaffold.placeholder"]
    assert [e["line"] for e in errors] == [9, 12, 16]  # the intro, the answer, the vignette
    refused = newsletter("campaign", "send", "winter", "--transport", "memory:", "--yes", env=SECRET_ENV)
    assert refused.exit_code == 1 and "scaffold.placeholder" in refused.output
    path = project / "campaigns" / "winter.md"
    text = path.read_text(encoding="utf-8")
    for placeholder in PLACEHOLDERS[:3]:
        text = text.replace(placeholder, "Written by staff.")
    path.write_text(text, encoding="utf-8")
    left = json.loads(newsletter("campaign", "lint", "winter", "--json").output)
    assert not [e for e in left["errors"] if e["check"] == "scaffold.placeholder"]


def test_a_placeholder_rewrapped_over_lines_is_still_found(settings: Settings, project: Path) -> None:
    write_campaign(project, "x", "---\nsubject: Hi\n---\nHello.\n\nA short introduction\nto this  update.\n")
    (issue,) = lint_file("x", settings).errors
    assert (issue.check, issue.line) == ("scaffold.placeholder", 6)


def test_a_draft_builds_for_a_preview_but_never_sends(newsletter: Newsletter, project: Path) -> None:
    newsletter("campaign", "new", "winter")
    refused = newsletter("campaign", "build", "winter", "-o", str(project / "out"))
    assert refused.exit_code == 1 and not (project / "out").exists()
    built = newsletter("campaign", "build", "winter", "--draft", "-o", str(project / "out"), "--json")
    assert built.exit_code == 0, built.output
    assert [w["check"] for w in json.loads(built.output)["warnings"]] == ["preheader.empty", "scaffold.placeholder"]
    assert "A short introduction" in (project / "out" / "winter.html").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="never sent"):
        prepare("winter", load_settings(project, environ={}).settings, for_send=True, draft=True)
    with pytest.raises(LintFailed):
        prepare("winter", load_settings(project, environ={}).settings, for_send=False)


# --- faq lint -------------------------------------------------------------------------------------


def faq_lint(newsletter: Newsletter) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = newsletter("faq", "lint", "--json")
    return result.exit_code, json.loads(result.output)


def test_faq_lint_passes_good_entries(newsletter: Newsletter, project: Path) -> None:
    write_two_entries(project)
    code, report = faq_lint(newsletter)
    assert (code, report["entries"], report["errors"]) == (0, 2, [])
    text = newsletter("faq", "lint")
    assert text.exit_code == 0 and "FAQ lint passed: 2 entries, 0 error(s)" in text.output


def test_faq_lint_checks_links_images_and_size_like_campaigns(newsletter: Newsletter, project: Path) -> None:
    write_entry(project, "a", "A?", "Intro.\n\nSee [the old page](http://harvest.example/old).")
    write_entry(project, "b", "B?", "A chart: ![](https://harvest.example/chart.png)")
    write_entry(project, "c", "C?", "Long paragraph text. " * 5000)
    code, report = faq_lint(newsletter)
    assert code == 1
    found = {(e["file"], e["check"], e["line"]) for e in report["errors"]}
    assert found == {("a.md", "html.link", 8), ("b.md", "html.img-alt", 6), ("c.md", "html.size", None)}


def test_faq_lint_runs_the_deid_detectors_as_warnings_only(newsletter: Newsletter, project: Path) -> None:
    write_entry(project, "study", "What does research say?", ADDICTION + "\n\nA study at Cambridge University agrees.")
    write_entry(project, "call", "How do I reach you?", "Call 207-723-4512 or write to Maria Kowalski.")
    code, report = faq_lint(newsletter)
    assert code == 0 and report["errors"] == []
    warned = {(w["file"], w["check"]) for w in report["warnings"]}
    assert {("study.md", "deid.name"), ("call.md", "deid.phone"), ("call.md", "deid.name")} <= warned
    assert not any("signoff" in w["check"] for w in report["warnings"])


def test_faq_lint_reports_each_broken_file_and_bad_topics(newsletter: Newsletter, project: Path) -> None:
    write_two_entries(project)
    (project / "faq" / "broken.md").write_text("---\nquestion: Q?\n---\nA.\n", encoding="utf-8")
    write_entry(project, "x", "X?", "Answer.", topics=("gardening",))
    write_entry(project, "y", "Y?", "Answer.", topics=())
    write_entry(project, "can-i-get-addicted", "Again?", "Answer.", name="z")
    code, report = faq_lint(newsletter)
    assert code == 1 and report["entries"] == 5
    errors = {(e["file"], e["check"]) for e in report["errors"]}
    assert errors == {("broken.md", "faq.file"), ("x.md", "faq.topics"), ("z.md", "faq.id")}
    assert ("y.md", "faq.topics") in {(w["file"], w["check"]) for w in report["warnings"]}


def test_the_clinics_faq_and_campaigns_lint_clean() -> None:
    from newsletter.campaigns.faq_lint import lint_faq

    settings = load_settings(REPO, environ={}).settings
    report = lint_faq(settings)
    assert report.entries == 7 and report.errors == []
    assert {w.check for w in report.warnings} <= {"deid.name", "deid.place"}  # a study's university, a country
    campaign = load_campaign("faq-addiction", settings)
    assert [b.ref for b in campaign.faqs] == ["can-i-get-addicted", "can-ketamine-cure-me"]
    assert lint_campaign(campaign, settings, strict=True).errors == []
