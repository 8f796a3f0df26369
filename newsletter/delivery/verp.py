"""What ties something that comes back to the message it is about: the VERP sender and the Message-ID.

**VERP** (variable envelope return path): with ``bounce_address`` set to
``bounce@news.harvest.example``, the message of outbox row N goes out with the envelope sender
``bounce+TOKEN@news.harvest.example``. Mail servers send bounces to the envelope sender, so the address
a bounce arrives at names the row, and through it the campaign and the subscriber, even when the
bounce itself is unreadable.

TOKEN is the row id encrypted under a key derived from the secret key: one AES block holding 8 bytes
of row id and 8 zero bytes. Decrypting anything we did not make gives random bytes, whose last 8 are
all zero with a chance of 2^-64, so the zeros authenticate the token. It reveals nothing (not even
how many messages went out before it), is 26 characters of lower-case base32 (mail systems may
lower-case a local part on the way), and costs a few microseconds per message.

**Message-ID**: ``<cCAMPAIGN.mROW.TAG@domain>``, where TAG is a keyed digest of the two numbers. The
same row always gets the same id (a message resent after a crash can be recognised), and an id read
from a bounce's returned headers is ours only if its TAG checks out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from newsletter.delivery.headers import HeaderError, check_address
from newsletter.delivery.links import Links
from newsletter.errors import ConfigError

TOKEN_LENGTH = 26  # 16 bytes in unpadded base32
_PAD = bytes(8)
_TOKEN_RE = re.compile(r"[a-z2-7]{26}", re.IGNORECASE)
_MESSAGE_ID_RE = re.compile(r"<?c(\d{1,18})\.m(\d{1,18})\.([0-9a-f]{12})@[^>\s]+>?")


class Verp:
    """Makes and reads VERP envelope senders under one secret key."""

    def __init__(self, secret_key: str, bounce_address: str = "") -> None:
        if not secret_key:
            raise ConfigError("NEWSLETTER_SECRET_KEY is not set; it signs the VERP tokens of bounce addresses")
        key = hmac.new(secret_key.encode(), b"newsletter.verp", hashlib.sha256).digest()[:16]
        self._cipher = algorithms.AES(key)
        self.local = self.domain = ""
        if bounce_address:
            try:
                address, self.domain = check_address(bounce_address)
            except HeaderError as exc:
                raise ConfigError(f"bounce_address: {exc}") from None
            self.local = address.rpartition("@")[0]
            if len(self.local) + 1 + TOKEN_LENGTH > 64:
                raise ConfigError("bounce_address: its local part is too long to add a VERP token to")

    @property
    def enabled(self) -> bool:
        return bool(self.local)

    def token(self, outbox_id: int) -> str:
        encryptor = Cipher(self._cipher, modes.ECB()).encryptor()  # one block, so ECB is a plain PRP
        block = encryptor.update(outbox_id.to_bytes(8, "big") + _PAD) + encryptor.finalize()
        return base64.b32encode(block).decode("ascii").rstrip("=").lower()

    def outbox_id(self, token: str) -> int | None:
        """The row a token names, or None for anything we did not make."""
        if not _TOKEN_RE.fullmatch(token):
            return None
        try:
            block = base64.b32decode(token.upper() + "======")
        except binascii.Error:
            return None
        decryptor = Cipher(self._cipher, modes.ECB()).decryptor()
        plain = decryptor.update(block) + decryptor.finalize()
        if not hmac.compare_digest(plain[8:], _PAD):
            return None
        return int.from_bytes(plain[:8], "big")

    def sender(self, outbox_id: int) -> str:
        """The envelope sender for a row's message: ``local+TOKEN@domain``."""
        if not self.enabled:
            raise ConfigError("bounce_address is not set, so there is no VERP sender")
        return f"{self.local}+{self.token(outbox_id)}@{self.domain}"

    def outbox_id_in(self, address: str) -> int | None:
        """The row named by an address of the form ``anything+TOKEN@anywhere``, or None.

        The domain is not checked: the token is, and relays sometimes rewrite the domain.
        """
        local = address.strip().strip("<>").rpartition("@")[0]
        _, plus, token = local.rpartition("+")
        return self.outbox_id(token) if plus else None


def make_message_id(links: Links, campaign_id: int, outbox_id: int, domain: str) -> str:
    tag = links.tag(f"message:{campaign_id}.{outbox_id}")
    return f"<c{campaign_id}.m{outbox_id}.{tag}@{domain}>"


def read_message_id(links: Links, message_id: str) -> tuple[int, int] | None:
    """``(campaign_id, outbox_id)`` of one of our Message-IDs, or None for anyone else's."""
    match = _MESSAGE_ID_RE.fullmatch(message_id.strip())
    if match is None:
        return None
    campaign_id, outbox_id = int(match[1]), int(match[2])
    if not hmac.compare_digest(match[3], links.tag(f"message:{campaign_id}.{outbox_id}")):
        return None
    return campaign_id, outbox_id
