"""Rate limits on the public forms (signup, preferences link): per source, and per address and source.

A *source* is where a request comes from, as a network: an IPv4 address, or the /64 an IPv6 address
is in (one household or one server gets a whole /64, so counting per IPv6 address would give it
billions of allowances). IPv4-mapped IPv6 addresses count as their IPv4 address.

- **Per source** (``per_ip``): too many requests from one source get a 429. That says nothing about
  any address, so it may be seen.
- **Per address and source** (``per_address``): requests for one address from one source. Counting
  per source as well means a stranger elsewhere cannot use up someone's own allowance.
- **Per address, all sources** (``per_address_total``): a ceiling against mail-bombing an address
  from many networks at once. It is set above ``per_address``, so no single source can reach it.

The address limits are applied after the answer, on the web's mail thread, with the rest of the
work that depends on the address (see :mod:`newsletter.web.deferred`): a request over them gets the
same page, in the same time, and is dropped without an email. A 429 would tell a stranger that
someone (behind the same NAT, say) asked for that address recently; the page cannot.

All limits count *requests*, never emails sent, whatever the address's state. The counters live in a
`limits <https://limits.readthedocs.io>`_ storage (the library under Flask-Limiter): ``memory://``
for one process, or a shared one such as ``redis://host`` when several workers serve the form.
Addresses and networks are hashed with the secret key before they become keys, so the storage never
holds either.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
from typing import cast

from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from newsletter.errors import ConfigError, NewsletterError

IPV6_PREFIX = 64


class RateLimited(NewsletterError):
    """Too many requests from one source."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True)
class RateLimits:
    """Limits in the ``limits`` notation ("10/minute", "3 per hour"); an empty string turns one off."""

    per_ip: str = "10/minute"  # per IPv4 address or IPv6 /64
    per_address: str = "3/hour"  # per address and source
    per_address_total: str = "10/hour"  # per address, all sources together
    storage_uri: str = "memory://"


def network(ip: str) -> str:
    """The source a request counts against: its IPv4 address, or its IPv6 address's /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # not an address (a test client, a unix socket): counted as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address), IPV6_PREFIX), strict=False))
    return str(address)


def _item(text: str, what: str) -> RateLimitItem | None:
    if not text:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise ConfigError(f"rate limit {what} {text!r} is not understood: {exc}") from None


def _check_total(per_address: RateLimitItem | None, total: RateLimitItem | None) -> None:
    """One source must not be able to reach the total alone, or it could block the address's owner."""
    if per_address is None or total is None:
        return
    windows = -(-total.get_expiry() // per_address.get_expiry())  # per-address windows in a total window
    if total.amount <= per_address.amount * windows:
        raise ConfigError(
            f"rate limit per address (all sources) {total} must allow more than one source can send under "
            f"the per-address limit {per_address} ({per_address.amount * windows}), or a stranger could use it up"
        )


class SignupLimiter:
    """Counts form requests in a moving window."""

    def __init__(self, limits: RateLimits, secret_key: str) -> None:
        self._key = secret_key.encode()
        self._per_source = _item(limits.per_ip, "per IP")
        self._per_address = _item(limits.per_address, "per address")
        self._per_address_total = _item(limits.per_address_total, "per address (all sources)")
        _check_total(self._per_address, self._per_address_total)
        self.storage = cast(Storage, storage_from_string(limits.storage_uri))  # a sync URI gives a sync storage
        self._limiter = MovingWindowRateLimiter(self.storage)

    def source(self, ip: str) -> str:
        """The key of the network ``ip`` is in: what the limits count per source (never the IP itself)."""
        return self._digest("source", network(ip))

    # ``form`` keeps each form's counts apart: asking for a preferences link uses up no signups.
    def check_source(self, source: str, form: str = "signup") -> None:
        """Count a request from ``source``; raises :class:`RateLimited` once it is over the limit."""
        item = self._per_source
        if item is not None and not self._limiter.hit(item, form, "source", source):
            # The whole window, not the exact reset time, which would date the source's first request.
            raise RateLimited("too many requests; please try again later", item.get_expiry())

    def allow_address(self, address_key: str, source: str, form: str = "signup") -> bool:
        """Count a request for an address from ``source``; False when it is over a limit and must be
        dropped. Only for work done after the answer: the answer must not depend on it."""
        address = self._digest("address", address_key)
        if self._per_address is not None and not self._limiter.hit(self._per_address, form, "address", address, source):
            return False  # not counted in the total, so one source cannot use up everyone's allowance
        total = self._per_address_total
        return total is None or self._limiter.hit(total, form, "address-total", address)

    def _digest(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"ratelimit:{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]

    def reset(self) -> None:
        self.storage.reset()
