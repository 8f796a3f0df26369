"""``campaign new``, ``lint``, ``build``, ``preview``, ``signoff`` and ``list``: working on campaign files."""

from __future__ import annotations

import dataclasses
import functools
import sys
from datetime import datetime
from pathlib import Path

import click

from newsletter.campaigns import service as campaigns
from newsletter.campaigns.content import SYSTEM_SLUGS
from newsletter.campaigns.lint import lint_file
from newsletter.cli.app import App
from newsletter.cli.campaign_common import CAMPAIGN, prepare_or_explain, print_issues
from newsletter.cli.faq_cmd import AGAINST, SINCE, change_report
from newsletter.cli.output import json_option, print_json, print_table, server_options
from newsletter.delivery import service as delivery
from newsletter.delivery.prepare import sample_message
from newsletter.errors import InputError


@click.command("new")
@click.argument("slug")
@click.option(
    "--faq", "faqs", multiple=True, metavar="QUESTION", help="Add an FAQ block with this question (repeatable)."
)
@click.option("--vignette", is_flag=True, help="Add a client-vignette block (it will need a reviewer sign-off).")
@click.option(
    "--from-faq",
    is_flag=True,
    help="Draft from the FAQ: a '::: faq ref=ID' block for each entry `newsletter faq changes` lists.",
)
@SINCE
@AGAINST
@json_option
@click.pass_obj
def new(
    app: App,
    slug: str,
    faqs: tuple[str, ...],
    vignette: bool,
    from_faq: bool,
    since: str | None,
    against: Path | None,
    as_json: bool,
) -> None:
    """Create campaigns/SLUG.md from a scaffold.

    With --from-faq, draft it from the FAQ entries that are new or changed since last sent: the
    subject is proposed from their questions, the audience from their topics, and their 'updated'
    date is set to today. Write the introduction before sending: lint refuses the placeholder.
    """
    if not from_faq:
        if since is not None or against is not None:
            raise InputError("--since and --against go with --from-faq")
        path = campaigns.create(app.settings, slug, faqs=faqs, vignette=vignette)
        if as_json:
            print_json({"campaign": slug, "path": str(path)})
        else:
            click.echo(f"Created {path}. Next: edit it, then `newsletter campaign lint {slug}`.")
        return
    if faqs or vignette:
        raise InputError("--from-faq drafts the blocks itself; leave out --faq and --vignette")
    draft = campaigns.create_from_faq(app.settings, slug, change_report(app, since, against))
    entries = [entry.id for entry in draft.entries]
    if as_json:
        print_json({"campaign": slug, "path": str(draft.path), "faq": entries})
    else:
        click.echo(f"Drafted {draft.path} from {len(entries)} FAQ entr{'y' if len(entries) == 1 else 'ies'}:")
        click.echo(f"  {', '.join(entries)} (their 'updated' date is now today's).")
        click.echo(f"Next: write the introduction, then `newsletter campaign lint {slug}`.")


@click.command()
@CAMPAIGN
@click.option("--strict", is_flag=True, help="Treat warnings (e.g. a missing vignette sign-off) as errors.")
@json_option
@click.pass_obj
def lint(app: App, ref: str, strict: bool, as_json: bool) -> None:
    """Check a campaign; exit 1 on any error.

    Checks MJML elements, HTML size, links, alt text, images (one from another server is a warning;
    the project's own, carried inside the email, must exist, be PNG, JPEG or GIF and at most 100 KB),
    the footer (unsubscribe link, postal address), the subject, the templates, and runs the
    de-identification gate on vignettes. When SpamAssassin is installed, it scores the message as
    built (offline, local rules): 5 or more is an error, 3 or more a warning.

    CAMPAIGN is a path to a campaign file or a slug under campaigns_dir.
    """
    builder = functools.partial(sample_message, settings=app.settings)
    report = lint_file(ref, app.settings, strict=strict, sample_message=builder)
    if as_json:
        print_json(report.as_dict())
    else:
        print_issues(report, limit=1000)
        verdict = "failed" if report.errors else "passed"
        click.echo(f"Lint {verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s).")
    if report.errors:
        sys.exit(1)


@click.command()
@CAMPAIGN
@click.option(
    "-o",
    "--output",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default="build",
    show_default=True,
    help="Folder to write SLUG.html, SLUG.txt and SLUG.mjml into.",
)
@click.option(
    "--draft",
    is_flag=True,
    help="Build an unfinished draft for a preview: placeholder text left in it is a warning, not an error.",
)
@json_option
@click.pass_obj
def build(app: App, ref: str, folder: Path, draft: bool, as_json: bool) -> None:
    """Write a campaign's HTML, text and MJML.

    Lints first, with the spam score (errors stop the build), then renders for a sample recipient
    into the output folder.

    CAMPAIGN is a path to a campaign file or a slug under campaigns_dir.
    """
    prepared = prepare_or_explain(app, ref, for_send=False, spam_check=True, draft=draft)
    built = campaigns.write_files(prepared.rendered, app.settings.resolve_path(folder))
    written = {suffix: str(path) for suffix, path in built.files.items()}
    if as_json:
        print_json(
            {
                "campaign": built.slug,
                "files": written,
                "html_bytes": built.html_bytes,
                "warnings": [dataclasses.asdict(w) for w in prepared.report.warnings],
                "notes": [dataclasses.asdict(n) for n in prepared.report.notes],
            }
        )
        return
    print_issues(prepared.report)
    click.echo(
        f"Built {built.slug}: {written['html']} ({built.html_bytes // 1024} KB), {written['txt']}, {written['mjml']}"
    )


@click.command()
@CAMPAIGN
@server_options(default_port=8025)
@click.pass_obj
def preview(app: App, ref: str, host: str, port: int) -> None:
    """Preview the email and its checks, live.

    One page shows the inbox line (From, Subject, preheader), the email at 800 and 375 px side by
    side, the plain-text part, every lint and de-identification finding at its place in the file,
    and the vignettes' sign-off state. It reloads when the campaign file, a template, the theme or
    an FAQ entry is saved.

    CAMPAIGN is a path to a campaign file or a slug under campaigns_dir. Stop with Ctrl-C.
    """
    from newsletter.campaigns.content import resolve_campaign_path
    from newsletter.campaigns.preview import PreviewState, build_preview, make_server, watched_files

    settings = app.settings
    path = resolve_campaign_path(ref, settings.campaigns_path)
    state = PreviewState(lambda: build_preview(path, settings), lambda: watched_files(path, settings))
    server = make_server(state, host, port)
    click.echo(f"Previewing {path.stem} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.")
    finally:
        server.server_close()


@click.command()
@CAMPAIGN
@click.option("--reviewer", required=True, help="Who reviewed the vignettes (recorded in the front matter).")
@click.option(
    "--vignette", "numbers", multiple=True, type=click.IntRange(min=1), help="Vignette number (default: all)."
)
@click.option("--date", "when", type=click.DateTime(["%Y-%m-%d"]), help="Date of the review (default: today).")
@json_option
@click.pass_obj
def signoff(app: App, ref: str, reviewer: str, numbers: tuple[int, ...], when: datetime | None, as_json: bool) -> None:
    """Record a reviewer's sign-off of vignettes.

    The sign-off stores the reviewer, the date and a hash of each vignette's text, so any later
    edit voids it.

    Refused while the de-identification gate still has findings that no reviewer accepted.
    """
    loaded, chosen = campaigns.sign_off(
        ref, app.settings, reviewer, numbers=numbers, when=when.date() if when else None
    )
    if as_json:
        print_json({"campaign": loaded.slug, "vignettes": chosen, "reviewer": reviewer})
    else:
        click.echo(f"Signed off vignette(s) {', '.join(map(str, chosen))} of {loaded.slug} for {reviewer}.")


@click.command("list")
@json_option
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """List campaigns and their sending state.

    Every Markdown file in campaigns_dir with its subject, send_at and progress. The welcome
    (_welcome.md) is listed as automatic: send-due sends it to each new subscriber.
    """
    settings = app.settings
    rows = []
    for file in campaigns.campaign_files(settings):
        loaded = file.campaign
        if loaded is None:
            rows.append(
                {
                    "campaign": file.slug,
                    "path": str(file.path),
                    "subject": None,
                    "send_at": None,
                    "state": "invalid",
                    "error": file.error,
                }
            )
            continue
        row = delivery.status_dict(loaded.slug, delivery.status(app.store, loaded.slug))
        if loaded.slug in SYSTEM_SLUGS:
            # Never "due" or "complete": it goes to each new subscriber as they confirm.
            row["state"] = "automatic"
        rows.append(
            {
                "path": str(file.path),
                "subject": loaded.subject,
                "send_at": loaded.send_at.isoformat() if loaded.send_at else None,
                **row,
            }
        )
    if as_json:
        print_json(rows)
        return
    print_table(
        f"{len(rows)} campaign(s) in {settings.campaigns_path}",
        ["campaign", "subject", "send at", "state", "sent", "pending"],
        [
            (
                r["campaign"],
                r["subject"] or r.get("error"),
                r["send_at"] or "",
                r["state"],
                r.get("sent", ""),
                r.get("pending", ""),
            )
            for r in rows
        ],
    )


COMMANDS = (new, lint, build, preview, signoff, list_)
