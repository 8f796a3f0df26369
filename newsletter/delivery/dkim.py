"""DKIM signing (dkimpy) for every message we send: campaigns and the web's confirmation emails."""

from __future__ import annotations

from collections.abc import Callable

from newsletter.config import Settings
from newsletter.errors import NewsletterError

# The headers receivers rely on, including the one-click unsubscribe pair that Gmail and Yahoo
# require to be covered by the signature.
SIGNED_HEADERS = [b"From", b"To", b"Subject", b"Date", b"Message-ID", b"List-Unsubscribe", b"List-Unsubscribe-Post"]

Signer = Callable[[bytes], bytes]


def dkim_signer(settings: Settings, domain: str) -> Signer | None:
    """A DKIM signer when a key is configured, else None. A bad key is reported here, once."""
    if not settings.dkim_key_path:
        return None
    import dkim

    if not settings.dkim_selector:
        raise NewsletterError("dkim_key_path is set but dkim_selector is empty")
    try:
        key = settings.resolve_path(settings.dkim_key_path).read_bytes()
    except OSError as exc:
        raise NewsletterError(f"cannot read the DKIM key {settings.dkim_key_path}: {exc.strerror}") from None
    selector = settings.dkim_selector.encode()

    def sign(message: bytes) -> bytes:
        signature: bytes = dkim.sign(message, selector, domain.encode(), key, include_headers=SIGNED_HEADERS)
        return signature + message

    try:
        sign(b"From: a@" + domain.encode() + b"\r\nSubject: key check\r\n\r\nx\r\n")
    except dkim.DKIMException as exc:
        raise NewsletterError(f"cannot sign with the DKIM key {settings.dkim_key_path}: {exc}") from None
    return sign
