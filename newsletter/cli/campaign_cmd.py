from __future__ import annotations

import dataclasses
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

from .. import sending
from ..content import CampaignError, load_campaign, scaffold_campaign
from ..errors import InputError
from ..lint import Issue, LintReport, lint_file
from ..outbox import Counts
from .app import App
from .output import json_option, print_json, print_table

CAMPAIGN = click.argument("campaign", metavar="CAMPAIGN")


@click.group()
def campaign() -> None:
    """Write, check, preview and send campaigns.

    A campaign is a Markdown file in campaigns/ (see the README's guide for staff).
    """


def _print_issues(report: LintReport, limit: int = 50) -> None:
    def show(kind: str, issues: list[Issue]) -> None:
        for issue in issues[:limit]:
            where = f"line {issue.line}: " if issue.line else ""
            click.echo(f"  {kind} [{issue.check}] {where}{issue.message}", err=True)
        if len(issues) > limit:
            click.echo(f"  ... and {len(issues) - limit} more", err=True)

    show("error", report.errors)
    show("warning", report.warnings)


def prepare_or_explain(app: App, ref: str, *, for_send: bool) -> sending.Prepared:
    try:
        return sending.prepare(ref, app.settings, for_send=for_send)
    except sending.LintFailed as exc:
        _print_issues(exc.report)
        raise


@campaign.command("new")
@click.argument("slug")
@click.option("--faq", "faqs", multiple=True, metavar="QUESTION", help="Add an FAQ block with this question (repeatable).")
@click.option("--vignette", is_flag=True, help="Add a client-vignette block (it will need a reviewer sign-off).")
@json_option
@click.pass_obj
def new(app: App, slug: str, faqs: tuple[str, ...], vignette: bool, as_json: bool) -> None:
    """Create campaigns/SLUG.md from a scaffold."""
    text = scaffold_campaign(slug, faqs=list(faqs), vignette=vignette)
    folder = app.settings.campaigns_path
    path = folder / f"{slug}.md"
    if path.exists():
        raise InputError(f"{path} already exists; choose another slug or edit that file")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if as_json:
        print_json({"campaign": slug, "path": str(path)})
    else:
        click.echo(f"Created {path}. Next: edit it, then `newsletter campaign lint {slug}`.")


@campaign.command()
@CAMPAIGN
@click.option("--strict", is_flag=True, help="Treat warnings (e.g. a missing vignette sign-off) as errors.")
@json_option
@click.pass_obj
def lint(app: App, campaign: str, strict: bool, as_json: bool) -> None:
    """Check a campaign; exit 1 on any error.

    Checks MJML elements, HTML size, links, alt text, the footer (unsubscribe link, postal address),
    the subject, the templates, and runs the de-identification gate on vignettes.

    CAMPAIGN is a path to a campaign file or a slug under campaigns_dir.
    """
    settings = app.settings
    report = lint_file(campaign, settings, strict=strict)
    if as_json:
        print_json(report.as_dict())
    else:
        _print_issues(report, limit=1000)
        verdict = "failed" if report.errors else "passed"
        click.echo(f"Lint {verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s).")
    if report.errors:
        sys.exit(1)


@campaign.command()
@CAMPAIGN
@click.option("-o", "--output", "folder", type=click.Path(file_okay=False, path_type=Path), default="build",
              show_default=True, help="Folder to write SLUG.html, SLUG.txt and SLUG.mjml into.")
@json_option
@click.pass_obj
def build(app: App, campaign: str, folder: Path, as_json: bool) -> None:
    """Write a campaign's HTML, text and MJML.

    Lints first (errors stop the build), then renders for a sample recipient into the output folder.

    CAMPAIGN is a path to a campaign file or a slug under campaigns_dir.
    """
    prepared = prepare_or_explain(app, campaign, for_send=False)
    rendered = prepared.rendered
    html, text = rendered.personalise({"name": "Sample Reader", **rendered.sample_urls})
    folder = app.settings.resolve_path(folder) if not folder.is_absolute() else folder
    folder.mkdir(parents=True, exist_ok=True)
    slug = prepared.campaign.slug
    written = {}
    for suffix, content in (("html", html), ("txt", text), ("mjml", rendered.mjml)):
        path = folder / f"{slug}.{suffix}"
        path.write_text(content, encoding="utf-8")
        written[suffix] = str(path)
    if as_json:
        print_json({"campaign": slug, "files": written, "html_bytes": len(html.encode()), "warnings": [dataclasses.asdict(w) for w in prepared.report.warnings]})
        return
    _print_issues(prepared.report)
    click.echo(f"Built {slug}: {written['html']} ({len(html.encode()) // 1024} KB), {written['txt']}, {written['mjml']}")


@campaign.command()
@CAMPAIGN
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it local).")
@click.option("--port", default=8025, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on (0: any free port).")
@click.pass_obj
def preview(app: App, campaign: str, host: str, port: int) -> None:
    """Preview at desktop and mobile widths, live.

    Serves the campaign on localhost side by side at 800 and 375 px and reloads when the campaign
    file or a template is saved.

    CAMPAIGN is a path to a campaign file or a slug under campaigns_dir. Stop with Ctrl-C.
    """
    from ..preview import PreviewState, make_server
    from ..render import render_campaign

    settings = app.settings
    first = load_campaign(campaign, settings)
    path = first.path

    def render() -> str:
        loaded = load_campaign(campaign, settings)
        rendered = render_campaign(loaded, settings)
        return rendered.personalise({"name": "Sample Reader", **rendered.sample_urls})[0]

    def watched() -> list[Path]:
        templates = sorted(settings.templates_path.rglob("*.j2")) if settings.templates_path.is_dir() else []
        return [p for p in [path, *templates] if p is not None]

    server = make_server(PreviewState(render, watched), first.subject, host, port)
    click.echo(f"Previewing {first.slug} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.")
    finally:
        server.server_close()


@campaign.command()
@CAMPAIGN
@click.option("--reviewer", required=True, help="Who reviewed the vignettes (recorded in the front matter).")
@click.option("--vignette", "numbers", multiple=True, type=click.IntRange(min=1), help="Vignette number (default: all).")
@click.option("--date", "when", type=click.DateTime(["%Y-%m-%d"]), help="Date of the review (default: today).")
@json_option
@click.pass_obj
def signoff(app: App, campaign: str, reviewer: str, numbers: tuple[int, ...], when: Any, as_json: bool) -> None:
    """Record a reviewer's sign-off of vignettes.

    The sign-off stores the reviewer, the date and a hash of each vignette's text, so any later
    edit voids it.

    Refused while the de-identification gate still has findings that no reviewer accepted.
    """
    from .. import vignette as review

    settings = app.settings
    loaded = load_campaign(campaign, settings)
    if not loaded.vignettes:
        raise InputError(f"{loaded.slug} has no vignettes to sign off")
    chosen = list(numbers) or list(range(1, len(loaded.vignettes) + 1))
    findings = [f for f in review.scan(loaded, review.read_review(loaded)) if f.vignette in chosen]
    if findings:
        first = findings[0]
        raise InputError(
            f"vignette {first.vignette} still has {len(findings)} unaccepted finding(s), e.g. "
            f"{first.finding.kind} {first.finding.text!r} on line {first.line}; fix or accept them first"
        )
    text = review.with_signoff(loaded, " ".join(reviewer.split()), (when.date() if when else date.today()), chosen)
    assert loaded.path is not None
    loaded.path.write_text(text, encoding="utf-8")
    if as_json:
        print_json({"campaign": loaded.slug, "vignettes": chosen, "reviewer": reviewer})
    else:
        click.echo(f"Signed off vignette(s) {', '.join(map(str, chosen))} of {loaded.slug} for {reviewer}.")


def counts_dict(slug: str, counts: Counts | None) -> dict[str, Any]:
    if counts is None:
        zero = Counts(0, 0, 0, 0, 0, 0)
        return {"campaign": slug, "state": "not started", **dataclasses.asdict(zero)}
    state = "complete" if counts.done else "sending"
    return {"campaign": slug, "state": state, **dataclasses.asdict(counts)}


@campaign.command("list")
@json_option
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """List campaigns and their sending state.

    Every Markdown file in campaigns_dir with its subject, send_at and progress.
    """
    settings = app.settings
    rows = []
    for path in sorted(settings.campaigns_path.glob("*.md")):
        try:
            loaded = load_campaign(path, settings)
        except CampaignError as exc:
            rows.append({"campaign": path.stem, "path": str(path), "subject": None, "send_at": None, "state": "invalid", "error": exc.reason})
            continue
        counts = sending.status(app.store, loaded.slug)
        row = counts_dict(loaded.slug, counts)
        rows.append({"path": str(path), "subject": loaded.subject,
                     "send_at": loaded.send_at.isoformat() if loaded.send_at else None, **row})
    if as_json:
        print_json(rows)
        return
    print_table(f"{len(rows)} campaign(s) in {settings.campaigns_path}", ["campaign", "subject", "send at", "state", "sent", "pending"],
                [(r["campaign"], r["subject"] or r.get("error"), r["send_at"] or "", r["state"], r.get("sent", ""), r.get("pending", "")) for r in rows])


# The send, status and test commands live in their own module and join this group when it loads.
from . import send_cmd  # noqa: E402,F401
