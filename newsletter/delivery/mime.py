"""Stage two of two: complete RFC 5322 messages per recipient from a campaign rendered once.

Building an ``EmailMessage`` per recipient costs 1-2.5 ms and the email package's quoted-printable
encoder is pure Python, so :class:`MessageFactory` does the expensive work once per campaign: it
encodes the constant segments of the HTML and text with ``binascii.b2a_qp`` and prepares the
constant headers. Per recipient it QP-encodes only the short personal values and joins the pieces
with QP soft line breaks (``=\\r\\n``), which decoders remove, so every line stays within 76 octets
without re-encoding the body.

A campaign's embedded images (:mod:`newsletter.campaigns.images`) are base64-encoded once too, into
a ``multipart/related`` around the HTML part: per recipient they cost a join, nothing more.

The factory also joins each message's SMTP wire form (dot-stuffed, ``CRLF.CRLF`` at the end) from
constant segments stuffed once per campaign: every piece but the soft break starts a line, so
stuffing the pieces one by one gives the same bytes as stuffing the whole message, without a scan
of the whole message per recipient.

Every value that reaches a header from data goes through :mod:`newsletter.delivery.headers`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email.policy
import html
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING

from newsletter.campaigns.images import InlineImage
from newsletter.campaigns.render import RenderedCampaign, Segmented, personal_values
from newsletter.delivery.headers import HeaderError, check_address, clean_header_value, format_address, phrase
from newsletter.delivery.transports.base import END_OF_DATA, stuffed

if TYPE_CHECKING:
    from newsletter.config import Settings

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"
LIST_LABEL = "newsletter"
_MESSAGE_ID_RE = re.compile(r"<?([!-;=?-~]{1,200}@[!-;=?-~]{1,200})>?")  # printable ASCII except < and >
# The default policy re-encodes only over-long raw values, leaving a short non-ASCII subject unencoded.
_SUBJECT_POLICY = email.policy.SMTP.clone(refold_source="all")


def _header(name: str, value: str) -> bytes:
    return f"{name}: {value}\r\n".encode("ascii")


def _qp(text: str) -> bytes:
    # b2a_qp keeps the line ending it sees first and uses it for soft breaks; a piece without a line
    # break would get bare LF soft breaks, so every ending is made CRLF afterwards.
    canonical = text.replace("\r\n", "\n").replace("\n", "\r\n")  # text parts travel with CRLF line ends
    encoded = binascii.b2a_qp(canonical.encode("utf-8"), istext=True)
    return encoded.replace(b"\r\n", b"\n").replace(b"\n", CRLF)


@dataclasses.dataclass(frozen=True)
class _EncodedBody:
    """One part's body: QP-encoded constant segments and, between them, the fields to fill in."""

    parts: tuple[bytes, ...]
    wire_parts: tuple[bytes, ...]  # the same, dot-stuffed: each starts a line
    fields: tuple[str, ...]
    escape: Callable[[str], str]

    @classmethod
    def encode(cls, segments: Segmented, escape: Callable[[str], str]) -> _EncodedBody:
        parts = tuple(_qp(p) for p in segments.parts)
        return cls(parts, tuple(stuffed(p) for p in parts), segments.fields, escape)

    def pieces(self, values: Mapping[str, str], data: list[bytes], wire: list[bytes]) -> None:
        """Append this body to the message (``data``) and to its wire form (``wire``)."""
        # Each piece starts on a fresh line after a soft break, so no line grows past b2a_qp's 76.
        data.append(self.parts[0])
        wire.append(self.wire_parts[0])
        for field, part, wire_part in zip(self.fields, self.parts[1:], self.wire_parts[1:], strict=True):
            value = _qp(self.escape(values[field]))
            data += (SOFT_BREAK, value, SOFT_BREAK, part)
            wire += (SOFT_BREAK, stuffed(value), SOFT_BREAK, wire_part)


def _image_part(image: InlineImage) -> str:
    """One embedded image as a MIME part: headers, and base64 in lines of 76 (no line starts with a dot)."""
    body = base64.encodebytes(image.data).decode("ascii").replace("\n", "\r\n").rstrip("\r\n")
    return (
        f'Content-Type: image/{image.subtype}; name="{image.filename}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        f"Content-ID: <{image.content_id}>\r\n"
        f'Content-Disposition: inline; filename="{image.filename}"\r\n\r\n{body}'
    )


class MessageFactory:
    """Complete messages for one rendered campaign; build one factory per campaign."""

    def __init__(self, rendered: RenderedCampaign, settings: Settings) -> None:
        if not settings.from_address:
            raise HeaderError("the from_address setting is empty; campaign emails need a From: address")
        from_address, self.domain = check_address(settings.from_address)
        self.boundary = f"=_nl_{secrets.token_hex(12)}"  # "=_" cannot occur in quoted-printable text
        self._mailto = f"mailto:{from_address}?subject=unsubscribe"

        subject = clean_header_value(rendered.subject)
        head = [
            _header("From", format_address(settings.organisation, from_address)),
            _SUBJECT_POLICY.fold_binary("Subject", subject),
            _header("MIME-Version", "1.0"),
        ]
        if settings.reply_to:
            head.append(_header("Reply-To", format_address("", settings.reply_to)))
        head.append(_header("List-Id", f"{phrase(settings.organisation)} <{LIST_LABEL}.{self.domain}>"))
        self._head = b"".join(head)
        self._tail_headers = b"".join(
            [
                _header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                _header("Content-Type", f'multipart/alternative;\r\n boundary="{self.boundary}"'),
                CRLF,
            ]
        )
        part_head = 'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        # Every constant piece below starts a line and none starts with a dot: the wire form can
        # use them as they are.
        self._text_open = f"--{self.boundary}\r\n{part_head.format('plain')}".encode("ascii")
        html_open = f"\r\n--{self.boundary}\r\n"
        close = f"\r\n--{self.boundary}--\r\n"
        if rendered.images:
            # The HTML and the images it shows travel together: multipart/related inside the
            # alternative (RFC 2387), each image encoded once here for every message.
            # Not the outer boundary plus a suffix: a parser may match a boundary as a line's prefix.
            related = f"=_nlr_{secrets.token_hex(12)}"
            html_open += (
                f'Content-Type: multipart/related;\r\n boundary="{related}"; type="text/html"\r\n\r\n--{related}\r\n'
            )
            close = "".join(f"\r\n--{related}\r\n{_image_part(image)}" for image in rendered.images) + (
                f"\r\n--{related}--{close}"
            )
        self._html_open = (html_open + part_head.format("html")).encode("ascii")
        self._close = close.encode("ascii")
        self._close_wire = stuffed(self._close)
        self._text = _EncodedBody.encode(rendered.text_segments, str)
        self._html = _EncodedBody.encode(rendered.html_segments, lambda v: html.escape(v, quote=True))
        self._date_cache = (0, "")

    def make_message_id(self) -> str:
        return f"<{int(time.time())}.{secrets.token_hex(10)}@{self.domain}>"

    def build(
        self,
        recipient_email: str,
        recipient_name: str | None,
        unsubscribe_url: str,
        preferences_url: str,
        message_id: str | None = None,
        date: datetime | None = None,
    ) -> bytes:
        """The message for one recipient, as CRLF-terminated bytes ready for SMTP."""
        return self.build_with_wire(
            recipient_email, recipient_name, unsubscribe_url, preferences_url, message_id, date
        )[0]

    def build_with_wire(
        self,
        recipient_email: str,
        recipient_name: str | None,
        unsubscribe_url: str,
        preferences_url: str,
        message_id: str | None = None,
        date: datetime | None = None,
    ) -> tuple[bytes, bytes]:
        """The message for one recipient, and its SMTP DATA payload (dot-stuffed, ending ``CRLF.CRLF``)."""
        name = clean_header_value(recipient_name or "")
        to = format_address(name, recipient_email)
        values = personal_values({"name": name, "unsubscribe_url": unsubscribe_url, "preferences_url": preferences_url})
        if message_id is None:
            message_id = self.make_message_id()
        else:
            match = _MESSAGE_ID_RE.fullmatch(message_id)
            if match is None:
                raise HeaderError(f"not a usable Message-ID: {message_id!r}")
            message_id = f"<{match[1]}>"
        if date is not None and date.utcoffset() is None:
            raise HeaderError("the Date of a message needs a time zone")
        personal = (
            f"To: {to}\r\nDate: {self._date(date)}\r\nMessage-ID: {message_id}\r\n"
            f"List-Unsubscribe: <{values['unsubscribe_url']}>,\r\n <{self._mailto}>\r\n"
        ).encode("ascii")
        data = [self._head, personal, self._tail_headers, self._text_open]
        wire = [self._head, stuffed(personal), self._tail_headers, self._text_open]
        self._text.pieces(values, data, wire)
        data.append(self._html_open)
        wire.append(self._html_open)
        self._html.pieces(values, data, wire)
        data.append(self._close)
        wire += (self._close_wire, END_OF_DATA)
        return b"".join(data), b"".join(wire)

    def _date(self, date: datetime | None) -> str:
        if date is not None:
            return format_datetime(date)
        now = int(time.time())
        if now != self._date_cache[0]:  # formatting a date costs more than the rest of the headers
            self._date_cache = (now, format_datetime(datetime.fromtimestamp(now, UTC)))
        return self._date_cache[1]
