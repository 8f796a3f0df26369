"""Provider webhooks: what ``POST /webhooks/ses`` does, callable without the web.

An SNS message is verified (:mod:`newsletter.feedback.sns`) before anything else is read. A
subscription confirmation is confirmed by visiting its SubscribeURL; a notification's SES bounce or
complaint (:mod:`newsletter.feedback.ses`) goes through :class:`newsletter.feedback.ingest.Ingestor`,
the same door as a returned email, and is recorded once however often it is delivered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from newsletter.config import Settings
from newsletter.errors import ConfigError, InputError
from newsletter.feedback.ingest import Ingested, Ingestor
from newsletter.feedback.ses import read_notification
from newsletter.feedback.sns import Fetch, SnsVerifier, fetch_https
from newsletter.store.engine import Store
from newsletter.store.models import utcnow

BODY_LIMIT = 256 * 1024  # SES notifications with full headers run to tens of kilobytes


@dataclass(frozen=True)
class WebhookResult:
    action: str  # "recorded", "seen before", "ignored", "subscribed", "unsubscribed"
    ingested: Ingested | None = None


class SesWebhook:
    """Handles SNS deliveries of SES notifications for the topics in ``ses_topic_arns``."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        fetch: Fetch = fetch_https,
    ) -> None:
        topics = {t.strip() for t in settings.ses_topic_arns.split(",") if t.strip()}
        self.enabled = bool(topics)
        self.verifier = SnsVerifier(topics, fetch=fetch)
        self.ingestor = Ingestor(store, settings)
        self.store = store

    def handle(self, body: bytes) -> WebhookResult:
        if not self.enabled:
            raise ConfigError("the SES webhook is off: ses_topic_arns is not set")
        if len(body) > BODY_LIMIT:
            raise InputError("the SNS message is too large")
        try:
            message = json.loads(body)
        except ValueError:
            raise InputError("the body is not an SNS message (not JSON)") from None
        if not isinstance(message, dict):
            raise InputError("the body is not an SNS message")
        self.verifier.verify(message, utcnow())
        kind = message["Type"]
        if kind == "SubscriptionConfirmation":
            self.verifier.confirm_subscription(message)
            return WebhookResult("subscribed")
        if kind == "UnsubscribeConfirmation":
            return WebhookResult("unsubscribed")  # nothing to do: SNS stops sending
        reading = read_notification(str(message.get("Message", "")), str(message.get("MessageId", "")))
        if reading is None:
            return WebhookResult("ignored")
        with self.store.session() as session:
            result = self.ingestor.apply(session, reading, body, "ses")
        return WebhookResult("seen before" if result.duplicate else "recorded", result)
