"""``newsletter retention``: apply the retention policy now (``send-due`` also applies it on every run)."""

from __future__ import annotations

import click

from newsletter.cli.app import App
from newsletter.cli.output import json_option, print_json, print_table
from newsletter.store.models import utcnow
from newsletter.subscribers.retention import apply_policy


@click.command()
@click.option("--dry-run", is_flag=True, help="Count what the policy would remove, and remove nothing.")
@json_option
@click.pass_obj
def retention(app: App, dry_run: bool, as_json: bool) -> None:
    """Remove personal data kept longer than needed.

    Signups never confirmed (after pending_retention_days), mail servers' error texts in the outbox
    (outbox_error_retention_days), hashed IPs in consent records (ip_hash_retention_days), and the
    consent records of people who left (consent_retention_days). A setting of 0 keeps that data.
    send-due applies the same policy on every run.
    """
    settings = app.settings
    with app.store.session(commit=not dry_run) as session:
        report = apply_policy(session, settings, utcnow(), dry_run=dry_run)
    if as_json:
        print_json(report.as_dict())
        return
    print_table(
        "Retention (dry run: nothing removed)" if dry_run else "Retention",
        ["rule", "what", "kept", "would remove" if dry_run else "removed"],
        [(o.rule.name, o.rule.what, f"{o.days} days" if o.days else "for ever", o.count) for o in report.outcomes],
    )
