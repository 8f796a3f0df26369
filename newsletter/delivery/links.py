"""Signed links in emails: confirm, unsubscribe, preferences; and the archive's public URLs.

Each token is signed with the secret key under its own salt, so a token made for one purpose is
worthless for another. It carries a key naming what it is for (the subscriber's public id for
unsubscribe and preferences; the signup request's random token for confirm) and a keyed fingerprint
of the address: a token stays bound to the person, and the URL reveals nothing about the address
(itsdangerous payloads are signed, not encrypted). Both keys are random, so a link tells nothing about
the list either: the row ids that links named before public ids counted the people who signed up
before. The payload's format is made in :meth:`Links.token` and read in :meth:`Links.read`, and
nowhere else.

Unsubscribe and preferences tokens never expire: an unsubscribe link in a years-old email must still
work. That holds for the links made before public ids too: they are still read (see
:attr:`TokenClaim.legacy_id`), never made. Confirm tokens expire after ``confirm_max_age`` seconds.
An unsubscribe link in a campaign also carries the campaign's id, so the campaign report can count
the unsubscribes it caused without tracking anyone.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, Signer, TimestampSigner

from newsletter.errors import NewsletterError
from newsletter.store.models import PUBLIC_ID_LENGTH

Purpose = Literal["confirm", "unsubscribe", "preferences"]
PURPOSES: tuple[Purpose, ...] = ("confirm", "unsubscribe", "preferences")
DEFAULT_CONFIRM_MAX_AGE = 7 * 24 * 3600
KEY_MAX = 64
TOKEN_MAX = 512  # ours are about 60-130 characters; anything much longer is not one of ours
_LEGACY_ID_MAX = 18  # digits: a row id, as links named subscribers before public ids


class BadToken(NewsletterError):
    """A token that is forged, truncated, expired, or made for another purpose or person."""


@dataclass(frozen=True)
class TokenClaim:
    key: str  # what the token names: a subscriber's public id, or a signup request's token
    fingerprint: str
    campaign_id: int | None = None  # the campaign whose message carried the link, if any

    @property
    def legacy_id(self) -> int | None:
        """The row id an unsubscribe or preferences link made before public ids names, else None.

        Still honoured, since such links sit in emails people keep; accepting them reveals nothing
        that the link itself did not already show, and no new link is made that way.
        """
        if self.key.isdigit() and len(self.key) <= _LEGACY_ID_MAX:
            return int(self.key)
        return None


class Links:
    """Makes and checks the personal URLs under ``public_base_url``."""

    def __init__(self, secret_key: str, public_base_url: str, *, confirm_max_age: int = DEFAULT_CONFIRM_MAX_AGE):
        if not secret_key:
            raise NewsletterError("NEWSLETTER_SECRET_KEY is not set; it is needed to sign links in emails")
        self._key = secret_key.encode()
        self.base = public_base_url.rstrip("/")
        self.confirm_max_age = confirm_max_age
        # The payload is short plain text ("id-fingerprint"), signed with its purpose's salt: no JSON
        # or compression per link, which matters with two links in every message of a campaign.
        self._signers: dict[str, Signer] = {
            purpose: (TimestampSigner if purpose == "confirm" else Signer)(
                secret_key, salt=f"newsletter.{purpose}", digest_method=hashlib.sha256
            )
            for purpose in PURPOSES
        }

    def tag(self, value: str) -> str:
        """A short keyed digest of ``value``: unguessable without the secret key, stable with it."""
        return hmac.new(self._key, b"tag:" + value.encode(), hashlib.sha256).hexdigest()[:12]

    def fingerprint(self, email_key: str) -> str:
        return hmac.new(self._key, b"fingerprint:" + email_key.encode(), hashlib.sha256).hexdigest()[:16]

    def token(self, purpose: Purpose, key: str, email_key: str, *, campaign_id: int | None = None) -> str:
        """A token for ``key`` (letters and digits only: a subscriber's public id, or for confirm a
        signup request's token), the address it belongs to and, for the links in a campaign message,
        the campaign that carried it."""
        if purpose != "confirm" and len(key) != PUBLIC_ID_LENGTH:
            raise ValueError("unsubscribe and preferences links name a subscriber by their public id")
        payload = f"{key}-{self.fingerprint(email_key)}"
        if campaign_id is not None:
            payload += f"-{campaign_id}"
        return self._signers[purpose].sign(payload).decode("ascii")

    def read(self, purpose: Purpose, token: str) -> TokenClaim:
        """The claim in a token; raises :class:`BadToken` for anything not made by us for this purpose."""
        if len(token) > TOKEN_MAX or not token.isascii():  # refused before any signature is computed
            raise BadToken("this link is not valid")
        signer = self._signers[purpose]
        try:
            if isinstance(signer, TimestampSigner):
                payload = signer.unsign(token, max_age=self.confirm_max_age)
            else:
                payload = signer.unsign(token)
        except SignatureExpired:
            raise BadToken("this link has expired; please sign up again") from None
        except BadSignature:
            raise BadToken("this link is not valid") from None
        key, _, rest = payload.decode("ascii", "replace").partition("-")
        fingerprint, dash, campaign_id = rest.partition("-")
        if not (key.isascii() and key.isalnum() and len(key) <= KEY_MAX) or len(fingerprint) != 16:
            raise BadToken("this link is not valid")
        if dash and not (campaign_id.isascii() and campaign_id.isdigit()):
            raise BadToken("this link is not valid")
        return TokenClaim(key, fingerprint, int(campaign_id) if dash else None)

    def matches(self, claim: TokenClaim, email_key: str) -> bool:
        return hmac.compare_digest(claim.fingerprint, self.fingerprint(email_key))

    def url(self, purpose: Purpose, key: str, email_key: str, *, campaign_id: int | None = None) -> str:
        return f"{self.base}/{purpose}/{self.token(purpose, key, email_key, campaign_id=campaign_id)}"

    def archive_url(self, slug: str | None = None) -> str:
        return f"{self.base}/archive" + (f"/{quote(slug)}" if slug else "")
