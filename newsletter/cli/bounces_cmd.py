"""``newsletter bounces``: read what comes back (ingest, fetch), and look at what was kept (list, show)."""

from __future__ import annotations

import sys
from typing import Any

import click

from newsletter.cli.app import App
from newsletter.cli.output import interactive, json_option, print_json, print_table
from newsletter.feedback import records
from newsletter.feedback.ingest import Ingestor, IngestReport
from newsletter.feedback.sources import MessageReader

PROGRESS_EVERY = 1000


@click.group()
def bounces() -> None:
    """Read bounces, complaints and auto-replies.

    Hard bounces and complaints suppress the subscriber; soft bounces do after
    soft_bounce_limit of their last soft_bounce_window sends; everything is kept as evidence.
    """


def summary_line(report: IngestReport) -> str:
    return (
        f"Processed {report.processed} message(s): {report.hard} hard, {report.soft} soft, "
        f"{report.blocked} blocked, {report.delayed} delayed, {report.complaints} complaint(s), "
        f"{report.auto_replies} auto-reply(ies), {report.other} other, {report.unmatched} unmatched, "
        f"{report.duplicates} seen before. {report.suppressed} subscriber(s) suppressed."
    )


def print_report(report: IngestReport) -> None:
    click.echo(summary_line(report))
    if report.other:
        click.echo(f"{report.other} message(s) for staff to read: newsletter bounces list --kind other")
    for error in report.errors[:20]:
        click.echo(f"  {error}", err=True)


@bounces.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@json_option
@click.pass_obj
def ingest(app: App, paths: tuple[str, ...], as_json: bool) -> None:
    """Read bounces from files or standard input.

    Each message is classified, matched to the message it is about, and applied to the list.

    PATH is a message file, a Maildir folder, a folder of .eml files, an mbox file, or - for
    standard input (what a Postfix pipe transport, a .forward or procmail hands over). The same
    message ingested twice changes nothing. Exit status: 0 when every message was read, even if some
    matched no one; 1 when some input could not be read.
    """
    reader = MessageReader(list(paths), sys.stdin.buffer)
    ingestor = Ingestor(app.store, app.settings)
    show_progress = not as_json and interactive()
    seen = 0

    def progress(done: list[tuple[str, Any]]) -> None:
        nonlocal seen
        before, seen = seen, seen + len(done)
        if show_progress and seen // PROGRESS_EVERY > before // PROGRESS_EVERY:
            click.echo(f"  {seen} messages...", err=True)

    report = ingestor.run(reader, "stdin" if paths == ("-",) else "file", on_batch=progress)
    report.errors = reader.errors + report.errors
    if as_json:
        print_json(report.as_dict())
    else:
        print_report(report)
    sys.exit(1 if report.errors else 0)


@bounces.command()
@json_option
@click.pass_obj
def fetch(app: App, as_json: bool) -> None:
    """Read bounces from the IMAP mailbox.

    They are applied as `bounces ingest` does.

    The mailbox is the bounce_mailbox setting (e.g. imaps://bounces@mail.harvest.example/INBOX),
    the password NEWSLETTER_IMAP_PASSWORD. Recognised messages (reports, complaints, auto-replies)
    move to bounce_processed_folder; anything else stays, unread. Nothing is deleted.
    """
    from newsletter.feedback.imap import fetch as fetch_mailbox

    report = fetch_mailbox(app.store, app.settings)
    if as_json:
        print_json(report.as_dict())
    else:
        print_report(report.ingested)
        click.echo(f"Moved {report.moved} to {app.settings.bounce_processed_folder}; {len(report.left)} left in place.")
    sys.exit(1 if report.ingested.errors else 0)


@bounces.command("list")
@click.option("--campaign", metavar="C", help="Only those about this campaign (its slug).")
@click.option(
    "--kind",
    type=click.Choice(records.KIND_CHOICES),
    help="Only this kind; 'unmatched' is every report that named no one we mailed.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Show at most N, newest first."
)
@json_option
@click.pass_obj
def list_(app: App, campaign: str | None, kind: str | None, limit: int, as_json: bool) -> None:
    """List what came back, newest first.

    Includes what changed nothing: blocks, delays, auto-replies, messages from people
    (--kind other) and reports about no one we mailed (--kind unmatched).
    """
    with app.store.session(commit=False) as session:
        found = records.listing(session, campaign=campaign, kind=kind, limit=limit)
    if as_json:
        print_json(found)
        return
    print_table(
        f"{len(found)} message(s)",
        ["id", "received", "kind", "subscriber", "campaign", "status", "changed", "subject"],
        [
            (
                r["id"],
                r["received_at"][:16].replace("T", " "),
                r["kind"],
                r["subscriber"] or (f"(unmatched) {r['recipient']}" if r["recipient"] else "-"),
                r["campaign"] or "-",
                r["status_code"] or "",
                r["changed"] or "",
                r["subject"][:50],
            )
            for r in found
        ],
    )


@bounces.command()
@click.argument("bounce_id", metavar="ID", type=int)
@json_option
@click.pass_obj
def show(app: App, bounce_id: int, as_json: bool) -> None:
    """Show one message that came back.

    Its classification, why, and the raw message.

    A wrong suppression is undone with
    `newsletter subscribers add EMAIL --resubscribe` (logged as a staff action).
    """
    with app.store.session(commit=False) as session:
        data = records.details(session, records.get(session, bounce_id))
    if as_json:
        print_json(data)
        return
    for label, name in (
        ("Kind", "kind"),
        ("Why", "reason"),
        ("Status code", "status_code"),
        ("Diagnostic", "diagnostic"),
        ("Subscriber", "subscriber"),
        ("Recipient named", "recipient"),
        ("Campaign", "campaign"),
        ("Matched by", "matched_by"),
        ("Changed status to", "changed"),
        ("Received", "received_at"),
        ("Source", "source"),
    ):
        if data[name]:
            click.echo(f"{label}: {data[name]}")
    click.echo("")
    if data["raw"] is None:
        click.echo("(the raw message is past bounce_retention_days and was removed)")
    else:
        click.echo(data["raw"], nl=not data["raw"].endswith("\n"))
