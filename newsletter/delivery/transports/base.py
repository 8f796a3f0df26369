"""The one small interface every mail transport implements, its messages and its errors.

What the caller does with each outcome of :meth:`Transport.send`:

- returns a :class:`SendResult`: the message was accepted; record it as sent.
- :class:`TemporaryFailure` (a 4xx reply, or no connection at all): not delivered; retry later.
- :class:`ConnectionLost`, a TemporaryFailure: the connection dropped before the outcome was
  confirmed; retry later and report the message as *possibly duplicated*.
- :class:`PermanentFailure` (a 5xx reply): refused for good; record it as failed.
- :class:`TransportConfigError`: the settings cannot work (bad URL, wrong password, untrusted
  certificate); stop the run, whichever message was being sent.
"""

from __future__ import annotations

import abc
import dataclasses
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from newsletter.errors import NewsletterError

_ADDRESS_FORBIDDEN = frozenset("<>\r\n\t ")
END_OF_DATA = b".\r\n"  # the final dot: wire_form and the message factory end every DATA payload with it


def stuffed(piece: bytes) -> bytes:
    """A piece of a message that starts a line, dot-stuffed for SMTP DATA (RFC 5321 4.5.2)."""
    if piece.startswith(b"."):
        piece = b"." + piece
    return piece.replace(b"\r\n.", b"\r\n..")


@dataclasses.dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One serialised message for exactly one envelope recipient.

    ``data`` is the complete RFC 5322 message with CRLF line ends, built by the rendering layer;
    transports pass it on untouched. This product never sends one message to several people, so
    there is no recipient list to get wrong.

    ``wire``, when the builder sets it, is ``data`` as an SMTP DATA payload: dot-stuffed and ending
    in ``CRLF.CRLF``. The campaign's message factory prepares it from constant parts stuffed once per
    campaign, which spares an SMTP transport a scan of every message; it must describe the same
    message as ``data``. Transports that do not speak SMTP ignore it.
    """

    sender: str
    recipient: str
    data: bytes = dataclasses.field(repr=False)
    message_id: str
    wire: bytes | None = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("sender", "recipient"):
            value = getattr(self, name)
            # A list here would be a second recipient; CR/LF or <> would let an address inject
            # SMTP commands. The empty sender is the legal null reverse-path.
            if not isinstance(value, str) or not _ADDRESS_FORBIDDEN.isdisjoint(value):
                raise ValueError(f"OutgoingMessage.{name} must be one bare address, got {value!r}")
        if not self.recipient:
            raise ValueError("OutgoingMessage.recipient must not be empty")
        if not isinstance(self.data, bytes):
            raise TypeError("OutgoingMessage.data must be bytes (the serialised message)")
        if self.wire is not None and not (isinstance(self.wire, bytes) and self.wire.endswith(b"\r\n.\r\n")):
            raise TypeError("OutgoingMessage.wire must be bytes ending in CRLF.CRLF (a DATA payload), or None")


@dataclasses.dataclass(frozen=True, slots=True)
class SendResult:
    """What the transport reports for an accepted message (``code`` is None without a server)."""

    message_id: str
    code: int | None
    text: str


@dataclasses.dataclass(frozen=True)
class TransportContext:
    """What a transport URL cannot carry: where relative paths start, and the SMTP password."""

    base_dir: Path
    password: str | None = dataclasses.field(default=None, repr=False)


class TransportConfigError(NewsletterError):
    """A transport URL or transport setting that cannot work; retrying will not help."""


class TransportError(NewsletterError):
    """A message was not (or not provably) delivered. ``code`` is the SMTP reply code, if any."""

    def __init__(self, code: int | None, text: str) -> None:
        super().__init__(code, text)  # both in args, so the exception pickles
        self.code = code
        self.text = text

    def __str__(self) -> str:
        return f"{self.code} {self.text}" if self.code is not None else self.text


class TemporaryFailure(TransportError):
    """Not delivered, worth retrying later (a 4xx reply, or the server could not be reached)."""


class PermanentFailure(TransportError):
    """Refused for good (a 5xx reply); retrying the same message will fail again."""


class ConnectionLost(TemporaryFailure):
    """The connection dropped before this message's outcome was confirmed.

    It may or may not have been delivered: retry it, and report it as possibly duplicated.
    """


class Transport(abc.ABC):
    """Sends :class:`OutgoingMessage` objects somewhere: an SMTP server, a folder, the console.

    Use it as a context manager; ``open`` and ``close`` are idempotent and a closed transport can
    be opened again. An instance is not thread-safe: to send over N connections, open N
    instances, one per thread. A transport is normally built from a URL by
    :func:`newsletter.delivery.transports.open_transport`, which finds the class for the URL's scheme in
    the ``newsletter.transports`` entry-point group, where a third-party package adds its own::

        class PigeonTransport(Transport):
            def __init__(self, loft: str) -> None:
                self.loft = loft

            @classmethod
            def from_url(cls, url, context):
                refuse_password(url)
                query_options(url, allowed=())
                return cls(url.path)

            def describe(self) -> str:
                return f"pigeon:{self.loft}"

            def _send(self, message):
                ...  # hand message.data to the pigeon
                return SendResult(message.message_id, None, "in flight")

        # pyproject.toml:  [project.entry-points."newsletter.transports"]
        #                  pigeon = "pigeon_post:PigeonTransport"

        with open_transport("pigeon:north", context) as transport:
            transport.send(OutgoingMessage("news@clinic.example", "ana@example.org", data, mid))

    Subclasses implement ``_send`` and ``describe``, and ``_open``/``_close`` if they hold a
    resource. ``describe()`` must be a URL that ``from_url`` accepts back, and must never contain
    a secret: it is what ``repr`` and log lines show.
    """

    _is_open: bool = False

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: urllib.parse.SplitResult, context: TransportContext) -> Self:
        """Build an (unopened) transport from its URL; raise TransportConfigError if unusable."""

    @abc.abstractmethod
    def describe(self) -> str:
        """A URL for this transport that is safe to print (no password)."""

    @abc.abstractmethod
    def _send(self, message: OutgoingMessage) -> SendResult: ...

    def _open(self) -> None:
        """Acquire the resource (connect, create the folder); called once per open()."""

    def _close(self) -> None:
        """Release the resource; called once per close() of an open transport."""

    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> None:
        if not self._is_open:
            self._open()
            self._is_open = True

    def close(self) -> None:
        if self._is_open:
            self._is_open = False
            self._close()

    def connection(self) -> AsyncConnection | None:
        """An asyncio connection for the delivery engine's fast path, or None (the default).

        A transport that returns one is driven from the engine's event loop, many connections in
        one thread; any other transport is driven through :meth:`send`, one thread per connection.
        """
        return None

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message; raise TransportError (or TransportConfigError) if it was not accepted."""
        if not self._is_open:
            # A programming error, not a user's: hence not a NewsletterError.
            raise RuntimeError(f"{self!r} is not open; use it in a with block or call open() first")
        return self._send(message)

    def forget(self, message_ids: Iterable[str]) -> int:
        """Remove the copies this transport keeps of these messages, for an erasure (GDPR Art. 17).

        Returns how many it removed. Most transports keep none: a message handed to a server is
        the server's. Needs no open transport.
        """
        return 0

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class AsyncConnection(abc.ABC):
    """One connection driven by the delivery engine's event loop (the SMTP transport has one).

    A message goes out in two steps, so that the engine can record that it is about to be
    delivered exactly before the point of no return:

    - :meth:`begin` does everything that cannot deliver the message yet (for SMTP: MAIL, RCPT,
      DATA and the body without its final dot). A refusal raises TemporaryFailure or
      PermanentFailure, and the message was certainly not delivered.
    - :meth:`finish` completes it (the final dot) and returns the server's verdict, with the same
      errors as :meth:`Transport.send`; ConnectionLost means the outcome is unknown.

    ``finish(following)`` may start the transaction of ``following``, the message to send next,
    right behind this one's end (SMTP PIPELINING); the next :meth:`begin` is then called with it.
    """

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect; raise TemporaryFailure when the server cannot be reached, TransportConfigError
        when the settings cannot work."""

    @abc.abstractmethod
    async def begin(self, message: OutgoingMessage) -> None: ...

    @abc.abstractmethod
    async def finish(self, following: OutgoingMessage | None = None) -> SendResult: ...

    @abc.abstractmethod
    async def abandon(self) -> None:
        """Give up the message begun, without delivering it (for SMTP: drop the connection, the only
        way to end an open DATA undelivered; the next :meth:`begin` reconnects)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Say goodbye and release the connection; never raises for a connection already gone."""


def safe_url(url: urllib.parse.SplitResult) -> str:
    """The URL for an error message: password masked, query left out (it may hold a mistyped secret)."""
    url = url._replace(query="", fragment="")
    if url.password is None:
        return url.geturl()
    host = url.netloc.rpartition("@")[2]
    return url._replace(netloc=f"{url.username or ''}:***@{host}").geturl()


def refuse_password(url: urllib.parse.SplitResult) -> None:
    if url.password is not None:
        raise TransportConfigError(
            f"{safe_url(url)}: a password in the transport URL is not allowed; "
            "remove it and set NEWSLETTER_SMTP_PASSWORD in the environment instead"
        )


def query_options(url: urllib.parse.SplitResult, allowed: tuple[str, ...] | frozenset[str]) -> dict[str, str]:
    """The URL's query as a dict, refusing unknown or repeated options."""
    try:
        pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True, strict_parsing=bool(url.query))
    except ValueError:
        raise TransportConfigError(f"{safe_url(url)}: malformed query string") from None
    options: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise TransportConfigError(f"{safe_url(url)}: unknown option {name!r} (known options: {known})")
        if name in options:
            raise TransportConfigError(f"{safe_url(url)}: option {name!r} given twice")
        options[name] = value
    return options
