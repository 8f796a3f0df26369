"""What the SMTP transport's two clients share: smtplib for single sends, asyncio for the engine.

The envelope and its expected replies, how a reply maps to our errors, and the DATA payload's wire form.
"""

from __future__ import annotations

import functools
import re
import socket
import ssl

from newsletter.delivery.transports.base import (
    END_OF_DATA,
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
    TransportConfigError,
    TransportError,
    stuffed,
)

# The replies that let MAIL, RCPT and DATA go on, in that order.
EXPECTED_REPLIES: tuple[tuple[int, ...], ...] = ((250,), (250, 251), (354,))
_BARE_EOL = re.compile(rb"\r(?!\n)|(?<!\r)\n")


@functools.cache
def local_hostname() -> str:
    """The name this host gives in EHLO when the URL names none (as smtplib does)."""
    return socket.getfqdn()


def wire_form(data: bytes) -> bytes:
    """The DATA payload: CRLF line ends, dot-stuffed, terminated. Fast path for well-formed input."""
    crlf = data.count(b"\r\n")
    if data.count(b"\r") != crlf or data.count(b"\n") != crlf:
        data = _BARE_EOL.sub(b"\r\n", data)  # bare CR or LF is an SMTP smuggling vector
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return stuffed(data) + END_OF_DATA


class NotSent(Exception):
    """The connection was unusable before any of the message was sent: safe to resend."""


def envelope(message: OutgoingMessage, *, eightbit: bool, smtputf8: bool, where: str) -> list[str]:
    """MAIL, RCPT and DATA for ``message``, given whether the server offers 8BITMIME and SMTPUTF8."""
    options = ""
    if eightbit and not message.data.isascii():
        options += " BODY=8BITMIME"
    if not (message.sender.isascii() and message.recipient.isascii()):
        if not smtputf8:
            raise PermanentFailure(None, f"{where} does not support SMTPUTF8, needed for a non-ASCII address")
        options += " SMTPUTF8"
    return [f"MAIL FROM:<{message.sender}>{options}", f"RCPT TO:<{message.recipient}>", "DATA"]


def failure(code: int, text: str) -> TransportError:
    return PermanentFailure(code, text) if 500 <= code <= 599 else TemporaryFailure(code, text)


def reply_text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def untrusted(where: str, exc: ssl.SSLCertVerificationError) -> TransportConfigError:
    return TransportConfigError(
        f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); "
        "set cafile=PATH to trust its CA, or verify=false"
    )
