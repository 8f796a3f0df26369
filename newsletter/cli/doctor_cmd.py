"""``newsletter doctor``: will mail from this setup reach the inbox? One line per check, with the fix."""

from __future__ import annotations

import sys

import click

from newsletter.cli.app import App
from newsletter.cli.output import json_option, print_json
from newsletter.doctor.report import Status
from newsletter.doctor.runner import run_doctor

COLOURS = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red"}


@click.command()
@click.option(
    "--send-test",
    "send_test",
    metavar="ADDRESS",
    help="Also send one short test message to ADDRESS through the configured transport (nothing is sent otherwise).",
)
@json_option
@click.pass_obj
def doctor(app: App, send_test: str | None, as_json: bool) -> None:
    """Check deliverability: DNS, relay and list.

    Will mail from this setup reach the inbox? It checks what mailbox providers check.

    DNS: SPF, DKIM, DMARC, alignment of the From domain, MX of the bounce domain (dnspython; the
    dns_servers setting overrides the system's resolver). The mail relay: connection, EHLO,
    STARTTLS and its certificate, AUTH, size limit. The list: List-Unsubscribe headers on every
    campaign's message as built, a From address off free-mail domains, the complaint and hard-bounce
    rates of the last 30 days.

    Prints ok, warn or fail for each check, with what to change. Exit 1 when a check fails.
    Ends within 30 seconds even without a network.
    """
    progress = None if as_json else (lambda text: click.echo(text, err=True))
    report = run_doctor(app.settings, open_store=lambda: app.store, send_test=send_test, progress=progress)
    if as_json:
        print_json(report.as_dict())
    else:
        width = max((len(c.id) for c in report.checks), default=0)
        for check in report.checks:
            status = click.style(f"{check.status.value:<4}", fg=COLOURS[check.status], bold=True)
            click.echo(f"{status} {check.id:<{width}}  {check.message}")
            if check.fix:
                click.echo(f"     {'':<{width}}  fix: {check.fix}")
        counts = {s: sum(c.status is s for c in report.checks) for s in Status}
        click.echo(f"{counts[Status.OK]} ok, {counts[Status.WARN]} warn, {counts[Status.FAIL]} fail.")
    sys.exit(report.exit_code)
