"""Values that go into mail headers: cleaned, checked, or refused.

Every value that reaches a header from data (names, subjects, addresses, URLs) goes through
:func:`clean_header_value` or is refused here, in our own code: header injection through CR/LF and
encoded-word look-alikes (CVE-2024-6923 class) is not left to the email package. Campaign messages
(:mod:`newsletter.delivery.mime`) and the web's own emails both use these.
"""

from __future__ import annotations

import base64
import re
import unicodedata

from newsletter.errors import NewsletterError

_ADDRESS_RE = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+)"
)
_PLAIN_PHRASE_RE = re.compile(r"[A-Za-z0-9'-]+(?: [A-Za-z0-9'-]+){0,7}")  # words needing no quotes
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})  # controls (CR, LF, NUL, U+0085...), surrogates, separators
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class HeaderError(NewsletterError):
    """A value that cannot go into a mail header safely."""


def clean_header_value(value: str) -> str:
    """``value`` made safe for a header: one line of printable text, no encoded-word look-alikes.

    Control characters (CR, LF, NUL, U+0085...), U+2028/U+2029, surrogates and bidi overrides become
    spaces; runs of whitespace become one space. ``=?`` becomes ``= ?``, because lenient parsers
    decode text such as ``=?UTF-8?Q?=0A?=`` into a line break even where RFC 2047 forbids it.
    """
    if value.isprintable() and "=?" not in value and "  " not in value and value == value.strip():
        return value  # the common case, checked in one pass of C code
    chars = (" " if unicodedata.category(c) in _UNSAFE_CATEGORIES or c in _BIDI_CONTROLS else c for c in value)
    return " ".join("".join(chars).split()).replace("=?", "= ?")


def check_address(address: str) -> tuple[str, str]:
    """An ASCII addr-spec as ``(address, domain)``; anything else is refused, never repaired."""
    match = _ADDRESS_RE.fullmatch(address)
    if match is None or len(address) > 254 or len(match["local"]) > 64 or "=?" in address:
        raise HeaderError(f"not a plain ASCII email address: {address!r}")
    return address, match["domain"]


def phrase(text: str) -> str:
    """A display name for an address header: a quoted string, or RFC 2047 words when not plain ASCII."""
    text = clean_header_value(text)
    if _PLAIN_PHRASE_RE.fullmatch(text):
        return text
    if text.isascii() and len(text) <= 64:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "\r\n ".join(_encoded_words(text))


def format_address(name: str, address: str) -> str:
    address, _ = check_address(address)
    display = clean_header_value(name)
    return f"{phrase(display)} <{address}>" if display else address


def _encoded_words(text: str) -> list[str]:
    """Base64 encoded words of at most 75 characters, each holding whole characters (RFC 2047 5, 6.3)."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        n = len(char.encode("utf-8"))
        if size + n > 45:  # 45 bytes -> 60 base64 characters + 12 of "=?utf-8?b?" and "?="
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += n
    words.append("".join(chunk))
    return [f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words if w]


def envelope_address(email: str) -> str:
    """The address as it goes on the wire: an internationalised domain in its ASCII (IDNA) form."""
    if email.isascii():
        return email
    local, _, domain = email.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as exc:
        raise NewsletterError(f"cannot write the domain of {email!r} in ASCII: {exc}") from None
