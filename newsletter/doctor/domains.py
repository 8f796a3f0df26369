"""Which domains a message is judged by, and their organisational domains.

- The **From domain** is what people see and what DMARC protects.
- The **envelope domain** (Return-Path) is the ``bounce_address`` domain, else the From domain: SPF
  is checked against it and bounces come back to it.
- The **organisational domain** (``harvest.example`` for ``news.harvest.example``) decides relaxed
  DMARC alignment. It comes from the public suffix list shipped in the publicsuffixlist package,
  never downloaded.
"""

from __future__ import annotations

import functools

from publicsuffixlist import PublicSuffixList

from newsletter.config import Settings

# The big mailbox providers: each publishes a strict DMARC policy for its own domain, so mail
# "From" them sent through anyone else's server is quarantined or rejected.
FREE_MAIL = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "ymail.com",
        "rocketmail.com",
        "aol.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "gmx.com",
        "gmx.net",
        "gmx.de",
        "web.de",
        "mail.com",
        "proton.me",
        "protonmail.com",
        "zoho.com",
        "yandex.com",
        "yandex.ru",
        "mail.ru",
        "comcast.net",
        "verizon.net",
        "att.net",
    }
)
# Their country variants (yahoo.co.uk, hotmail.fr, outlook.de...): the brand under a country's suffix.
FREE_MAIL_BRANDS = frozenset({"yahoo", "hotmail", "outlook", "live", "gmx", "yandex"})


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().rstrip(".").lower()


def from_domain(settings: Settings) -> str:
    return domain_of(settings.from_address) if "@" in settings.from_address else ""


def envelope_domain(settings: Settings) -> str:
    """The Return-Path domain: ``bounce_address``'s, else the From domain."""
    if "@" in settings.bounce_address:
        return domain_of(settings.bounce_address)
    return from_domain(settings)


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list bundled with the package: no download, ever


def organisational_domain(domain: str) -> str:
    """The registrable domain (public suffix plus one label); the domain itself if it is a suffix."""
    domain = domain.rstrip(".").lower()
    return _suffixes().privatesuffix(domain) or domain


def aligned(a: str, b: str, *, strict: bool = False) -> bool:
    """DMARC identifier alignment (RFC 7489 3.1): the same domain, or under relaxed mode the same
    organisational domain."""
    if strict:
        return a.lower().rstrip(".") == b.lower().rstrip(".")
    return organisational_domain(a) == organisational_domain(b)


def is_free_mail(domain: str) -> bool:
    organisational = organisational_domain(domain)
    brand, _, suffix = organisational.partition(".")
    return organisational in FREE_MAIL or (brand in FREE_MAIL_BRANDS and len(suffix.rpartition(".")[2]) == 2)
