"""What a refusal says about the address: hard, soft or blocked. One rule for every way it arrives.

The same rule serves a reply during the SMTP session (:mod:`newsletter.delivery.engine`) and a
bounce that comes back later (:mod:`newsletter.feedback`):

- **hard**: the address or its domain does not exist or no longer accepts mail. The subscriber is
  marked bounced at once.
- **soft**: anything temporary (every 4.x.x, whatever a DSN's ``Action`` says), a full mailbox
  (5.2.2), or a permanent failure that says nothing more. Recorded; several within a subscriber's
  latest sends mark them bounced.
- **blocked**: refused for policy, spam or authentication (5.7.x, "blocked", "spam", "DMARC"). That
  is about the sender or the content, not the address: recorded and reported, never suppressing.

What decides, in order: the enhanced status code (RFC 3463), from a DSN's ``Status`` field or from
the reply text (``550 5.1.1 ...``; qmail and Exchange write ``#5.1.1``); for a code that says nothing
specific (X.0.0), or none at all, the words of the reply; then the basic reply code. The words are
read only from the diagnostic the caller passes, never from quoted text.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Severity(enum.StrEnum):
    HARD = "hard"
    SOFT = "soft"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class Outcome:
    severity: Severity
    status: str | None  # the enhanced status code seen, e.g. "5.1.1"
    reason: str  # why, in a few words, for the event log and `bounces show`


# X.Y.Z with X in 2, 4, 5; not part of a longer dotted number such as an IP address or a version.
ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
_REPLY_CODE = re.compile(r"^\s*(?:smtp\s*;\s*)?([245]\d\d)(?=[\s-]|$)", re.IGNORECASE)

# Permanent codes by subject.detail (RFC 3463, RFC 7505), each with what it means.
_PERMANENT: dict[str, tuple[Severity, str]] = {
    "1.0": (Severity.HARD, "address rejected"),
    "1.1": (Severity.HARD, "mailbox does not exist"),
    "1.2": (Severity.HARD, "domain does not exist"),
    "1.3": (Severity.HARD, "address is not valid"),
    "1.4": (Severity.HARD, "address is ambiguous"),
    "1.6": (Severity.HARD, "mailbox has moved"),
    "1.7": (Severity.BLOCKED, "our sender address was refused"),
    "1.8": (Severity.BLOCKED, "our sender domain was refused"),
    "1.10": (Severity.HARD, "recipient not found (or its domain takes no mail)"),
    "2.1": (Severity.HARD, "mailbox disabled"),
    "2.2": (Severity.SOFT, "mailbox full"),
    "2.3": (Severity.BLOCKED, "message too large for the mailbox"),
    "3.4": (Severity.BLOCKED, "message too large for the system"),
    "4.4": (Severity.HARD, "no mail host for the domain"),
}
_BY_SUBJECT: dict[str, tuple[Severity, str]] = {
    "6": (Severity.BLOCKED, "content refused"),
    "7": (Severity.BLOCKED, "refused by policy, spam filter or authentication"),
}

# The words, for replies without a specific code. Checked in this order: a refusal of the sender or
# for policy reasons is about us even when it also says "rejected"; a full mailbox is soft even when
# the server words it as an address problem.
_BLOCKED_WORDS = re.compile(
    r"sender address rejected|sender verify failed|\bblock(?:ed|list(?:ed)?)\b|black ?list|deny ?list"
    r"|\bspam|dmarc|\bspf\b|\bdkim\b|reputation|\bpolicy\b|\brbl\b|spamhaus|not authori[sz]ed",
    re.IGNORECASE,
)
_SOFT_WORDS = re.compile(
    r"mailbox (?:is )?full|over ?quota|quota exceeded|exceeded (?:the )?storage|insufficient (?:system )?storage"
    r"|try again later|temporar(?:il)?y",
    re.IGNORECASE,
)
_HARD_WORDS = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address|domain)|mailbox not found"
    r"|mailbox unavailable|mailbox does not exist|address rejected|recipient rejected|invalid recipient"
    r"|unknown recipient|recipient unknown|recipient not found|address not found|does ?n[o']t exist|no mailbox"
    r"|account (?:is |has been )?disabled|unrouteable address|host not found|host or domain name not found"
    r"|domain not found|couldn't find any host|name or service not known|non-existent host",
    re.IGNORECASE,
)
_ADDRESS_CODES = {550: "mailbox unavailable", 551: "user not local", 553: "mailbox name not allowed"}


def enhanced_status(text: str) -> str | None:
    """The first enhanced status code in ``text`` ("5.1.1"), or None."""
    match = ENHANCED_STATUS.search(text)
    return f"{match[1]}.{int(match[2])}.{int(match[3])}" if match else None


def reply_code(text: str) -> int | None:
    """The basic SMTP reply code a diagnostic starts with ("smtp; 550 ..." -> 550), or None."""
    match = _REPLY_CODE.match(text)
    return int(match[1]) if match else None


def _generic(status: str) -> bool:
    return status.endswith(".0.0")


def _by_words(diagnostic: str) -> Outcome | None:
    for severity, words in (
        (Severity.BLOCKED, _BLOCKED_WORDS),
        (Severity.SOFT, _SOFT_WORDS),
        (Severity.HARD, _HARD_WORDS),
    ):
        match = words.search(diagnostic)
        if match:
            return Outcome(severity, None, f"the reply says {match[0].lower()!r}")
    return None


def classify(*, status: str | None = None, diagnostic: str = "", code: int | None = None) -> Outcome:
    """Hard, soft or blocked, for a failure with this enhanced ``status`` (a DSN's Status field),
    ``diagnostic`` (the server's reply text) and basic reply ``code``; each may be missing."""
    found = enhanced_status(status or "")
    if found is None or found.startswith("2") or _generic(found):
        # A generic Status field often comes with a specific code in the diagnostic.
        specific = enhanced_status(diagnostic)
        if specific is not None and not specific.startswith("2") and (found is None or specific[0] == found[0]):
            found = specific
    if found is not None and found.startswith("2"):
        found = None  # a success code says nothing about a failure
    if code is None:
        code = reply_code(diagnostic)

    if found is not None:
        klass, subject, detail = found.split(".")
        if klass == "4":
            return Outcome(Severity.SOFT, found, f"status {found}: a temporary failure")
        known = _PERMANENT.get(f"{subject}.{detail}") or _BY_SUBJECT.get(subject)
        if known is not None:
            return Outcome(known[0], found, f"status {found}: {known[1]}")
        if not _generic(found):
            return Outcome(Severity.SOFT, found, f"status {found}: a permanent failure that does not name the address")
    words = _by_words(diagnostic)
    if words is not None:
        return Outcome(words.severity, found, words.reason if found is None else f"status {found}; {words.reason}")
    if found is not None:
        return Outcome(Severity.SOFT, found, f"status {found}: a failure of no stated kind")
    if code is not None:
        if 400 <= code < 500:
            return Outcome(Severity.SOFT, None, f"reply code {code}: a temporary failure")
        if code in _ADDRESS_CODES:
            return Outcome(Severity.HARD, None, f"reply code {code}: {_ADDRESS_CODES[code]}")
        return Outcome(Severity.SOFT, None, f"reply code {code}: a failure of no stated kind")
    return Outcome(Severity.SOFT, None, "no status code or known wording")
