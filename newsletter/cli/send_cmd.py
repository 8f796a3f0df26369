"""``campaign send``, ``status`` and ``test``: the commands that talk to the send ledger and a transport."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from typing import Any

import click

from .. import sending
from ..content import load_campaign
from ..errors import InputError
from ..mime import MessageFactory
from ..transports import OutgoingMessage
from .app import App
from .campaign_cmd import CAMPAIGN, campaign, counts_dict, prepare_or_explain
from .output import console, interactive, json_option, print_json, print_table


@campaign.command()
@CAMPAIGN
@click.option("--transport", "transport_url", metavar="URL", help="Transport URL (default: the transport setting).")
@click.option("--dry-run", is_flag=True, help="Lint, render every recipient and count the audience; send nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
@click.option("--rate", type=click.FloatRange(min=0), help="Messages per second across all connections (0: unlimited).")
@click.option("--connections", type=click.IntRange(1, 64), help="Connections in parallel.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N messages in this run.")
@click.option("--worker", is_flag=True, help="Join a campaign another run has started (e.g. on another machine).")
@json_option
@click.pass_obj
def send(
    app: App,
    campaign: str,
    transport_url: str | None,
    dry_run: bool,
    yes: bool,
    rate: float | None,
    connections: int | None,
    limit: int | None,
    worker: bool,
    as_json: bool,
) -> None:
    """Send a campaign to its audience.

    One message per subscriber, recorded in the outbox.

    Safe to rerun after a crash or a failure, and safe to run twice at once: no message recorded as
    sent goes out again. Exit status: 0 when every message is sent or failed for good, 75 when some
    are still pending (run the same command again later), 1 on errors.

    CAMPAIGN is a path to a campaign file or a slug under campaigns_dir.
    """
    settings = app.settings
    prepared = prepare_or_explain(app, campaign, for_send=True)
    factory = sending.transport_factory(settings, transport_url)
    store = app.store
    slug = prepared.campaign.slug
    if dry_run:
        count = sending.check_every_recipient(store, prepared)
        data = {"campaign": slug, "dry_run": True, "audience": count, "subject": prepared.campaign.subject}
        if as_json:
            print_json(data)
        else:
            click.echo(f"Dry run: {slug} would go to {count} subscriber(s); every message builds. Nothing was sent.")
        return
    if not yes:
        if not interactive():
            raise InputError("refusing to send without a terminal to confirm on; add --yes")
        existing = sending.status(store, slug)
        count = existing.pending if existing else sending.audience_size(store, prepared)
        click.confirm(f"Send {prepared.campaign.subject!r} to {count} subscriber(s) via {factory().describe()}?", abort=True)
    result = _send_with_progress(store, prepared, factory, worker, connections, rate, limit, quiet=as_json)
    if as_json:
        print_json(result.as_dict())
    else:
        c = result.counts
        for warning in result.warnings:
            click.echo(f"Warning: {warning}", err=True)
        click.echo(
            f"{slug}: {c.sent} sent, {c.failed} failed, {c.pending} pending, {c.skipped} skipped "
            f"of {c.audience}; {c.possibly_duplicated} possibly duplicated ({result.duration_s:.1f} s)."
        )
        if c.pending:
            click.echo("Some messages are still pending: run the same command again later.", err=True)
    sys.exit(result.exit_code)


def _send_with_progress(
    store: Any, prepared: sending.Prepared, factory: Any, worker: bool, connections: Any, rate: Any, limit: Any, *, quiet: bool
) -> sending.SendResult:
    """Send with a rich progress bar on a terminal, a line every few seconds in CI logs, nothing with --json."""

    def run(progress: Any = None) -> sending.SendResult:
        return sending.send(
            store, prepared, transport=factory, worker=worker, connections=connections, rate=rate, limit=limit, progress=progress
        )

    if quiet:
        return run()
    slug = prepared.campaign.slug
    existing = sending.status(store, slug)
    total = limit or (existing.pending if existing else sending.audience_size(store, prepared))
    if not sys.stderr.isatty():
        return run(_LogProgress(slug, total))
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console(stderr=True)) as bar:
        task = bar.add_task(slug, total=total or None)

        def advance(outcome: str) -> None:
            if outcome != "retry":
                bar.advance(task)

        return run(advance)


class _LogProgress:
    """Progress for logs without a terminal (CI, cron): one line at most every ten seconds."""

    INTERVAL = 10.0

    def __init__(self, slug: str, total: int) -> None:
        self.slug, self.total, self.done = slug, total, 0
        self.lock = threading.Lock()
        self.last = time.monotonic()

    def __call__(self, outcome: str) -> None:
        if outcome == "retry":
            return
        with self.lock:
            self.done += 1
            now = time.monotonic()
            if now - self.last < self.INTERVAL:
                return
            self.last = now
        click.echo(f"{self.slug}: {self.done}/{self.total} done", err=True)


@campaign.command()
@CAMPAIGN
@json_option
@click.pass_obj
def status(app: App, campaign: str, as_json: bool) -> None:
    """Show where a campaign's sending stands.

    Counts: audience, sent, failed, pending, skipped, possibly duplicated.

    CAMPAIGN is a path to a campaign file or a slug under campaigns_dir.
    """
    slug = load_campaign(campaign, app.settings).slug
    data = counts_dict(slug, sending.status(app.store, slug))
    if as_json:
        print_json(data)
    else:
        print_table(f"{slug}: {data['state']}", ["audience", "sent", "failed", "pending", "skipped", "possibly duplicated"],
                    [(data["audience"], data["sent"], data["failed"], data["pending"], data["skipped"], data["possibly_duplicated"])])


@campaign.command()
@CAMPAIGN
@click.option("--to", "to", required=True, metavar="EMAIL", help="Where the test copy goes.")
@click.option("--transport", "transport_url", metavar="URL", help="Transport URL (default: the transport setting).")
@json_option
@click.pass_obj
def test(app: App, campaign: str, to: str, transport_url: str | None, as_json: bool) -> None:
    """Send one test copy to EMAIL.

    The subject is marked [Test], the links are samples, and nothing is recorded as a send.

    CAMPAIGN is a path to a campaign file or a slug under campaigns_dir.
    """
    from ..addresses import normalise_address

    settings = app.settings
    prepared = prepare_or_explain(app, campaign, for_send=False)
    address = sending.envelope_address(normalise_address(to).email)
    rendered = dataclasses.replace(prepared.rendered, subject=f"[Test] {prepared.rendered.subject}")
    factory = MessageFactory(rendered, settings)
    message_id = factory.make_message_id()
    data = factory.build(address, "", rendered.sample_urls["unsubscribe_url"], rendered.sample_urls["preferences_url"], message_id=message_id)
    with sending.transport_factory(settings, transport_url)() as transport:
        transport.send(OutgoingMessage(settings.from_address, address, data, message_id))
        where = transport.describe()
    if as_json:
        print_json({"campaign": prepared.campaign.slug, "to": address, "transport": where, "message_id": message_id})
    else:
        click.echo(f"Sent a test copy of {prepared.campaign.slug} to {address} via {where}.")
