from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click

from newsletter.campaigns.content import Campaign
from newsletter.cli.app import App
from newsletter.cli.output import interactive, json_option, print_json
from newsletter.delivery.schedule import DueCampaign
from newsletter.delivery.schedule import send_due as run_send_due
from newsletter.delivery.transports import transport_factory
from newsletter.errors import InputError, NewsletterError
from newsletter.store.models import utcnow


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return utcnow()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--now {value!r} is not an ISO 8601 time, e.g. 2026-12-01T09:00:00+00:00") from None
    if moment.utcoffset() is None:
        raise InputError(f"--now {value!r} needs a UTC offset, e.g. +00:00")
    return moment


@click.command("send-due")
@click.option(
    "--now", "now_text", metavar="ISO", help="Pretend it is this time (ISO 8601 with an offset); default: now."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
@json_option
@click.pass_obj
def send_due(app: App, now_text: str | None, yes: bool, as_json: bool) -> None:
    """Send what is due, welcomes included.

    Due: its send_at has passed and it is not complete; partly sent campaigns are resumed. Each run
    also sends campaigns/_welcome.md (if the project has one) to everyone who confirmed since the
    last run, and applies the retention policy (see `newsletter retention`). With bounce_mailbox
    set, the bounces are fetched first (as `bounces fetch`), so addresses that bounced or
    complained since the last run are not mailed again; a mailbox that cannot be read does not
    stop the sends, but makes the exit status 1.

    Safe to run every few minutes from cron or CI: one run at a time holds a database lease, and
    the send ledger never sends a message twice. Exits 0 when nothing is due or all is sent, 75 when
    some messages are still pending (run again later), 1 when a campaign (or the retention policy)
    failed.
    """
    now = _parse_now(now_text)
    settings = app.settings
    transport = transport_factory(settings)

    def confirm(due: list[Campaign]) -> bool:
        if yes:
            return True
        if not interactive():
            raise InputError(
                f"{len(due)} campaign(s) are due; refusing to send without a terminal to confirm on; add --yes"
            )
        for campaign in due:
            click.echo(f"  {campaign.slug}: {campaign.subject} (send_at {campaign.send_at})")
        return click.confirm(f"Send {len(due)} due campaign(s) now?")

    read_bounces = (lambda: _fetch_bounces(app)) if settings.bounce_mailbox else None
    report = run_send_due(app.store, settings, now, transport, confirm=confirm, read_bounces=read_bounces)
    if as_json:
        print_json(report.as_dict())
        sys.exit(report.exit_code)
    bounces = report.bounces
    if bounces is not None:
        if "error" in bounces:
            click.echo(f"Bounces: error: {bounces['error']}", err=True)
        else:
            click.echo(
                f"Bounces: {bounces['processed']} read, {bounces['suppressed']} subscriber(s) suppressed, "
                f"{bounces['moved']} moved to {settings.bounce_processed_folder}."
            )
    if report.locked_until is not None:
        click.echo(
            f"Another send-due run is working (its lease runs until {report.locked_until:%Y-%m-%d %H:%M:%S}); nothing to do."
        )
    else:
        if report.retention_error:
            click.echo(f"retention: error: {report.retention_error}", err=True)
        elif report.retention and report.retention.total:
            done = ", ".join(f"{o.count} {o.rule.what}" for o in report.retention.outcomes if o.count)
            click.echo(f"retention: removed {done}")
        if report.welcome is not None:
            _print_item(report.welcome)
        if not report.campaigns:
            click.echo("Nothing is due.")
        for item in report.campaigns:
            _print_item(item)
    sys.exit(report.exit_code)


def _print_item(item: DueCampaign) -> None:
    if item.error:
        click.echo(f"{item.campaign}: error: {item.error}", err=True)
        return
    r = item.result
    now = r["this_run"]["sent"]
    click.echo(
        f"{item.campaign}: {now} sent now; {r['sent']} sent, {r['failed']} failed, {r['pending']} pending "
        f"of {r['audience']} in all"
    )


def _fetch_bounces(app: App) -> dict[str, Any]:
    """`bounces fetch`, for the scheduled run: its report, or the one-line reason it failed."""
    from newsletter.feedback.imap import fetch  # only runs that read a mailbox load IMAP and parsing

    try:
        return fetch(app.store, app.settings).as_dict()
    except NewsletterError as exc:
        return {"error": str(exc)}
