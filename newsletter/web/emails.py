"""The web endpoint's own emails: "please confirm", "you're already subscribed" and "your preferences link".

These are one-off messages, so a plain :class:`email.message.EmailMessage` is fine (campaigns use
the two-stage :class:`newsletter.delivery.mime.MessageFactory` for speed).

Nothing typed into the form appears in them, not even the name: anyone can submit any address, and
a name such as "Your account is locked, call +1 555..." would otherwise reach a stranger's inbox
under the clinic's name. The address itself is the only value from the form, and only in To:.
"""

from __future__ import annotations

import email.policy
import secrets
from datetime import UTC, datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime

from newsletter.config import Settings
from newsletter.delivery.dkim import Signer, dkim_signer
from newsletter.delivery.headers import HeaderError, check_address, clean_header_value, envelope_address
from newsletter.delivery.transports import OutgoingMessage
from newsletter.errors import ConfigError, NewsletterError
from newsletter.theme import load_theme, sender_line
from newsletter.web import jinja_env


def usable_recipient(email_address: str) -> str:
    """The address as it goes on the wire; raises HeaderError when it cannot go into a header."""
    try:
        recipient = envelope_address(email_address)
    except NewsletterError as exc:  # a domain that has no IDNA form
        raise HeaderError(f"cannot send to {email_address!r}") from exc
    check_address(recipient)
    return recipient


def describe_duration(seconds: int) -> str:
    """ "7 days", "36 hours", "30 minutes": how long a confirmation link works, for people."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


class SignupEmails:
    """Builds the messages; checks the sender settings once, when the app starts."""

    def __init__(self, settings: Settings) -> None:
        if not settings.from_address:
            raise ConfigError("the from_address setting is empty; confirmation emails need a From: address")
        try:
            self.sender, self.domain = check_address(settings.from_address)
            self.reply_to = check_address(settings.reply_to)[0] if settings.reply_to else ""
        except HeaderError as exc:
            raise ConfigError(f"from_address/reply_to: {exc}") from None
        self.settings = settings
        self.theme = load_theme(settings)  # the clinic's look, shared with the pages (newsletter.web.look)
        self.sender_line = sender_line(settings.organisation, settings.postal_address)
        self.sign: Signer | None = dkim_signer(settings, self.domain)

    def confirmation(self, recipient: str, confirm_url: str) -> OutgoingMessage:
        return self._message(
            recipient,
            f"Please confirm your subscription to {self.settings.organisation}'s newsletter",
            "email_confirm",
            confirm_url=confirm_url,
            valid_for=describe_duration(self.settings.confirm_max_age),
        )

    def already_subscribed(self, recipient: str, preferences_url: str, unsubscribe_url: str) -> OutgoingMessage:
        return self._message(
            recipient,
            f"You're already subscribed to {self.settings.organisation}'s newsletter",
            "email_already",
            preferences_url=preferences_url,
            unsubscribe_url=unsubscribe_url,
        )

    def preferences_link(self, recipient: str, preferences_url: str, unsubscribe_url: str) -> OutgoingMessage:
        return self._message(
            recipient,
            f"Your link to {self.settings.organisation}'s newsletter preferences",
            "email_preferences",
            preferences_url=preferences_url,
            unsubscribe_url=unsubscribe_url,
        )

    def _message(self, recipient: str, subject: str, template: str, **context: str) -> OutgoingMessage:
        recipient = usable_recipient(recipient)
        context = {
            "organisation": self.settings.organisation,
            "sender_line": self.sender_line,
            "subject": subject,
            **context,
        }
        message_id = f"<{secrets.token_hex(16)}@{self.domain}>"
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = HeaderAddress(display_name=clean_header_value(self.settings.organisation), addr_spec=self.sender)
        msg["To"] = recipient
        msg["Subject"] = clean_header_value(subject)
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = message_id
        if self.reply_to:
            msg["Reply-To"] = self.reply_to
        # RFC 3834: autoresponders ("I'm on holiday") must not answer an automatic message.
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(jinja_env.render(f"{template}.txt", **context), cte="quoted-printable")
        html = jinja_env.render(f"{template}.html", theme=self.theme, **context)
        msg.add_alternative(html, subtype="html", cte="quoted-printable")
        data = msg.as_bytes()
        if self.sign is not None:
            data = self.sign(data)
        return OutgoingMessage(self.sender, recipient, data, message_id)
