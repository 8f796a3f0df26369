"""``campaign send``, ``status`` and ``test``: the commands that talk to the send ledger and a transport."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import click

from newsletter.campaigns.content import load_campaign
from newsletter.cli.app import App
from newsletter.cli.campaign_common import CAMPAIGN, prepare_or_explain
from newsletter.cli.output import console, interactive, json_option, print_json, print_table
from newsletter.delivery import service as delivery
from newsletter.delivery.prepare import Prepared
from newsletter.delivery.transports import transport_factory, url_for_test_copies
from newsletter.errors import InputError
from newsletter.store.engine import Store


@click.command()
@CAMPAIGN
@click.option("--transport", "transport_url", metavar="URL", help="Transport URL (default: the transport setting).")
@click.option("--dry-run", is_flag=True, help="Lint, render every recipient and count the audience; send nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    help="Messages per second for the campaign, shared by all workers (0: unlimited).",
)
@click.option("--connections", type=click.IntRange(1, 64), help="Connections in parallel.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N messages in this run.")
@click.option("--worker", is_flag=True, help="Join a campaign another run has started (e.g. on another machine).")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="With --worker: wait this long for another run to start the campaign.",
)
@json_option
@click.pass_obj
def send(
    app: App,
    ref: str,
    transport_url: str | None,
    dry_run: bool,
    yes: bool,
    rate: float | None,
    connections: int | None,
    limit: int | None,
    worker: bool,
    wait: float,
    as_json: bool,
) -> None:
    """Send a campaign to its audience.

    One message per subscriber, recorded in the outbox.

    Safe to rerun after a crash or a failure, and safe to run twice at once: no message recorded as
    sent goes out again. Exit status: 0 when every message is sent or failed for good, 75 when some
    are still pending (run the same command again later), 1 on errors.

    CAMPAIGN is a path to a campaign file or a slug under campaigns_dir.
    """
    if wait and not worker:
        raise click.UsageError("--wait only applies to --worker")
    prepared = prepare_or_explain(app, ref, for_send=True)
    delivery.refuse_system_campaign(prepared.campaign.slug)  # before a dry run or the prompt, too
    factory = transport_factory(app.settings, transport_url)
    store = app.store
    slug = prepared.campaign.slug
    if dry_run:
        count = delivery.check_every_recipient(store, prepared)
        data = {"campaign": slug, "dry_run": True, "audience": count, "subject": prepared.campaign.subject}
        if as_json:
            print_json(data)
        else:
            click.echo(f"Dry run: {slug} would go to {count} subscriber(s); every message builds. Nothing was sent.")
        return
    if not yes:
        if not interactive():
            raise InputError("refusing to send without a terminal to confirm on; add --yes")
        existing = delivery.status(store, slug)
        count = existing.pending if existing else delivery.audience_size(store, prepared)
        click.confirm(
            f"Send {prepared.campaign.subject!r} to {count} subscriber(s) via {factory().describe()}?", abort=True
        )

    def run(progress: Callable[[str], None] | None = None) -> delivery.SendReport:
        return delivery.send(
            store,
            prepared,
            transport=factory,
            worker=worker,
            connections=connections,
            rate=rate,
            limit=limit,
            progress=progress,
            wait=wait,
        )

    result = run() if as_json else _with_progress(store, prepared, limit, run)
    if as_json:
        print_json(result.as_dict())
    else:
        c = result.counts
        for warning in result.warnings:
            click.echo(f"Warning: {warning}", err=True)
        click.echo(result.summary())
        if c.pending:
            click.echo("Some messages are still pending: run the same command again later.", err=True)
    sys.exit(result.exit_code)


def _with_progress(
    store: Store,
    prepared: Prepared,
    limit: int | None,
    run: Callable[[Callable[[str], None] | None], delivery.SendReport],
) -> delivery.SendReport:
    """Send with a rich progress bar on a terminal, a line every few seconds in CI logs."""
    slug = prepared.campaign.slug
    existing = delivery.status(store, slug)
    total = limit or (existing.pending if existing else delivery.audience_size(store, prepared))
    if not sys.stderr.isatty():
        return run(_LogProgress(slug, total))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
    ) as bar:
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


@click.command()
@CAMPAIGN
@json_option
@click.pass_obj
def status(app: App, ref: str, as_json: bool) -> None:
    """Show where a campaign's sending stands.

    Counts: audience, sent, failed, pending, skipped, possibly duplicated. For pending and failed
    messages, the latest server reply of each kind, with how many messages it concerns.

    CAMPAIGN is a path to a campaign file or a slug under campaigns_dir.
    """
    slug = load_campaign(ref, app.settings).slug
    why = delivery.reasons(app.store, slug)
    data = delivery.status_dict(slug, delivery.status(app.store, slug), why)
    if as_json:
        print_json(data)
    else:
        print_table(
            f"{slug}: {data['state']}",
            ["audience", "sent", "failed", "pending", "skipped", "possibly duplicated"],
            [
                (
                    data["audience"],
                    data["sent"],
                    data["failed"],
                    data["pending"],
                    data["skipped"],
                    data["possibly_duplicated"],
                )
            ],
        )
        for reason in why:
            click.echo(f"{reason.state}: {reason.line()}")


@click.command()
@CAMPAIGN
@click.option("--to", "to", required=True, metavar="EMAIL", help="Where the test copy goes.")
@click.option("--transport", "transport_url", metavar="URL", help="Transport URL (default: the transport setting).")
@json_option
@click.pass_obj
def test(app: App, ref: str, to: str, transport_url: str | None, as_json: bool) -> None:
    """Send one test copy to EMAIL.

    The subject is marked [Test], the links are samples, and nothing is recorded as a send. With the
    file: transport, test copies go into a tests/ subfolder, apart from the campaign's messages.

    CAMPAIGN is a path to a campaign file or a slug under campaigns_dir.
    """
    prepared = prepare_or_explain(app, ref, for_send=False)
    url = url_for_test_copies(transport_url or app.settings.transport)
    sent = delivery.send_test(prepared, to, transport_factory(app.settings, url))
    if as_json:
        print_json(
            {"campaign": sent.campaign, "to": sent.to, "transport": sent.transport, "message_id": sent.message_id}
        )
    else:
        click.echo(f"Sent a test copy of {sent.campaign} to {sent.to} via {sent.transport}.")


COMMANDS = (send, status, test)
