"""Amazon SES bounce and complaint notifications, delivered by SNS: read into the same :class:`Reading`
as a returned email, so they go through the same matching and the same policy.

Both SES formats are read: notifications (``notificationType``) and event publishing
(``eventType``). A bounce's recipients are judged by their ``status`` and ``diagnosticCode`` first, as
every bounce is (:mod:`newsletter.delivery.outcomes`); only when SES gives neither does its
``bounceType`` decide (Permanent: hard, except content rejections, which are blocks; Transient and
Undetermined: soft). A complaint with ``complaintFeedbackType: not-spam`` is not a complaint.
Delivery and other notifications are not about failures and are not recorded.

The idempotency key is SES's ``feedbackId`` (the same bounce notified twice is recorded once), or the
SNS message id. Matching: VERP from ``mail.source`` (the envelope sender SES used), then the
recipients, then the original Message-ID from ``mail.commonHeaders`` or ``mail.headers``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from newsletter.delivery.outcomes import classify
from newsletter.errors import InputError
from newsletter.feedback.classify import DIAGNOSTIC_LIMIT, SEVERITY_KIND, Finding, Reading, finish
from newsletter.store.models import FeedbackKind

_CONTENT_REJECTIONS = frozenset({"MessageTooLarge", "ContentRejected", "AttachmentRejected"})


def read_notification(message_text: str, sns_message_id: str) -> Reading | None:
    """The Reading of one SES notification (the SNS ``Message`` field), or None when it reports no failure."""
    try:
        notification = json.loads(message_text)
    except ValueError:
        raise InputError("the SNS message does not hold an SES notification (not JSON)") from None
    if not isinstance(notification, dict):
        raise InputError("the SNS message does not hold an SES notification")
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = _dict(notification.get("mail"))
    if kind == "Bounce":
        return _reading(_dict(notification.get("bounce")), mail, sns_message_id, _bounce_findings)
    if kind == "Complaint":
        return _reading(_dict(notification.get("complaint")), mail, sns_message_id, _complaint_findings)
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


Findings = tuple[list[Finding], FeedbackKind, str]


def _reading(
    event: Mapping[str, Any], mail: Mapping[str, Any], sns_id: str, findings_of: Callable[[Mapping[str, Any]], Findings]
) -> Reading:
    findings, kind, reason = findings_of(event)
    feedback_id = str(event.get("feedbackId") or "")
    key_source = f"ses:{feedback_id}" if feedback_id else f"sns:{sns_id}"
    common = _dict(mail.get("commonHeaders"))
    message_ids = [str(common.get("messageId") or "")]
    headers = mail.get("headers")
    headers = headers if isinstance(headers, list) else []
    message_ids += [
        str(h.get("value", "")) for h in headers if isinstance(h, dict) and str(h.get("name")).lower() == "message-id"
    ]
    subject = str(common.get("subject") or "")[:200]
    reading = Reading(
        key=hashlib.sha256(key_source.encode()).hexdigest(),
        kind=kind,
        reason=reason,
        envelope=[str(mail["source"])] if mail.get("source") else [],
        message_ids=list(dict.fromkeys(m for m in message_ids if m)),
        subject=subject,
        sender="Amazon SES",
    )
    finish(reading, findings, kind, reason)
    return reading


def _recipients(event: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
    found = event.get(field)
    return [r for r in found if isinstance(r, dict) and r.get("emailAddress")] if isinstance(found, list) else []


def _bounce_findings(event: Mapping[str, Any]) -> Findings:
    bounce_type = str(event.get("bounceType") or "Undetermined")
    sub_type = str(event.get("bounceSubType") or "")
    findings = []
    for recipient in _recipients(event, "bouncedRecipients"):
        status = str(recipient.get("status") or "")
        diagnostic = str(recipient.get("diagnosticCode") or "")[:DIAGNOSTIC_LIMIT]
        if status or diagnostic:
            outcome = classify(status=status, diagnostic=diagnostic)
            kind, code, why = SEVERITY_KIND[outcome.severity], outcome.status, outcome.reason
        else:
            kind, code, why = _by_type(bounce_type, sub_type), None, "no status code from SES"
        reason = f"SES bounce ({bounce_type}/{sub_type or 'none'}); {why}"
        findings.append(Finding((str(recipient["emailAddress"]),), kind, code, diagnostic, reason))
    return findings, _by_type(bounce_type, sub_type), f"SES bounce ({bounce_type}/{sub_type or 'none'})"


def _by_type(bounce_type: str, sub_type: str) -> FeedbackKind:
    if bounce_type == "Permanent":
        return FeedbackKind.BLOCKED if sub_type in _CONTENT_REJECTIONS else FeedbackKind.HARD
    return FeedbackKind.SOFT


def _complaint_findings(event: Mapping[str, Any]) -> Findings:
    feedback_type = str(event.get("complaintFeedbackType") or "abuse")
    if feedback_type == "not-spam":
        return [], FeedbackKind.OTHER, "SES feedback of type 'not-spam', not a complaint"
    reason = f"SES complaint (feedback type {feedback_type})"
    recipients = _recipients(event, "complainedRecipients")
    return (
        [Finding((str(r["emailAddress"]),), FeedbackKind.COMPLAINT, reason=reason) for r in recipients],
        FeedbackKind.COMPLAINT,
        reason,
    )
