"""What the campaign commands share: the CAMPAIGN argument and printing lint findings."""

from __future__ import annotations

import click

from newsletter.campaigns.lint import Issue, LintReport
from newsletter.cli.app import App
from newsletter.delivery.prepare import LintFailed, Prepared, prepare

CAMPAIGN = click.argument("ref", metavar="CAMPAIGN")


def print_issues(report: LintReport, limit: int = 50) -> None:
    def show(kind: str, issues: list[Issue]) -> None:
        for issue in issues[:limit]:
            where = f"line {issue.line}: " if issue.line else ""
            click.echo(f"  {kind} [{issue.check}] {where}{issue.message}", err=True)
        if len(issues) > limit:
            click.echo(f"  ... and {len(issues) - limit} more", err=True)

    show("error", report.errors)
    show("warning", report.warnings)
    show("note", report.notes)


def prepare_or_explain(
    app: App, ref: str, *, for_send: bool, spam_check: bool = False, draft: bool = False
) -> Prepared:
    """Prepare a campaign; on lint errors, print them before the one-line error."""
    try:
        return prepare(ref, app.settings, for_send=for_send, spam_check=spam_check, draft=draft)
    except LintFailed as exc:
        print_issues(exc.report)
        raise
