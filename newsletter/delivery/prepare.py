"""Getting a campaign ready to send: load it, render it once, lint the rendering, and know how to
build each recipient's message from it.

Everything here is done once per campaign; per recipient, :meth:`Prepared.message_for` joins only
the personal parts (name, address, links, Message-ID, VERP sender) into the prepared message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from newsletter.campaigns.content import Campaign, load_campaign
from newsletter.campaigns.lint import LintReport, lint_campaign, render_or_error
from newsletter.campaigns.render import RenderedCampaign, render_campaign
from newsletter.campaigns.service import SAMPLE_NAME
from newsletter.config import Settings
from newsletter.delivery.dkim import Signer, dkim_signer
from newsletter.delivery.headers import clean_header_value, envelope_address, format_address
from newsletter.delivery.ledger import Claim
from newsletter.delivery.links import Links
from newsletter.delivery.mime import MessageFactory
from newsletter.delivery.transports import OutgoingMessage
from newsletter.delivery.transports.base import stuffed
from newsletter.delivery.verp import Verp, make_message_id
from newsletter.errors import NewsletterError

SAMPLE_RECIPIENT = "reader@example.org"


def sample_message(rendered: RenderedCampaign, settings: Settings) -> bytes:
    """The complete message as a subscriber would get it, with the sample links: what lint's spam
    check and the doctor inspect. Never sent, so not signed."""
    urls = rendered.sample_urls
    return MessageFactory(rendered, settings).build(
        SAMPLE_RECIPIENT, SAMPLE_NAME, urls["unsubscribe_url"], urls["preferences_url"]
    )


class LintFailed(NewsletterError):
    """The campaign has lint errors (or unsigned vignettes) and may not be built or sent."""

    def __init__(self, message: str, report: LintReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Prepared:
    """A campaign ready to go: rendered once, linted, with what makes each recipient's message."""

    campaign: Campaign
    rendered: RenderedCampaign
    report: LintReport
    settings: Settings
    links: Links | None  # None when only building: no secret key is needed to look at a campaign
    factory: MessageFactory
    dkim: Signer | None = None
    verp: Verp | None = None  # set when bounce_address is: each message gets its own envelope sender

    @property
    def web_html(self) -> str:
        """The archive's web version: no greeting, no personal links, nothing about anyone."""
        rendered = render_campaign(self.campaign, self.settings, web=True)
        html, _ = rendered.preview()
        return rendered.as_web_page(html)  # a page cannot show cid: images; data: URIs load nothing either

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
        return make_message_id(self._links(), campaign_id, outbox_id, self.factory.domain)

    def message_for(self, item: Claim, *, campaign_id: int) -> OutgoingMessage:
        message_id = self.message_id(campaign_id, item.outbox_id)
        address = envelope_address(item.email)
        links = self._links()
        data, wire = self.factory.build_with_wire(
            address,
            item.name,
            links.url("unsubscribe", item.public_id, item.email_key, campaign_id=campaign_id),
            links.url("preferences", item.public_id, item.email_key),
            message_id=message_id,
        )
        if self.dkim is not None:
            signed = self.dkim(data)
            wire = stuffed(signed[: len(signed) - len(data)]) + wire  # the signature header goes in front
            data = signed
        sender = self.verp.sender(item.outbox_id) if self.verp is not None else self.settings.from_address
        return OutgoingMessage(sender, address, data, message_id, wire=wire)


def prepare(
    ref: str | Path, settings: Settings, *, for_send: bool = True, spam_check: bool = False, draft: bool = False
) -> Prepared:
    """Load a campaign, render it once and lint the rendering.

    Lint errors, or an unsigned vignette when sending, raise :class:`LintFailed` with the report.
    ``spam_check`` adds SpamAssassin's score of the built message to the lint (``campaign build``
    asks for it; sending does not, see the README). ``draft`` (only when not sending) lets
    placeholder text through as a warning, for previews.
    """
    if draft and for_send:
        raise ValueError("a draft can be built, never sent")
    campaign = load_campaign(ref, settings)
    rendered = render_or_error(campaign, settings)
    builder = (lambda r: sample_message(r, settings)) if spam_check else None
    report = lint_campaign(campaign, settings, rendered=rendered, sample_message=builder, draft=draft)
    if report.errors or isinstance(rendered, NewsletterError):
        raise LintFailed(
            f"{campaign.slug}: {len(report.errors)} lint error(s); run `newsletter campaign lint {campaign.slug}`",
            report,
        )
    if for_send and report.signoff_missing:
        raise LintFailed(
            f"{campaign.slug}: every vignette needs a current reviewer sign-off before it is sent; "
            f"see `newsletter campaign lint {campaign.slug}` and `newsletter campaign signoff`",
            report,
        )
    links = verp = None
    if for_send:
        links = Links(settings.require_secret_key(), settings.public_base_url, confirm_max_age=settings.confirm_max_age)
        if settings.bounce_address:
            verp = Verp(settings.secret_key, settings.bounce_address)
    factory = MessageFactory(rendered, settings)
    return Prepared(campaign, rendered, report, settings, links, factory, dkim_signer(settings, factory.domain), verp)
