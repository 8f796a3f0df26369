"""Sending a campaign, start to finish: lint, render once, check every recipient, fix the audience, deliver.

The command line and the scheduler (``send-due``) are thin layers over :func:`prepare` and
:func:`send`; everything they do can be done from Python.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from . import outbox, subscribers
from .config import Settings
from .content import Campaign, load_campaign
from .db import Store
from .delivery import Delivery, RetryPolicy
from .errors import NewsletterError
from .lint import LintReport, lint_campaign
from .links import Links
from .mime import MessageFactory, clean_header_value, format_address
from .models import CampaignRecord, Subscriber
from .outbox import Claim, Counts
from .render import RenderedCampaign, render_campaign
from .transports import OutgoingMessage, Transport, TransportContext, open_transport

EXIT_PENDING = 75  # EX_TEMPFAIL: some messages are still pending; run the same command again later


class LintFailed(NewsletterError):
    """The campaign has lint errors (or unsigned vignettes) and may not be built or sent."""

    def __init__(self, message: str, report: LintReport) -> None:
        super().__init__(message)
        self.report = report


class RecipientRenderFailed(NewsletterError):
    """At least one recipient's message cannot be built; nothing was sent."""


class NotStarted(NewsletterError):
    """``--worker`` was asked to join a campaign whose audience has not been fixed yet."""


@dataclass
class Prepared:
    """A campaign ready to go: linted, rendered once, with what makes each recipient's message."""

    campaign: Campaign
    rendered: RenderedCampaign
    report: LintReport
    settings: Settings
    links: Links | None  # None when only building: no secret key is needed to look at a campaign
    factory: MessageFactory
    dkim: Callable[[bytes], bytes] | None = None

    @property
    def web_html(self) -> str:
        """The archive's web version: no greeting, no personal links, nothing about anyone."""
        html, _ = render_campaign(self.campaign, self.settings, web=True).preview()
        return html

    def _links(self) -> Links:
        if self.links is None:
            raise NewsletterError("this campaign was prepared for building, not for sending")
        return self.links

    def check_recipient(self, email: str, name: str) -> None:
        """Raise if this recipient's message cannot be built. The rest of a message is the same for
        everyone, or made of our own URLs, so only the address and the name need checking."""
        format_address(clean_header_value(name or ""), envelope_address(email))

    def message_id(self, campaign_id: int, outbox_id: int) -> str:
        # The same row always gets the same Message-ID, so a message resent after a crash can be
        # recognised as a duplicate by the receiving side.
        tag = self._links().tag(f"message:{campaign_id}.{outbox_id}")
        return f"<c{campaign_id}.m{outbox_id}.{tag}@{self.factory.domain}>"

    def message_for(self, item: Claim, *, campaign_id: int) -> OutgoingMessage:
        message_id = self.message_id(campaign_id, item.outbox_id)
        address = envelope_address(item.email)
        links = self._links()
        data = self.factory.build(
            address,
            item.name,
            links.url("unsubscribe", item.subscriber_id, item.email_key),
            links.url("preferences", item.subscriber_id, item.email_key),
            message_id=message_id,
        )
        if self.dkim is not None:
            data = self.dkim(data)
        return OutgoingMessage(self.settings.from_address, address, data, message_id)


def envelope_address(email: str) -> str:
    """The address as it goes on the wire: an internationalised domain in its ASCII (IDNA) form."""
    if email.isascii():
        return email
    local, _, domain = email.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as exc:
        raise NewsletterError(f"cannot write the domain of {email!r} in ASCII: {exc}") from None


def dkim_signer(settings: Settings, domain: str) -> Callable[[bytes], bytes] | None:
    """A DKIM signer when a key is configured; the signature covers the headers receivers rely on."""
    if not settings.dkim_key_path:
        return None
    import dkim

    if not settings.dkim_selector:
        raise NewsletterError("dkim_key_path is set but dkim_selector is empty")
    try:
        key = settings.resolve_path(settings.dkim_key_path).read_bytes()
    except OSError as exc:
        raise NewsletterError(f"cannot read the DKIM key {settings.dkim_key_path}: {exc.strerror}") from None
    headers = [b"From", b"To", b"Subject", b"Date", b"Message-ID", b"List-Unsubscribe", b"List-Unsubscribe-Post"]

    def sign(message: bytes) -> bytes:
        signature = dkim.sign(message, settings.dkim_selector.encode(), domain.encode(), key, include_headers=headers)
        return signature + message

    try:
        sign(b"From: a@" + domain.encode() + b"\r\nSubject: key check\r\n\r\nx\r\n")  # a bad key fails here, once
    except dkim.DKIMException as exc:
        raise NewsletterError(f"cannot sign with the DKIM key {settings.dkim_key_path}: {exc}") from None
    return sign


def prepare(ref: str | Path, settings: Settings, *, for_send: bool = True) -> Prepared:
    """Load, lint and render a campaign once. Lint errors, or an unsigned vignette when sending, stop here."""
    campaign = load_campaign(ref, settings)
    report = lint_campaign(campaign, settings)
    if report.errors:
        raise LintFailed(f"{campaign.slug}: {len(report.errors)} lint error(s); run `newsletter campaign lint {campaign.slug}`", report)
    if for_send and report.signoff_missing:
        raise LintFailed(
            f"{campaign.slug}: every vignette needs a current reviewer sign-off before it is sent; "
            f"see `newsletter campaign lint {campaign.slug}` and `newsletter campaign signoff`",
            report,
        )
    assert report.rendered is not None
    links = None
    if for_send:
        links = Links(settings.require_secret_key(), settings.public_base_url, confirm_max_age=settings.confirm_max_age)
    factory = MessageFactory(report.rendered, settings)
    return Prepared(campaign, report.rendered, report, settings, links, factory, dkim_signer(settings, factory.domain))


def audience_size(store: Store, prepared: Prepared) -> int:
    with store.session() as session:
        return session.scalar(
            select(func.count()).select_from(Subscriber).where(outbox.audience_filter(list(prepared.campaign.audience)))
        ) or 0


def check_every_recipient(store: Store, prepared: Prepared) -> int:
    """Build every audience member's message once; any failure stops the send before anything goes out."""
    failures: list[str] = []
    count = 0
    with store.session(commit=False) as session:
        audience = select(Subscriber).where(outbox.audience_filter(list(prepared.campaign.audience)))
        for subscriber in subscribers.stream(session, audience):
            count += 1
            try:
                prepared.check_recipient(subscriber.email, subscriber.name)
            except NewsletterError as exc:
                failures.append(f"{subscriber.email}: {exc}")
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise RecipientRenderFailed(f"{len(failures)} recipient message(s) cannot be built, nothing was sent: {failures[0]}{more}")
    return count


@dataclass
class SendResult:
    campaign: str
    counts: Counts
    duration_s: float
    warnings: list[str] = dataclasses.field(default_factory=list)
    this_run: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_PENDING if self.counts.pending else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            **dataclasses.asdict(self.counts),
            "duration_s": round(self.duration_s, 3),
            "this_run": {k: self.this_run.get(k, 0) for k in ("sent", "failed", "retry", "deferred")},
            **({"warnings": self.warnings} if self.warnings else {}),
        }


def start(store: Store, prepared: Prepared) -> CampaignRecord:
    """Check every recipient, then fix the audience in the outbox (once; later runs add nobody)."""
    with store.session() as session:
        record = outbox.find_campaign(session, prepared.campaign.slug)
    if record is not None:
        return record
    check_every_recipient(store, prepared)
    try:
        # The record and its audience are one transaction: whoever creates the record fixes the audience.
        with store.session() as session:
            record = outbox.record_campaign(session, prepared.campaign.slug, prepared.campaign.subject, prepared.web_html)
            outbox.materialise(session, record, list(prepared.campaign.audience))
        return record
    except IntegrityError:
        # Another run started this campaign at the same moment and won: join it.
        with store.session() as session:
            record = outbox.find_campaign(session, prepared.campaign.slug)
        if record is None:
            raise
        return record


def transport_factory(settings: Settings, url: str | None = None) -> Callable[[], Transport]:
    context = TransportContext(settings.project_dir, settings.smtp_password or None)
    url = url or settings.transport
    open_transport(url, context)  # a bad URL is reported before anything else happens
    return lambda: open_transport(url, context)


def send(
    store: Store,
    prepared: Prepared,
    *,
    transport: Callable[[], Transport],
    worker: bool = False,
    connections: int | None = None,
    rate: float | None = None,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    lease: timedelta = timedelta(seconds=60),
) -> SendResult:
    settings = prepared.settings
    started = time.monotonic()
    if worker:
        with store.session() as session:
            record = outbox.find_campaign(session, prepared.campaign.slug)
        if record is None:
            raise NotStarted(f"{prepared.campaign.slug} has not started sending; a worker can only join a started campaign")
    else:
        record = start(store, prepared)
    delivery = Delivery(
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
    counts = delivery.run()
    return SendResult(
        prepared.campaign.slug, counts, time.monotonic() - started, delivery.state.warnings, dict(delivery.state.outcomes)
    )


def status(store: Store, slug: str) -> Counts | None:
    with store.session() as session:
        record = outbox.find_campaign(session, slug)
        return None if record is None else outbox.counts(session, record)
