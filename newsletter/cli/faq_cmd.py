"""``newsletter faq``: check the FAQ, and see which answers changed since subscribers last heard them."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import click

from newsletter.campaigns import faq
from newsletter.campaigns.faq import ChangeReport
from newsletter.cli.app import App
from newsletter.cli.output import json_option, print_json
from newsletter.delivery import faq_history
from newsletter.errors import InputError

SINCE = click.option(
    "--since",
    metavar="CAMPAIGN",
    help="Compare with what subscribers had heard once this sent campaign went out "
    "(default: the last sent campaign that carried FAQ entries).",
)
AGAINST = click.option(
    "--against",
    metavar="FOLDER",
    type=click.Path(path_type=Path),
    help="Compare with the FAQ files in FOLDER (e.g. a pull request's base branch) instead of what was sent; "
    "needs no database.",
)


def change_report(app: App, since: str | None, against: Path | None) -> ChangeReport:
    """The FAQ's changes since what subscribers heard (from the outbox) or since the FAQ in a folder."""
    if since is not None and against is not None:
        raise InputError("give --since or --against, not both")
    current = faq.load_faq(app.settings.faq_path)
    if against is not None:
        if not against.is_dir():
            raise InputError(f"--against {against}: not a folder of FAQ files")
        return faq.compare(current, faq.load_faq(against))
    with app.store.session(commit=False) as session:
        return faq_history.changes_since(session, current, since)


@click.group("faq")
def faq_group() -> None:
    """Check the FAQ and see what changed since it was sent.

    The FAQ is one Markdown file per question in faq_dir (see the README's guide for staff).
    Campaigns carry an entry with '::: faq ref=ID'.
    """


@faq_group.command()
@SINCE
@AGAINST
@json_option
@click.pass_obj
def changes(app: App, since: str | None, against: Path | None, as_json: bool) -> None:
    """List entries new or changed since last sent.

    An entry is new if no sent campaign carried it, and changed if its answer differs (in its words;
    whitespace does not count) from the version the latest campaign carrying it sent. Each comes with
    a word-level diff: [-removed-] {+added+}.
    """
    report = change_report(app, since, against)
    if as_json:
        print_json(report.as_dict())
        return
    since_text = f" since {report.since}" if report.since else " (no campaign has carried FAQ entries yet)"
    if not report.changes:
        click.echo(f"No FAQ entry is new or changed{since_text}.")
        return
    click.echo(
        f"{len(report.changes)} FAQ entr{'y' if len(report.changes) == 1 else 'ies'} new or changed{since_text}:"
    )
    for change in report.changes:
        click.echo(f"\n{change.kind:<8} {change.id}: {change.question}")
        # A new entry's diff is its whole answer: its start is enough here (--json has all of it).
        diff = textwrap.shorten(change.diff, 320, placeholder=" …+}") if change.kind == faq.NEW else change.diff
        click.echo(textwrap.fill(diff, 100, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False))
    click.echo(f"\nDraft a campaign from them: newsletter campaign new SLUG --from-faq{_options(since, against)}")


def _options(since: str | None, against: Path | None) -> str:
    return f" --since {since}" if since else f" --against {against}" if against else ""


@faq_group.command()
@json_option
@click.pass_obj
def lint(app: App, as_json: bool) -> None:
    """Check the FAQ files; exit 1 on any error.

    Links (https only), images (alt text), size (each answer in an email of its own), ids and topics.
    The de-identification detectors run over the answers as warnings only: the FAQ is public, and an
    entry never needs a vignette sign-off.
    """
    from newsletter.campaigns.faq_lint import lint_faq

    report = lint_faq(app.settings)
    if as_json:
        print_json(report.as_dict())
    else:
        for kind, issues in (("error", report.errors), ("warning", report.warnings)):
            for issue in issues:
                where = f":{issue.line}" if issue.line else ""
                click.echo(f"  {kind} [{issue.check}] {issue.file}{where}: {issue.message}", err=True)
        verdict = "failed" if report.errors else "passed"
        click.echo(
            f"FAQ lint {verdict}: {report.entries} entries, {len(report.errors)} error(s), "
            f"{len(report.warnings)} warning(s)."
        )
    if report.errors:
        sys.exit(1)
