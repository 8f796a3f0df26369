"""The spam score in `campaign lint` and `campaign build`: Debian's SpamAssassin, run for real on the
message as MessageFactory builds it, offline (-L)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from newsletter.campaigns import spamassassin
from newsletter.campaigns.content import load_campaign
from newsletter.campaigns.lint import lint_campaign
from newsletter.campaigns.render import render_campaign
from newsletter.config import Settings, load_settings
from newsletter.delivery.prepare import sample_message
from tests.conftest import Newsletter
from tests.support.campaigns import FAQ_CAMPAIGN, write_campaign

REPO = Path(__file__).resolve().parents[1]

SPAMMY = """---
subject: "FREE!!! LIMITED TIME OFFER - ACT NOW, 100% GUARANTEED"
preheader: "Click here to claim your free prize money today!!!"
---
Dear friend,

CONGRATULATIONS!!! You have been SELECTED to receive a FREE gift worth $1,000,000 USD.
This is NOT spam. 100% GUARANTEED, risk free, no obligation, money back guarantee!

Act now! Lose weight fast, cheap meds online, no prescription needed. Urgent reply needed.
"""

# Close to spam but not over: an all-capitals subject and a "Dear friend" opening.
BORDERLINE = """---
subject: "AN UPDATE FROM THE CLINIC"
---
Dear friend,

We have updated our answers to the questions people ask most about ketamine therapy.
"""


@pytest.fixture
def cli(project: Path, tmp_path: Path) -> Newsletter:
    """The CLI on SQLite only: linting and building read no subscribers."""
    return Newsletter(project, f"sqlite:///{tmp_path / 'subscribers.db'}")


@pytest.fixture(scope="module")
def executable() -> str:
    found = spamassassin.find_spamassassin()
    assert found, "SpamAssassin is not installed; `make test` installs Debian's spamassassin"
    return found


def score(settings: Settings, slug: str, executable: str) -> spamassassin.SpamScore:
    rendered = render_campaign(load_campaign(slug, settings), settings)
    return spamassassin.score_message(sample_message(rendered, settings), executable)


def spam_lint(settings: Settings, slug: str):  # type: ignore[no-untyped-def]
    builder = functools.partial(sample_message, settings=settings)
    return lint_campaign(load_campaign(slug, settings), settings, sample_message=builder)


def test_the_clinics_seed_campaigns_score_below_three(executable: str) -> None:
    settings = load_settings(REPO, environ={}).settings
    for slug in ("faq-addiction", "client-stories"):
        verdict = score(settings, slug, executable)
        assert verdict.score < 3.0, (slug, verdict)
        report = spam_lint(settings, slug)
        assert not [i for i in report.errors + report.warnings + report.notes if i.check.startswith("spam")]


def test_a_spammy_campaign_scores_higher_and_is_an_error(executable: str, settings: Settings, project: Path) -> None:
    write_campaign(project, "spammy", SPAMMY)
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    spammy, clean = score(settings, "spammy", executable), score(settings, "faq", executable)
    assert spammy.score >= spamassassin.ERROR_SCORE > spamassassin.WARNING_SCORE > clean.score
    fired = {rule.name for rule in spammy.fired}
    assert {"DEAR_FRIEND", "MONEY_BACK"} <= fired
    [issue] = [i for i in spam_lint(settings, "spammy").errors if i.check == "spam.score"]
    assert f"{spammy.score:.1f}" in issue.message and "DEAR_FRIEND" in issue.message


def test_a_borderline_campaign_is_a_warning(executable: str, settings: Settings, project: Path) -> None:
    write_campaign(project, "borderline", BORDERLINE)
    verdict = score(settings, "borderline", executable)
    assert spamassassin.WARNING_SCORE <= verdict.score < spamassassin.ERROR_SCORE, verdict
    report = spam_lint(settings, "borderline")
    assert [i.check for i in report.warnings if i.check.startswith("spam")] == ["spam.score"] and not report.errors


def test_lint_and_build_report_the_spam_score(executable: str, cli: Newsletter) -> None:
    newsletter = cli
    write_campaign(newsletter.project, "spammy", SPAMMY)
    result = newsletter("campaign", "lint", "spammy", "--json")
    assert result.exit_code == 1
    assert [e["check"] for e in json.loads(result.output)["errors"]] == ["spam.score"]
    text = newsletter("campaign", "lint", "spammy")
    assert "error [spam.score] SpamAssassin scores the message" in text.output
    build = newsletter("campaign", "build", "spammy")
    assert build.exit_code == 1 and "spam.score" in build.output


def test_without_spamassassin_lint_says_once_that_it_skipped(
    cli: Newsletter, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    newsletter = cli
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH where no spamassassin is found
    write_campaign(newsletter.project, "faq", FAQ_CAMPAIGN)
    result = newsletter("campaign", "lint", "--strict", "faq")
    assert result.exit_code == 0, result.output  # a skipped check is a note, not a warning
    assert result.output.count("SpamAssassin is not installed") == 1
    data = json.loads(newsletter("campaign", "lint", "faq", "--json").output)
    assert [n["check"] for n in data["notes"]] == ["spam.skipped"]


def test_the_thresholds() -> None:
    """Five or more is an error (SpamAssassin's own line for spam), three or more a warning."""
    assert (spamassassin.WARNING_SCORE, spamassassin.ERROR_SCORE) == (3.0, 5.0)


def test_the_report_parser() -> None:
    output = (
        "Subject: x\r\n\r\nbody\r\nMARK 6.3 5.0\n"
        " 3.1 MONEY_BACK             BODY: Money back guarantee\n"
        " 0.7 HTML_FONT_LOW_CONTRAST BODY: HTML font color similar or identical to\n"
        "                            background\n"
        "-0.0 NO_RELAYS              Informational: message was not relayed via SMTP\n"
    )
    verdict = spamassassin.parse_report(output, "MARK")
    assert verdict.score == 6.3
    assert [r.name for r in verdict.fired] == ["MONEY_BACK", "HTML_FONT_LOW_CONTRAST"]
    assert verdict.fired[1].description.endswith("identical to background")
    with pytest.raises(spamassassin.SpamCheckFailed):
        spamassassin.parse_report("no report here", "MARK")
