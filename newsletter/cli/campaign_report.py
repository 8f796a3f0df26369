"""``campaign report``: what happened to a sent campaign, without tracking anyone."""

from __future__ import annotations

import click

from newsletter.campaigns.content import load_campaign
from newsletter.cli.app import App
from newsletter.cli.campaign_common import CAMPAIGN
from newsletter.cli.output import json_option, print_json, print_table
from newsletter.errors import NewsletterError
from newsletter.feedback.report import GMAIL_LIMIT, GMAIL_RECOMMENDED, campaign_report

_LEVELS = {
    "ok": "below Gmail's 0.1% line",
    "warning": "above Gmail's 0.1% line: find out why people report it before the next send",
    "over-limit": "at or above Gmail's 0.3% limit: Gmail may throttle or reject the clinic's mail",
}


def _slug(app: App, ref: str) -> str:
    try:
        return load_campaign(ref, app.settings).slug
    except NewsletterError:
        if "/" in ref or ref.endswith(".md"):
            raise
        return ref  # a sent campaign whose file has since been removed is still reported by its slug


@click.command()
@CAMPAIGN
@json_option
@click.pass_obj
def report(app: App, ref: str, as_json: bool) -> None:
    """Report what happened to a sent campaign.

    Delivery (audience, sent, failed, pending), hard and soft bounces, blocks, complaints and the
    complaint rate against Gmail's 0.1% and 0.3% lines, and the unsubscribes its links caused.
    No opens and no clicks: nobody is tracked.

    CAMPAIGN is a path to a campaign file or a slug.
    """
    result = campaign_report(app.store, _slug(app, ref))
    if as_json:
        print_json(result.as_dict())
        return
    print_table(
        f"{result.campaign}: {result.subject}",
        ["", "messages"],
        [
            ("audience", result.audience),
            ("sent", result.sent),
            ("failed", result.failed),
            ("pending", result.pending),
            ("hard bounces", result.hard_bounces),
            ("soft bounces", result.soft_bounces),
            ("blocked (policy, spam, authentication)", result.blocked),
            ("delayed, still being tried", result.delayed),
            ("complaints", result.complaints),
            ("unsubscribes through its links", result.unsubscribes),
        ],
    )
    click.echo(
        f"Complaint rate: {result.complaint_rate:.2%} of sent messages, {_LEVELS[result.complaint_level]} "
        f"(lines at {GMAIL_RECOMMENDED:.1%} and {GMAIL_LIMIT:.1%})."
    )
    click.echo("No opens or clicks are measured: this newsletter does not track its readers.")


COMMANDS = (report,)
