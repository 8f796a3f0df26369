"""The welcome: one message to each new subscriber, from ``campaigns/_welcome.md`` if the project has it.

It is a normal campaign file, rendered with the same templates and links, and sent through the outbox
like any campaign, so a crash or a rerun never sends it twice: each run adds a row for everyone who
has confirmed a signup request since the welcome first went out, and sends what is pending.
``send-due`` does this on every run; the web endpoint only records the confirmation.

Who gets it: people who pressed the link in their confirmation email, on or after the day the welcome
started (the first run that found the file), and who are in its ``audience`` if it has one. Imports
and staff additions are not welcomed: they did not just sign up.
"""

from __future__ import annotations

import time
from pathlib import Path

from newsletter.campaigns.content import WELCOME_SLUG
from newsletter.config import Settings
from newsletter.delivery import ledger, service
from newsletter.delivery.prepare import prepare
from newsletter.delivery.service import SendReport
from newsletter.delivery.transports import TransportFactory
from newsletter.store.engine import Store
from newsletter.subscribers import queries


def welcome_path(settings: Settings) -> Path | None:
    path = settings.campaigns_path / f"{WELCOME_SLUG}.md"
    return path if path.is_file() else None


def send_welcomes(store: Store, settings: Settings, transport: TransportFactory) -> SendReport | None:
    """Send the welcome to whoever has confirmed since the last run; None if the project has no welcome."""
    path = welcome_path(settings)
    if path is None:
        return None
    started = time.monotonic()
    prepared = prepare(path, settings)
    with store.session() as session:
        record = ledger.find_campaign(session, WELCOME_SLUG)
        if record is None:
            # No web version: the welcome is not one of the newsletters in the public archive.
            record = ledger.record_campaign(session, WELCOME_SLUG, prepared.campaign.subject, web_html="")
        owed = queries.welcome_audience(prepared.campaign.audience, since=record.created_at)
        ledger.materialise(session, record, [], who=owed)
        counts = ledger.counts(session, record)
    if not counts.pending:
        # Nobody is owed one: no run, so send-due does not connect to the mail server every time for nothing.
        return SendReport(WELCOME_SLUG, counts, time.monotonic() - started)
    return service.deliver(store, prepared, record, transport=transport, started=started)
