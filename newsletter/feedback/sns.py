"""Amazon SNS messages, verified: the signature, the certificate's origin, the topic and the age.

What a message must pass before anything in it is believed:

- **The certificate URL** is ``https://sns.<region>.amazonaws.com/...pem`` (``.amazonaws.com.cn`` in
  China), nothing else: no other host, no port, no ``http``. A forger who could point us at their own
  certificate could sign anything.
- **The signature** (``SignatureVersion`` 1: RSA with SHA-1; 2: RSA with SHA-256) over the fields SNS
  signs, checked with the certificate's public key (``cryptography``). The certificate must be
  valid now and issued to ``sns.amazonaws.com``. Certificates are cached by URL.
- **The topic**: one of ``ses_topic_arns``. Anyone can create an SNS topic and have SNS sign for it;
  only the clinic's own topics are listened to.
- **The age**: a message older than :data:`MAX_AGE` is refused, so an old message cannot be
  replayed; a recent one replayed changes nothing, since the bounce it carries is recorded once.

Fetching a certificate (and confirming a subscription) goes through one seam, ``fetch``: a function
from an https URL to bytes. The default uses :mod:`urllib` with certificate verification; tests pass
their own, serving a certificate they generated. Verification itself is never switched off.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from newsletter.errors import NewsletterError

Fetch = Callable[[str], bytes]
MAX_AGE = timedelta(hours=1)
FETCH_TIMEOUT = 10.0
CERTIFICATE_LIMIT = 64 * 1024
_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?")
_CERTIFICATE_NAME = "sns.amazonaws.com"
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class SnsRefused(NewsletterError):
    """An SNS message that is not verifiably from one of our topics (or is too old)."""


def fetch_https(url: str) -> bytes:
    """GET an https URL on an SNS host, with the system's certificate checks."""
    _check_sns_url(url, "URL")
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:  # https on an SNS host, checked above
        data: bytes = response.read(CERTIFICATE_LIMIT + 1)
    return data


def _check_sns_url(url: str, what: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if (
        parts.scheme != "https"
        or parts.hostname is None
        or not _SNS_HOST.fullmatch(parts.hostname)
        or parts.port is not None
        or parts.username is not None
        or parts.netloc != parts.hostname
    ):
        raise SnsRefused(f"the {what} is not on an Amazon SNS host: {url[:200]!r}")
    return parts


class SnsVerifier:
    """Checks SNS messages for a set of topics. Thread-safe; keep one per process (it caches)."""

    def __init__(self, topics: set[str], *, fetch: Fetch = fetch_https) -> None:
        self.topics = topics
        self.fetch = fetch
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def verify(self, message: Mapping[str, Any], now: datetime) -> None:
        """Raise :class:`SnsRefused` unless ``message`` is a genuine, recent message of our topics."""
        kind = message.get("Type")
        if kind not in _SIGNED_FIELDS:
            raise SnsRefused(f"not an SNS message type we accept: {str(kind)[:40]!r}")
        if message.get("TopicArn") not in self.topics:
            raise SnsRefused("the message is from a topic that is not in ses_topic_arns")
        algorithm = _HASHES.get(str(message.get("SignatureVersion")))
        if algorithm is None:
            raise SnsRefused("unknown SNS SignatureVersion")
        url = str(message.get("SigningCertURL", ""))
        if not url.endswith(".pem"):
            raise SnsRefused("the signing certificate URL is not a .pem file")
        _check_sns_url(url, "signing certificate URL")
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError):
            raise SnsRefused("the signature is not base64") from None
        try:
            self._key(url, now).verify(signature, _string_to_sign(message), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SnsRefused("the signature does not match") from None
        sent = _timestamp(message)
        if now - sent > MAX_AGE or sent - now > timedelta(minutes=5):
            raise SnsRefused(f"the message is from {sent.isoformat()}, outside the accepted window")

    def _key(self, url: str, now: datetime) -> rsa.RSAPublicKey:
        with self._lock:
            cached = self._keys.get(url)
        if cached is not None:
            return cached
        try:
            pem = self.fetch(url)
        except (OSError, http.client.HTTPException) as exc:
            raise SnsRefused(f"cannot fetch the signing certificate: {exc}") from exc
        if len(pem) > CERTIFICATE_LIMIT:
            raise SnsRefused("the signing certificate is too large")
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise SnsRefused("the signing certificate cannot be read") from None
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise SnsRefused("the signing certificate is not valid now")
        names = [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if _CERTIFICATE_NAME not in names:
            raise SnsRefused(f"the signing certificate is not issued to {_CERTIFICATE_NAME}")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsRefused("the signing certificate does not hold an RSA key")
        with self._lock:
            if len(self._keys) >= 32:
                self._keys.clear()  # a handful of URLs in practice; this only bounds a flood
            self._keys[url] = key
        return key

    def confirm_subscription(self, message: Mapping[str, Any]) -> None:
        """Visit a verified SubscriptionConfirmation's SubscribeURL, which confirms the subscription."""
        url = str(message.get("SubscribeURL", ""))
        _check_sns_url(url, "SubscribeURL")
        try:
            self.fetch(url)
        except (OSError, http.client.HTTPException) as exc:
            raise SnsRefused(f"cannot confirm the subscription: {exc}") from exc


def _string_to_sign(message: Mapping[str, Any]) -> bytes:
    lines = []
    for name in _SIGNED_FIELDS[str(message["Type"])]:
        if name in message and message[name] is not None:
            lines += [name, str(message[name])]
        elif name != "Subject":
            raise SnsRefused(f"the SNS message has no {name}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _timestamp(message: Mapping[str, Any]) -> datetime:
    try:
        moment = datetime.fromisoformat(str(message.get("Timestamp", "")).replace("Z", "+00:00"))
    except ValueError:
        raise SnsRefused("the SNS Timestamp is not a time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
