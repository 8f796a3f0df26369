"""``POST /webhooks/ses``: Amazon SES bounces and complaints, delivered by SNS.

A thin door onto :class:`newsletter.feedback.webhooks.SesWebhook`, which verifies the SNS signature
before it believes anything. Answers are one line of plain text for SNS's delivery log: 200 when the
message was handled (recorded, seen before, or not about a failure), 403 when it is not verifiably
from one of the clinic's topics, 400 when it is not an SNS message, 404 while ``ses_topic_arns`` is
not set. SNS retries anything but a 2xx, so a refused message is not lost if it was real.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request

from newsletter.errors import ConfigError, NewsletterError
from newsletter.feedback.sns import SnsRefused
from newsletter.feedback.webhooks import BODY_LIMIT, SesWebhook

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)
EXTENSION = "newsletter.ses"


def _text(status: int, text: str) -> Response:
    return Response(text + "\n", status, mimetype="text/plain")


@bp.post("/webhooks/ses")
def ses() -> Response:
    hook: SesWebhook = current_app.extensions[EXTENSION]
    request.max_content_length = BODY_LIMIT  # larger than the forms' limit: notifications carry headers
    try:
        result = hook.handle(request.get_data(cache=False))
    except SnsRefused as exc:
        log.warning("refused an SNS message: %s", exc)
        return _text(403, f"refused: {exc}")
    except ConfigError:
        return _text(404, "not found")
    except NewsletterError as exc:
        return _text(400, f"not accepted: {exc}")
    return _text(200, result.action)
