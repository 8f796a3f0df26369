"""Shows each message in a readable form (envelope, headers, text part) on a stream.

URL: ``console:``. Writes to stdout unless a stream is passed in; it is the one transport that
decodes a message, and only for display.
"""

from __future__ import annotations

import sys
import urllib.parse
from email import policy
from email.parser import BytesParser
from typing import Self, TextIO

from newsletter.delivery.transports.base import (
    OutgoingMessage,
    SendResult,
    TemporaryFailure,
    Transport,
    TransportConfigError,
    TransportContext,
    query_options,
    refuse_password,
    safe_url,
)

SEPARATOR = "----- message {message_id} -----"
# MIME plumbing says nothing to a person reading the console.
_HIDDEN = frozenset({"mime-version", "content-type", "content-transfer-encoding"})


def readable(message: OutgoingMessage) -> str:
    """The console form of one message."""
    parsed = BytesParser(policy=policy.default).parsebytes(message.data)
    lines = [
        SEPARATOR.format(message_id=message.message_id),
        f"Envelope: {message.sender} -> {message.recipient}",
    ]
    try:
        lines += [f"{name}: {value}" for name, value in parsed.items() if name.lower() not in _HIDDEN]
        part = parsed.get_body(preferencelist=("plain",))
        if part is None:
            body = f"(no text part; {len(message.data)} bytes)"
        else:
            body = part.get_content().replace("\r\n", "\n")
    except Exception as exc:  # noqa: BLE001 - display only: an undecodable message is shown, not lost
        body = f"(cannot display this message: {exc})"
    lines += ["", body.rstrip("\n"), "", ""]
    return "\n".join(lines)


class ConsoleTransport(Transport):
    """Prints messages; ``stream`` defaults to whatever ``sys.stdout`` is at the time of sending."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult, context: TransportContext) -> Self:
        refuse_password(url)
        query_options(url, allowed=())
        if url.netloc or url.path or url.fragment:
            raise TransportConfigError(f"{safe_url(url)}: the console transport takes no path; use console:")
        return cls()

    def describe(self) -> str:
        return "console:"

    def _send(self, message: OutgoingMessage) -> SendResult:
        stream = self.stream or sys.stdout
        text = readable(message)
        encoding = getattr(stream, "encoding", None)
        if encoding:  # a console that cannot show a character gets "?", not a crash
            text = text.encode(encoding, "replace").decode(encoding)
        try:
            stream.write(text)  # one write, so messages from several threads do not interleave
            stream.flush()
        except (OSError, ValueError) as exc:
            raise TemporaryFailure(None, f"cannot write to the console: {exc}") from exc
        return SendResult(message.message_id, None, "shown on the console")
