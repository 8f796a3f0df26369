"""Cleaning what people type: email addresses, names, tags, and outside text shown on one line."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from typing import NamedTuple

from newsletter.errors import InputError, InvalidAddress

NAME_MAX = 200
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class Address(NamedTuple):
    email: str  # as email-validator normalises it: domain lower-cased and in Unicode, local part as typed
    key: str  # folded to lower case: the identity of a subscriber, unique in the store


def normalise_address(raw: str) -> Address:
    """Validate and normalise an address, with no DNS look-ups (there may be no network at all)."""
    # Loaded on first use: commands that only read the store (``subscribers list``) start faster.
    from email_validator import EmailNotValidError, validate_email

    candidate = raw.strip()
    if not candidate:
        raise InvalidAddress("the email address is empty")
    try:
        # allow_smtputf8=False: a non-ASCII local part needs SMTPUTF8 all the way to the mailbox, which
        # this sender does not use; such an address could join but never receive a message.
        validated = validate_email(candidate, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{candidate!r} is not a valid email address: {exc}") from None
    return Address(validated.normalized, validated.normalized.lower())


def _is_unwanted(char: str) -> bool:
    # Cc covers CR, LF, NUL, U+0085 and the C0/C1 controls; Zl/Zp are U+2028/U+2029; Cf holds
    # invisible format characters such as bidi overrides, which can disguise a name.
    return unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def one_line(text: str) -> str:
    """Text on one line, every run of spaces, controls and line breaks made one space: for text from
    outside (a file's cell, a message that came back) in a one-line message or a stored report. A NUL
    is refused by PostgreSQL, and other controls have no place in a report to staff."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())


def clean_name(raw: str | None) -> str:
    """A display name safe for the store and for headers: no control or line-separator characters.

    Such characters are replaced by a space rather than refused, because a stray line break in a
    spreadsheet cell is common and harmless once removed. Whitespace runs collapse to one space.
    """
    if not raw:
        return ""
    text = raw if unicodedata.is_normalized("NFC", raw) else unicodedata.normalize("NFC", raw)
    # isprintable() is false for every character _is_unwanted() catches (and for some harmless
    # spaces), so the per-character pass runs only for the rare name that needs it.
    if not text.isprintable():
        text = "".join(" " if _is_unwanted(c) else c for c in text)
    text = " ".join(text.split())
    if len(text) > NAME_MAX:
        raise InputError(f"the name is longer than {NAME_MAX} characters")
    return text


def clean_tag(raw: str) -> str:
    """Tags are lower-case slugs, so 'Client Stories' and 'client-stories' are one tag."""
    tag = "-".join(raw.strip().lower().split())
    if not TAG_PATTERN.match(tag):
        raise InputError(
            f"invalid tag {raw!r}: use letters, digits, '-' and '_' (at most 64, starting with a letter or digit)"
        )
    return tag


def clean_tags(raw: tuple[str, ...] | list[str]) -> list[str]:
    return sorted({clean_tag(t) for t in raw})


def erasure_hash(secret_key: str, address_key: str) -> str:
    """A keyed hash of an erased address: proves "seen before" without storing the address."""
    return hmac.new(secret_key.encode(), address_key.encode(), hashlib.sha256).hexdigest()
