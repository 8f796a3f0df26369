"""Rate limits on the public forms (signup, preferences link): per client IP, and per email address.

Both limits count *requests*, never emails sent. Counting emails would make a 429 appear sooner for
an address that gets a confirmation than for one that is suppressed (bounced, complained, erased),
and so tell a stranger who was once on a clinic's list. Counting every request for a valid address
caps confirmation emails per address as well, since each request sends at most one.

The counters live in a `limits <https://limits.readthedocs.io>`_ storage (the library under
Flask-Limiter): ``memory://`` for one process, or a shared one such as ``redis://host`` when several
workers serve the form. Addresses are hashed with the secret key before they become keys, so the
storage never holds an address.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from typing import cast

from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from newsletter.errors import ConfigError, NewsletterError


class RateLimited(NewsletterError):
    """Too many requests from one client or for one address."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True)
class RateLimits:
    """Limits in the ``limits`` notation ("10/minute", "3 per hour"); an empty string turns one off."""

    per_ip: str = "10/minute"
    per_address: str = "3/hour"
    storage_uri: str = "memory://"


def _item(text: str, what: str) -> RateLimitItem | None:
    if not text:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise ConfigError(f"rate limit {what} {text!r} is not understood: {exc}") from None


class SignupLimiter:
    """Counts signup requests in a moving window; ``check_*`` raise :class:`RateLimited` once over."""

    def __init__(self, limits: RateLimits, secret_key: str) -> None:
        self._key = secret_key.encode()
        self._per_ip = _item(limits.per_ip, "per IP")
        self._per_address = _item(limits.per_address, "per address")
        self.storage = cast(Storage, storage_from_string(limits.storage_uri))  # a sync URI gives a sync storage
        self._limiter = MovingWindowRateLimiter(self.storage)

    def _hit(self, item: RateLimitItem | None, form: str, kind: str, key: str) -> None:
        if item is not None and not self._limiter.hit(item, form, kind, key):
            # Whole window, not the exact reset time: the exact time would say when the first of
            # someone else's requests for this address was made.
            raise RateLimited("too many requests; please try again later", item.get_expiry())

    # ``form`` keeps each form's counts apart: asking for a preferences link uses up no signups.
    def check_ip(self, ip: str, form: str = "signup") -> None:
        self._hit(self._per_ip, form, "ip", self._digest("ip", ip))

    def check_address(self, address_key: str, form: str = "signup") -> None:
        self._hit(self._per_address, form, "address", self._digest("address", address_key))

    def _digest(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"ratelimit:{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]

    def reset(self) -> None:
        self.storage.reset()
