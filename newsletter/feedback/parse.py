"""The structure of a message that came back, read with the standard library's ``email`` parser.

Nothing here decides what a message is (that is :mod:`newsletter.feedback.classify`); it finds the
parts a decision needs: the machine-readable report of a DSN (RFC 3464) or an ARF complaint
(RFC 5965), the headers of the original message that a report returns, the report's own text
(without the returned message or lines quoted with ``>``), and the addresses the message was
delivered to. The legacy ``compat32`` policy is used on purpose: it parses lazily and about three
times faster than the modern one, and every value read here is plain ASCII in practice.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import hashlib
import re
from dataclasses import dataclass

from newsletter.subscribers.addresses import one_line

Message = email.message.Message

# Where the copy of the original message starts inside a text bounce (Exim, qmail, Sendmail, Exchange).
_RETURNED_MARKERS = re.compile(
    r"^[ \t]*(?:-{2,}.*(?:copy of the message|original message|returned message|below this line|message follows"
    r"|message headers follow|undelivered message)|original message headers:|\*+ ?returned message)",
    re.IGNORECASE | re.MULTILINE,
)
_ENVELOPE_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to")
REPORT_TEXT_LIMIT = 20_000  # a bounce's own text is short; a longer one is cut for speed


def read_message(raw: bytes) -> Message:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if not raw.isascii():
        _plain_headers(message)
    return message


def _plain_headers(message: Message) -> None:
    """Make every header value a ``str``.

    compat32 gives a header holding 8-bit bytes as an ``email.header.Header``, which neither this
    module nor flufl.bounce's detectors expect (``.lower()`` on it raised): such a value becomes the
    text it decodes to, with U+FFFD for bytes that are not text.
    """
    for part in message.walk():
        items = part.items()
        if all(isinstance(value, str) for _, value in items):
            continue
        for name in {name for name, _ in items}:
            del part[name]
        for name, value in items:
            part[name] = value if isinstance(value, str) else str(value)


def message_key(message: Message, raw: bytes) -> str:
    """What makes a message the same message twice: its Message-ID, or a hash of its bytes without one."""
    message_id = (message.get("message-id") or "").strip()
    if message_id:
        return hashlib.sha256(b"mid:" + message_id.encode("utf-8", "surrogateescape")).hexdigest()
    return hashlib.sha256(b"raw:" + raw).hexdigest()


def header(message: Message, name: str) -> str:
    """A header as one line of text (folding and surrounding space removed), "" when absent."""
    value = message.get(name)
    if value is None:
        return ""
    return one_line(str(value))


# An addr-spec as it appears in the headers read here (envelope headers, DSN and ARF fields). A
# regular expression, not the email package's address parser: that parser is a third of the time it
# takes to read a bounce, and nothing here needs display names or comments.
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


ADDRESS_MAX = 320  # longer is no address anyone has (RFC 5321 allows 256), and the store's columns end there


def is_address(text: str) -> bool:
    """Whether ``text`` is an addr-spec and nothing else."""
    return len(text) <= ADDRESS_MAX and _ADDRESS.fullmatch(text) is not None


def address_of(value: str) -> str:
    """The address in a header value such as ``Name <a@example.org>`` or ``rfc822; a@example.org``."""
    match = _ADDRESS.search(value.rpartition(";")[2] if ";" in value else value)
    return match[0] if match and len(match[0]) <= ADDRESS_MAX else ""


def addresses(message: Message, name: str) -> list[str]:
    found: list[str] = []
    for value in message.get_all(name, ()):
        for address in _ADDRESS.findall(str(value)):
            if address not in found and len(address) <= ADDRESS_MAX:
                found.append(address)
    return found


def envelope_addresses(message: Message) -> list[str]:
    """Where the message was delivered: the headers a delivery agent or an MTA writes, in that order."""
    found: list[str] = []
    for name in _ENVELOPE_HEADERS:
        for address in addresses(message, name):
            if address not in found:
                found.append(address)
    return found


Parts = list[tuple[str, Message]]
_RETURNED_TYPES = ("message/rfc822", "text/rfc822-headers")


def parts(message: Message) -> Parts:
    """Every part with its content type, in order, but not into a returned message: what is inside
    it belongs to the original."""
    found: Parts = []
    pending = [message]
    while pending:
        part = pending.pop()
        content_type = part.get_content_type()
        found.append((content_type, part))
        if content_type not in _RETURNED_TYPES and part.is_multipart():
            children = part.get_payload()
            pending.extend(reversed([child for child in children if isinstance(child, Message)]))
    return found


def find_part(structure: Parts, content_type: str) -> Message | None:
    return next((part for found, part in structure if found == content_type), None)


def field_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    # Some generators send the report as text (with a transfer encoding, or as a single block).
    text = _bytes(part)
    blocks = re.split(rb"\r?\n[ \t]*\r?\n", text.strip())
    return [email.message_from_bytes(block.strip() + b"\n", policy=email.policy.compat32) for block in blocks if block]


def returned_headers(structure: Parts) -> Message | None:
    """The original message's headers as a report returns them (message/rfc822 or text/rfc822-headers)."""
    for content_type, part in structure:
        if content_type == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif content_type == "text/rfc822-headers":
            return email.message_from_bytes(_bytes(part).lstrip(), policy=email.policy.compat32)
    return None


def _bytes(part: Message) -> bytes:
    """A leaf part's payload, transfer-decoded; b"" for a multipart."""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _text_of(part: Message) -> str:
    data = _bytes(part)
    charset = part.get_content_charset() or "us-ascii"
    try:
        return data.decode(charset, "replace")
    except (LookupError, ValueError):  # an unknown charset, or a name Python cannot look up ("\0...")
        return data.decode("latin-1")


@dataclass(frozen=True)
class ReportText:
    """A message's own words: its plain-text parts up to the returned message, without quoted lines."""

    text: str
    returned: str  # the copy of the original message that a text bounce appends after a marker


def report_text(structure: Parts) -> ReportText:
    chunks: list[str] = []
    returned = ""
    for content_type, part in structure:
        if content_type in _RETURNED_TYPES:
            break
        if content_type != "text/plain" or part.get_content_disposition() == "attachment":
            continue
        text = _text_of(part)[:REPORT_TEXT_LIMIT]
        marker = _RETURNED_MARKERS.search(text)
        if marker is not None:
            text, returned = text[: marker.start()], text[marker.start() :]
        chunks.append(text)
        if marker is not None:
            break
    own = "\n".join(line for chunk in chunks for line in chunk.splitlines() if not line.lstrip().startswith(">"))
    return ReportText(own, returned)


def headers_in(text: str) -> Message | None:
    """The header block at the start of a returned copy in a text bounce, parsed."""
    body = text.partition("\n")[2].lstrip("\r\n")  # after the marker's line
    head = re.split(r"\r?\n[ \t]*\r?\n", body, maxsplit=1)[0]
    if not re.match(r"^[A-Za-z-]+:", head):
        return None
    return email.message_from_string(head + "\n", policy=email.policy.compat32)
