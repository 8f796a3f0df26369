from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import pytest

from newsletter.campaigns import vignette
from newsletter.campaigns.content import load_campaign
from newsletter.campaigns.lint import lint_campaign
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from tests.conftest import Newsletter
from tests.support.campaigns import FAQ_CAMPAIGN, STORY_CAMPAIGN, clinic_settings, write_campaign


def checks(settings: Settings, slug: str, **kwargs: bool) -> tuple[list[str], list[str]]:
    report = lint_campaign(load_campaign(slug, settings), settings, **kwargs)
    return [i.check for i in report.errors], [i.check for i in report.warnings]


def test_a_good_campaign_passes(settings: Settings, project: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    assert checks(settings, "faq") == ([], [])


@pytest.mark.parametrize(
    ("edit", "check"),
    [
        (lambda t: t.replace("subject: Can I get addicted to ketamine?", "subject: " + "x" * 79), "subject.length"),
        (lambda t: t + "\n[old site](http://harvest.example/old)\n", "html.link"),
        (lambda t: t + "\n![](https://harvest.example/a.png)\n", "html.img-alt"),
        (lambda t: t + "\n" + "Long paragraph text. " * 5000 + "\n", "html.size"),
    ],
)
def test_each_check_fires(settings: Settings, project: Path, edit, check: str) -> None:  # type: ignore[no-untyped-def]
    text = edit(FAQ_CAMPAIGN)
    write_campaign(project, "faq", text)
    errors, _ = checks(settings, "faq")
    assert check in errors


def test_unknown_mjml_elements_and_undefined_variables(settings: Settings, project: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    templates = project / "templates"
    templates.mkdir()
    (templates / "blocks").mkdir()
    (templates / "blocks" / "faq.mjml.j2").write_text(
        "<mj-section><mj-colum><mj-text>{{ block.html }}</mj-text></mj-colum></mj-section>", encoding="utf-8"
    )
    errors, _ = checks(settings, "faq")
    assert "mjml.unknown-element" in errors
    (templates / "layout.mjml.j2").write_text("{{ no_such_variable }}", encoding="utf-8")
    errors, _ = checks(settings, "faq")
    assert "template.undefined" in errors


def test_a_missing_postal_address_is_an_error(settings: Settings, project: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    broken = Settings(**{**settings.__dict__, "postal_address": " "})
    report = lint_campaign(load_campaign("faq", broken), broken)
    # Render refuses an empty postal address, and lint reports that refusal, naming the setting.
    assert [i.check for i in report.errors] == ["render"] and "postal_address" in report.errors[0].message


def test_vignette_findings_are_errors_with_class_text_and_line(settings: Settings, project: Path) -> None:
    write_campaign(
        project, "story", STORY_CAMPAIGN.replace("A client wanted", "Maria Kowalski from Millinocket wanted")
    )
    report = lint_campaign(load_campaign("story", settings), settings)
    found = {(i.check, i.line) for i in report.errors}
    assert ("deid.name", 6) in found and ("deid.place", 6) in found
    assert all(i.check.startswith("deid") for i in report.errors)
    assert "Kowalski" in " ".join(i.message for i in report.errors)


def test_accepting_a_finding_needs_text_reviewer_and_reason(settings: Settings, project: Path) -> None:
    story = STORY_CAMPAIGN.replace("A client wanted", "A client who read Mary Oliver wanted")
    write_campaign(project, "story", story)
    assert "deid.name" in checks(settings, "story")[0]
    accepted = story.replace(
        "---\nsubject",
        "---\ndeid:\n  accept:\n    - text: Mary Oliver\n      reviewer: R. Reviewer\n      reason: a published poet\nsubject",
    )
    write_campaign(project, "story", accepted)
    assert checks(settings, "story")[0] == []
    write_campaign(project, "story", accepted.replace("      reason: a published poet\n", ""))
    assert checks(settings, "story")[0] == ["deid.review"]


def test_deny_list_catches_lower_case_names(settings: Settings, project: Path) -> None:
    story = STORY_CAMPAIGN.replace("A client wanted", "A client called kowalski wanted")
    write_campaign(project, "story", story.replace("---\nsubject", "---\ndeid:\n  deny: [Kowalski]\nsubject"))
    assert "deid.name" in checks(settings, "story")[0]


def test_signoff_is_a_warning_then_strict_error_and_void_after_an_edit(settings: Settings, project: Path) -> None:
    path = write_campaign(project, "story", STORY_CAMPAIGN)
    assert checks(settings, "story") == ([], ["deid.signoff"])
    assert checks(settings, "story", strict=True) == (["deid.signoff"], [])
    campaign = load_campaign("story", settings)
    path.write_text(vignette.with_signoff(campaign, "R. Reviewer", date(2026, 11, 20), [1]), encoding="utf-8")
    assert checks(settings, "story", strict=True) == ([], [])
    signed = load_campaign("story", settings)
    assert [b.source for b in signed.blocks] == [b.source for b in campaign.blocks]  # the body is untouched
    path.write_text(path.read_text(encoding="utf-8").replace("three ketamine", "four ketamine"), encoding="utf-8")
    report = lint_campaign(load_campaign("story", settings), settings)
    assert [w.check for w in report.warnings] == ["deid.signoff"]
    assert "changed after R. Reviewer signed it off" in report.warnings[0].message


def test_signoff_finds_the_front_matter_fenced_with_more_dashes_too(settings: Settings, project: Path) -> None:
    body = "\nBefore the story.\n\n---\n\n::: vignette\nA client found calm after six months of therapy.\n:::\n"
    path = write_campaign(project, "fenced", "----\nsubject: Stories\n----\n" + body)  # a rule (---) in the body
    signed = vignette.with_signoff(load_campaign("fenced", settings), "R. Reviewer", date(2026, 11, 20), [1])
    assert signed.endswith("----\n" + body)
    path.write_text(signed, encoding="utf-8")
    signed_campaign = load_campaign("fenced", settings)
    assert not vignette.signoff_problems(signed_campaign, vignette.read_review(signed_campaign))


def test_signoff_of_a_missing_vignette_is_refused(settings: Settings, project: Path) -> None:
    write_campaign(project, "story", STORY_CAMPAIGN)
    with pytest.raises(NewsletterError, match="no vignette 2"):
        vignette.with_signoff(load_campaign("story", settings), "R", date(2026, 1, 1), [2])


def test_the_clinics_own_campaigns_lint_clean() -> None:
    repo = Path(__file__).resolve().parents[1]
    from newsletter.config import load_settings

    settings = load_settings(repo, environ={}).settings
    for slug in ("faq-addiction", "client-stories"):
        report = lint_campaign(load_campaign(slug, settings), settings, strict=True)
        assert report.errors == [], (slug, report.errors)


def test_cli_lint_json_and_exit_codes(newsletter: Newsletter, project: Path) -> None:
    write_campaign(project, "story", STORY_CAMPAIGN.replace("A client wanted", "Call 207-723-4512: a client wanted"))
    result = newsletter("campaign", "lint", "story", "--json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert set(data) == {"errors", "warnings", "notes"}
    assert data["errors"][0]["check"] == "deid.phone" and data["errors"][0]["line"] == 6
    assert {"check", "message", "line"} == set(data["errors"][0])
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    assert newsletter("campaign", "lint", "faq").exit_code == 0
    assert newsletter("campaign", "lint", str(project / "campaigns" / "faq.md")).exit_code == 0
    write_campaign(
        project,
        "bad",
        FAQ_CAMPAIGN.replace("subject: Can I get", 'subject: "Can\\tI get').replace(
            "ketamine?\npre", 'ketamine?"\npre'
        ),
    )
    broken = newsletter("campaign", "lint", "bad", "--json")
    assert broken.exit_code == 1
    assert json.loads(broken.output)["errors"][0]["check"] == "campaign"
    assert "control characters" in json.loads(broken.output)["errors"][0]["message"]
    write_campaign(project, "kinds", FAQ_CAMPAIGN.replace("::: faq", "::: recipe"))
    unknown = json.loads(newsletter("campaign", "lint", "kinds", "--json").output)
    assert unknown["errors"][0]["check"] == "campaign" and unknown["errors"][0]["line"] == 8
    missing = newsletter("campaign", "lint", "nope")
    assert missing.exit_code == 1 and missing.output.startswith("Error: campaign 'nope' not found")


def test_signoff_changes_only_the_signoff_block(settings: Settings, project: Path) -> None:
    """Quotes, flow lists, comments and key order are the author's; only deid.signoff is written."""
    front = (
        "---\n"
        "subject: 'Three stories: \"quoted\" inside'   # kept as typed\n"
        'preheader: "Double-quoted preheader"\n'
        "audience: [client-stories, faq-updates]\n"
        "# a comment line the reviewer wrote\n"
        "deid:\n"
        "  deny: [Kowalski]\n"
        "  accept:\n"
        "    - text: Serenity Prayer\n"
        "      reviewer: A. Reviewer\n"
        "      reason: A public prayer, not a person\n"
        "---\n"
    )
    body = "\n::: vignette\nA client found calm after six months of therapy.\n:::\n"
    path = write_campaign(project, "styled", front + body)
    campaign = load_campaign("styled", settings)
    signed = vignette.with_signoff(campaign, "R. Reviewer", date(2026, 11, 20), [1])
    before, after = (front + body).splitlines(), signed.splitlines()
    added = [line for line in after if line not in before]
    assert [line for line in before if line not in after] == []  # nothing of the author's changed
    assert added[0] == "  signoff:" and all(line.startswith("    ") for line in added[1:])
    assert signed.endswith(body)
    path.write_text(signed, encoding="utf-8")
    assert not vignette.signoff_problems(
        load_campaign("styled", settings), vignette.read_review(load_campaign("styled", settings))
    )


def test_remote_images_are_a_warning_that_names_the_host(settings: Settings, project: Path) -> None:
    body = (
        "![Tracking pixel](https://evil.example/pixel.gif)\n\n"
        "![The clinic's garden](https://news.harvest.example/images/garden.jpg)\n"
    )
    write_campaign(project, "pictures", FAQ_CAMPAIGN.replace("A short update from the clinic.", body))
    report = lint_campaign(load_campaign("pictures", settings), settings)
    remote = [w for w in report.warnings if w.check == "html.img-remote"]
    assert len(remote) == 1 and "evil.example" in remote[0].message  # ours (public_base_url) is fine
    assert remote[0].line == 6 and not report.errors


def test_http_links_to_this_machine_are_a_warning_elsewhere_an_error(project: Path) -> None:
    local = dataclasses.replace(clinic_settings(project), public_base_url="http://127.0.0.1:8000")
    body = "See [the local page](http://localhost:8000/archive) and [elsewhere](http://harvest.example/)."
    write_campaign(project, "local", FAQ_CAMPAIGN.replace("A short update from the clinic.", body))
    report = lint_campaign(load_campaign("local", local), local)
    assert [e.check for e in report.errors] == ["html.link"] and "harvest.example" in report.errors[0].message
    assert {w.check for w in report.warnings} == {"html.link-local"}  # the footer links and the local one
