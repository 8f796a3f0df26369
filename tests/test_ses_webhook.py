"""POST /webhooks/ses: Amazon SES notifications through SNS, with the signature really verified.

The tests generate their own RSA key and certificate (issued to sns.amazonaws.com, as Amazon's are)
and serve it through the certificate-fetching seam; nothing else about verification is replaced.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient

from newsletter.delivery.verp import Verp
from newsletter.feedback.sns import SnsRefused, SnsVerifier
from newsletter.store.engine import Store
from newsletter.store.models import Source
from newsletter.subscribers import service
from newsletter.subscribers.service import ConsentInfo
from newsletter.web import close_app, create_app
from tests.support.bounces import record_sends
from tests.support.web import NO_LIMITS, SECRET, web_settings

TOPIC = "arn:aws:sns:eu-west-1:123456789012:harvest-ses"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"


def make_certificate(common_name: str = "sns.amazonaws.com") -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


KEY, CERTIFICATE = make_certificate()


class Certificates:
    """The seam: serves our certificate at CERT_URL, and records every URL asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.asked.append(url)
        if url == CERT_URL:
            return CERTIFICATE
        if url.startswith("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"):
            return b"<ConfirmSubscriptionResponse/>"
        raise OSError(f"404 for {url}")


def signed(message: dict[str, Any], *, key: rsa.RSAPrivateKey = KEY, version: str = "2") -> dict[str, Any]:
    fields = {
        "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
        "SubscriptionConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
    }[message["Type"]]
    text = "".join(f"{name}\n{message[name]}\n" for name in fields if name in message)
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
    signature = key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    return {
        **message,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
        "SigningCertURL": message.get("SigningCertURL", CERT_URL),
    }


def notification(ses: dict[str, Any], *, message_id: str = "a1b2c3", minutes_ago: float = 1) -> dict[str, Any]:
    stamp = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(timespec="milliseconds")
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": json.dumps(ses),
        "Timestamp": stamp.replace("+00:00", "Z"),
        "SigningCertURL": CERT_URL,
    }


def bounce(recipient: str, *, source: str, status: str = "5.1.1", feedback_id: str = "fb-1") -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "feedbackId": feedback_id,
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": status,
                    "diagnosticCode": f"smtp; 550 {status} user unknown",
                }
            ],
            "timestamp": "2026-11-03T09:14:12.000Z",
        },
        "mail": {
            "timestamp": "2026-11-03T09:14:04.000Z",
            "source": source,
            "messageId": "0102018f-ses-message-id",
            "destination": [recipient],
            "commonHeaders": {"messageId": "<not-ours@elsewhere.example>", "subject": "Three client stories"},
        },
    }


def complaint(recipient: str, feedback_type: str = "abuse") -> dict[str, Any]:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "feedbackId": f"complaint-{recipient}-{feedback_type}",
            "complainedRecipients": [{"emailAddress": recipient}],
            "complaintFeedbackType": feedback_type,
        },
        "mail": {"source": "bounce@news.harvest.example", "destination": [recipient]},
    }


@pytest.fixture
def certificates() -> Certificates:
    return Certificates()


@pytest.fixture
def webhook_app(store: Store, tmp_path: Path, certificates: Certificates) -> Iterator[Flask]:
    settings = web_settings(
        tmp_path,
        store.engine.url.render_as_string(hide_password=False),
        ses_topic_arns=f"arn:aws:sns:us-east-1:123456789012:other, {TOPIC}",
        bounce_address="bounce@news.harvest.example",
    )
    app = create_app(settings, store=store, transport=lambda: None, rate_limits=NO_LIMITS, sns_fetch=certificates)  # type: ignore[arg-type,return-value]
    yield app
    close_app(app)


@pytest.fixture
def hook(webhook_app: Flask) -> FlaskClient:
    return webhook_app.test_client()


def post(client: FlaskClient, message: dict[str, Any]):  # type: ignore[no-untyped-def]
    # SNS posts JSON with Content-Type text/plain.
    return client.post("/webhooks/ses", data=json.dumps(message), content_type="text/plain; charset=UTF-8")


def mailed(store: Store, email: str) -> int:
    with store.session() as session:
        service.add(session, email, consent=ConsentInfo(Source.MANUAL, "v1"), confirmed=True)
    return record_sends(store, email, 1)[0]


def status_of(store: Store, email: str) -> str:
    with store.session() as session:
        return service.get(session, email).status


def test_a_valid_bounce_by_verp_suppresses_and_a_replay_changes_nothing(
    hook: FlaskClient, store: Store, certificates: Certificates
) -> None:
    row = mailed(store, "ana@example.org")
    verp = Verp(SECRET, "bounce@news.harvest.example").sender(row)
    message = signed(notification(bounce("ana@example.org", source=verp)))
    first = post(hook, message)
    assert (first.status_code, first.text) == (200, "recorded\n")
    assert status_of(store, "ana@example.org") == "bounced"
    with store.session() as session:
        event = service.get(session, "ana@example.org").events[-1]
    assert (event.kind, event.detail["via"], event.detail["status_code"]) == ("bounced", "ses", "5.1.1")
    replay = post(hook, message)
    assert (replay.status_code, replay.text) == (200, "seen before\n")
    with store.session() as session:
        assert service.get(session, "ana@example.org").events[-1].id == event.id  # nothing new
    assert certificates.asked == [CERT_URL]  # fetched once, then cached


def test_signature_version_1_and_a_complaint_by_recipient(hook: FlaskClient, store: Store) -> None:
    mailed(store, "ben@example.org")
    response = post(hook, signed(notification(complaint("ben@example.org"), message_id="c1"), version="1"))
    assert response.status_code == 200 and status_of(store, "ben@example.org") == "complained"
    not_spam = post(hook, signed(notification(complaint("ben@example.org", "not-spam"), message_id="c2")))
    assert not_spam.status_code == 200


def test_a_forged_signature_is_refused_and_changes_nothing(hook: FlaskClient, store: Store) -> None:
    mailed(store, "cy@example.org")
    other_key, _ = make_certificate()
    forged = signed(notification(bounce("cy@example.org", source="x@example.org")), key=other_key)
    response = post(hook, forged)
    assert response.status_code == 403 and "signature" in response.text
    tampered = signed(notification(bounce("dee@example.org", source="x@example.org")))
    tampered["Message"] = json.dumps(bounce("cy@example.org", source="x@example.org"))
    assert post(hook, tampered).status_code == 403
    assert status_of(store, "cy@example.org") == "confirmed"


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
        "https://user@sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com/cert.txt",
    ],
)
def test_a_certificate_off_the_providers_domain_is_never_fetched(
    hook: FlaskClient, store: Store, certificates: Certificates, url: str
) -> None:
    mailed(store, "eve@example.org")
    message = notification(bounce("eve@example.org", source="x@example.org"))
    message["SigningCertURL"] = url
    response = post(hook, signed(message))
    assert response.status_code == 403
    assert certificates.asked == []
    assert status_of(store, "eve@example.org") == "confirmed"


def test_an_old_message_and_another_topic_are_refused(hook: FlaskClient, store: Store) -> None:
    mailed(store, "fay@example.org")
    old = signed(notification(bounce("fay@example.org", source="x@example.org"), minutes_ago=90))
    assert post(hook, old).status_code == 403
    elsewhere = notification(bounce("fay@example.org", source="x@example.org"), message_id="m2")
    elsewhere["TopicArn"] = "arn:aws:sns:eu-west-1:999999999999:someone-else"
    response = post(hook, signed(elsewhere))
    assert response.status_code == 403 and "ses_topic_arns" in response.text
    assert status_of(store, "fay@example.org") == "confirmed"


def test_subscription_confirmation_visits_the_subscribe_url(hook: FlaskClient, certificates: Certificates) -> None:
    subscribe = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=t0k3n"
    message = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "s1",
        "Token": "t0k3n",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": subscribe,
        "Timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    response = post(hook, signed(message))
    assert (response.status_code, response.text) == (200, "subscribed\n")
    assert certificates.asked == [CERT_URL, subscribe]
    unsigned = {**signed(message), "SubscribeURL": "https://evil.example/?Action=ConfirmSubscription"}
    assert post(hook, unsigned).status_code == 403
    assert certificates.asked == [CERT_URL, subscribe]


def test_not_json_is_a_400_and_the_hook_is_off_without_topics(
    hook: FlaskClient, store: Store, tmp_path: Path, certificates: Certificates
) -> None:
    assert post(hook, ["not", "an", "object"]).status_code == 400  # type: ignore[arg-type]
    assert hook.post("/webhooks/ses", data=b"{nope").status_code == 400
    assert hook.post("/webhooks/ses", data=b"x" * (300 * 1024)).status_code == 413
    settings = web_settings(tmp_path, store.engine.url.render_as_string(hide_password=False))
    app = create_app(settings, store=store, transport=lambda: None, rate_limits=NO_LIMITS, sns_fetch=certificates)  # type: ignore[arg-type,return-value]
    try:
        assert post(app.test_client(), signed(notification(complaint("a@example.org")))).status_code == 404
    finally:
        close_app(app)


def test_the_verifier_refuses_a_certificate_issued_to_someone_else() -> None:
    key, certificate = make_certificate("evil.example")
    verifier = SnsVerifier({TOPIC}, fetch=lambda url: certificate)
    message = signed(notification(complaint("a@example.org")), key=key)
    with pytest.raises(SnsRefused, match=r"sns\.amazonaws\.com"):
        verifier.verify(message, datetime.now(UTC))
