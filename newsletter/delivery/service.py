"""Sending campaigns: start, send, status and test sends. What the CLI and the scheduler call.

A send goes: :func:`newsletter.delivery.prepare.prepare` (render once, lint) -> :func:`start` (check
that every recipient's message builds, then fix the audience in the outbox, once) ->
:class:`newsletter.delivery.engine.DeliveryRun` (connections claim rows, send, record outcomes).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from newsletter.campaigns.content import SYSTEM_SLUGS
from newsletter.campaigns.faq import carried
from newsletter.delivery import faq_history, ledger
from newsletter.delivery.engine import DeliveryRun, RetryPolicy
from newsletter.delivery.headers import envelope_address
from newsletter.delivery.ledger import Counts
from newsletter.delivery.mime import MessageFactory
from newsletter.delivery.prepare import Prepared
from newsletter.delivery.transports import OutgoingMessage, TransportFactory
from newsletter.errors import InputError, NewsletterError
from newsletter.store.engine import Store
from newsletter.store.models import StartedCampaign, Subscriber
from newsletter.subscribers import queries
from newsletter.subscribers.addresses import normalise_address

EXIT_PENDING = 75  # EX_TEMPFAIL: some messages are still pending; run the same command again later


class RecipientRenderFailed(NewsletterError):
    """At least one recipient's message cannot be built; nothing was sent."""


class NotStarted(NewsletterError):
    """``--worker`` was asked to join a campaign whose audience has not been fixed yet (and waited)."""


@dataclass
class SendReport:
    """What one send run did, and where the campaign stands after it."""

    campaign: str
    counts: Counts
    duration_s: float
    warnings: list[str] = dataclasses.field(default_factory=list)
    this_run: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_PENDING if self.counts.pending else 0

    def summary(self) -> str:
        """One line for people: what this run did, apart from what was done before."""
        c, now = self.counts, self.this_run.get("sent", 0)
        return (
            f"{self.campaign}: {now} sent now; {c.sent - now} already sent earlier; {c.failed} failed, "
            f"{c.pending} pending, {c.skipped} skipped of {c.audience}; {c.possibly_duplicated} possibly "
            f"duplicated ({self.duration_s:.1f} s)."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            **dataclasses.asdict(self.counts),
            "duration_s": round(self.duration_s, 3),
            "this_run": {k: self.this_run.get(k, 0) for k in ("sent", "failed", "retry", "deferred")},
            "sent_earlier": self.counts.sent - self.this_run.get("sent", 0),
            **({"warnings": self.warnings} if self.warnings else {}),
        }


def audience_size(store: Store, prepared: Prepared) -> int:
    with store.session() as session:
        count = session.scalar(
            select(func.count()).select_from(Subscriber).where(queries.audience(prepared.campaign.audience))
        )
        return count or 0


def check_every_recipient(store: Store, prepared: Prepared) -> int:
    """Check every audience member's message; any failure stops the send before anything goes out."""
    failures: list[str] = []
    count = 0
    with store.session(commit=False) as session:
        # Two columns, not ORM objects: this runs over the whole audience before a first send.
        audience = select(Subscriber.email, Subscriber.name).where(queries.audience(prepared.campaign.audience))
        for email, name in session.execute(audience.execution_options(yield_per=5000)):
            count += 1
            try:
                prepared.check_recipient(email, name)
            except NewsletterError as exc:
                failures.append(f"{email}: {exc}")
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise RecipientRenderFailed(
            f"{len(failures)} recipient message(s) cannot be built, nothing was sent: {failures[0]}{more}"
        )
    return count


def start(store: Store, prepared: Prepared) -> StartedCampaign:
    """Check every recipient, then fix the audience in the outbox (once; later runs add nobody)."""
    slug = prepared.campaign.slug
    with store.session() as session:
        record = ledger.find_campaign(session, slug)
    if record is not None:
        return record
    check_every_recipient(store, prepared)
    try:
        # The record and its audience are one transaction: whoever creates the record fixes the audience.
        with store.session() as session:
            record = ledger.record_campaign(session, slug, prepared.campaign.subject, prepared.web_html)
            ledger.materialise(session, record, list(prepared.campaign.audience))
            faq_history.record(session, record, carried(prepared.campaign.blocks))
        return record
    except IntegrityError:
        # Another run started this campaign at the same moment and won: join it.
        with store.session() as session:
            record = ledger.find_campaign(session, slug)
        if record is None:
            raise
        return record


def send(
    store: Store,
    prepared: Prepared,
    *,
    transport: TransportFactory,
    worker: bool = False,
    connections: int | None = None,
    rate: float | None = None,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    lease: timedelta = timedelta(seconds=60),
    wait: float = 0.0,
) -> SendReport:
    """Send a prepared campaign to its audience; safe to rerun, and to run twice at once.

    A ``worker`` joins a campaign another run has started, waiting up to ``wait`` seconds for it to
    start (CI jobs on several machines start at the same moment).
    """
    refuse_system_campaign(prepared.campaign.slug)
    started = time.monotonic()
    record = wait_for_start(store, prepared.campaign.slug, wait) if worker else start(store, prepared)
    return deliver(
        store,
        prepared,
        record,
        transport=transport,
        connections=connections,
        rate=rate,
        limit=limit,
        progress=progress,
        lease=lease,
        started=started,
    )


def refuse_system_campaign(slug: str) -> None:
    """A system campaign (the welcome) goes to each subscriber by itself, from send-due: never to a list."""
    if slug in SYSTEM_SLUGS:
        raise InputError(
            f"{slug} goes to each subscriber by itself (send-due sends it); it is never sent to a list. "
            f"To see it: newsletter campaign test {slug} --to EMAIL"
        )


def deliver(
    store: Store,
    prepared: Prepared,
    record: StartedCampaign,
    *,
    transport: TransportFactory,
    connections: int | None = None,
    rate: float | None = None,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    lease: timedelta = timedelta(seconds=60),
    started: float | None = None,
) -> SendReport:
    """One delivery run over a started campaign's outbox (:func:`send` starts it; the welcome keeps its own)."""
    settings = prepared.settings
    started = time.monotonic() if started is None else started
    run = DeliveryRun(
        store,
        record,
        lambda item: prepared.message_for(item, campaign_id=record.id),
        transport,
        connections=connections or settings.connections,
        rate=settings.rate if rate is None else rate,
        policy=RetryPolicy(settings.max_attempts, settings.retry_base, settings.retry_max_time),
        limit=limit,
        progress=progress,
        lease=lease,
    )
    counts = run.run()
    return SendReport(
        prepared.campaign.slug, counts, time.monotonic() - started, run.state.warnings, dict(run.state.outcomes)
    )


def wait_for_start(store: Store, slug: str, wait: float, *, poll: float = 0.25) -> StartedCampaign:
    """The started campaign ``slug``, waiting up to ``wait`` seconds for another run to start it."""
    deadline = time.monotonic() + wait
    while True:
        with store.session() as session:
            found = ledger.find_campaign(session, slug)
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            waited = f" within {wait:g} s" if wait > 0 else ""
            raise NotStarted(f"{slug} has not started sending{waited}; a worker can only join a started campaign")
        time.sleep(min(poll, max(deadline - time.monotonic(), 0.0)))


def status(store: Store, slug: str) -> Counts | None:
    """Where a campaign's sending stands; None if it has not started."""
    with store.session() as session:
        record = ledger.find_campaign(session, slug)
        return None if record is None else ledger.counts(session, record)


def reasons(store: Store, slug: str) -> list[ledger.Reason]:
    """Why messages of a campaign wait or failed: the latest server reply per class, with counts."""
    with store.session() as session:
        record = ledger.find_campaign(session, slug)
        return [] if record is None else ledger.reasons(session, record)


def status_dict(slug: str, counts: Counts | None, why: list[ledger.Reason] | None = None) -> dict[str, Any]:
    """The status as the CLI's ``--json`` prints it: a state name, the counts, and (``why``) the
    latest server reply per class for pending and failed messages."""
    extra = {} if why is None else {"reasons": [reason.as_dict() for reason in why]}
    if counts is None:
        return {"campaign": slug, "state": "not started", **dataclasses.asdict(Counts(0, 0, 0, 0, 0, 0)), **extra}
    return {"campaign": slug, "state": "complete" if counts.done else "sending", **dataclasses.asdict(counts), **extra}


@dataclass(frozen=True)
class SentTestCopy:
    campaign: str
    to: str
    transport: str
    message_id: str


def send_test(prepared: Prepared, to: str, transport: TransportFactory) -> SentTestCopy:
    """One copy to ``to``: subject marked [Test], sample links, and nothing recorded as a send."""
    address = envelope_address(normalise_address(to).email)
    rendered = dataclasses.replace(prepared.rendered, subject=f"[Test] {prepared.rendered.subject}")
    factory = MessageFactory(rendered, prepared.settings)
    message_id = factory.make_message_id()
    urls = rendered.sample_urls
    data = factory.build(address, "", urls["unsubscribe_url"], urls["preferences_url"], message_id=message_id)
    if prepared.dkim is not None:  # signed as the campaign's messages are, so the copy lands as they would
        data = prepared.dkim(data)
    with transport() as opened:
        opened.send(OutgoingMessage(prepared.settings.from_address, address, data, message_id))
        where = opened.describe()
    return SentTestCopy(prepared.campaign.slug, address, where, message_id)
