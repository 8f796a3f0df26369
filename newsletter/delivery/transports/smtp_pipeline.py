"""The SMTP transport's fast path: one connection driven by the delivery engine's asyncio event loop.

The engine drives every connection of a run from one thread, so N connections cost no more
threads, no GIL hand-offs and no per-message wake-ups of other threads. Per message:

- :meth:`SMTPConnection.begin` writes MAIL, RCPT and DATA (in one write with PIPELINING, RFC 2920),
  reads their replies, up to ``354``, and writes the body without its final dot. Nothing can be
  delivered yet; the server reads the body while the engine commits.
- The engine then commits that the message is in flight (together with other connections'
  outcomes: a group commit), and calls :meth:`SMTPConnection.finish`, which writes the final dot,
  with PIPELINING followed by the next message's MAIL, RCPT and DATA, in one write, and reads the
  verdict. A message given up after :meth:`begin` ends with the connection, never with a dot.

The body goes out as the message factory prepared it (``OutgoingMessage.wire``: dot-stuffed once
per campaign), or is stuffed here. Errors mean what they mean for :class:`SMTPTransport`: a refusal
before the final dot is a TemporaryFailure or PermanentFailure (not delivered), a connection lost
after it is ConnectionLost (outcome unknown). A connection found dead when a new message starts
(the server's idle timeout) is reopened once, as nothing was sent on it.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import socket
import ssl
from typing import Protocol

from newsletter.delivery.transports.base import (
    END_OF_DATA,
    AsyncConnection,
    ConnectionLost,
    OutgoingMessage,
    SendResult,
    TemporaryFailure,
    TransportConfigError,
    TransportError,
)
from newsletter.delivery.transports.smtp_common import (
    EXPECTED_REPLIES,
    NotSent,
    envelope,
    failure,
    local_hostname,
    reply_text,
    untrusted,
    wire_form,
)


class ConnectionSettings(Protocol):
    """What a connection needs to know (:class:`~newsletter.delivery.transports.smtp.SMTPTransport` has it)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def tls(self) -> str: ...
    @property
    def timeout(self) -> float: ...
    @property
    def username(self) -> str | None: ...
    @property
    def local_hostname(self) -> str | None: ...
    @property
    def _password(self) -> str | None: ...
    @property
    def _ssl_context(self) -> ssl.SSLContext | None: ...

    def describe(self) -> str: ...


Reply = tuple[int, bytes]
_MAX_LINE = 65536


class _Lost(Exception):
    """The connection closed, timed out or spoke nonsense: its pending replies will never come."""


class _ReplyReader(asyncio.Protocol):
    """Parses SMTP replies as they arrive and hands them out in order, ``count`` at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._tail = b""
        self._continued: list[bytes] = []
        self._replies: collections.deque[Reply] = collections.deque()
        self._waiting: collections.deque[tuple[int, asyncio.Future[list[Reply]]]] = collections.deque()
        self._lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # a stream transport
        self._lost = None

    def data_received(self, data: bytes) -> None:
        lines = (self._tail + data).split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > _MAX_LINE:
            self._fail(_Lost("the server sent an over-long line"))
            return
        for line in lines:
            line = line.rstrip(b"\r")
            if line[3:4] == b"-":  # a multi-line reply goes on
                self._continued.append(line[4:])
                continue
            try:
                code = int(line[:3])
            except ValueError:
                self._fail(_Lost(f"the server sent a line that is not an SMTP reply: {line[:80]!r}"))
                return
            text = b"\n".join([*self._continued, line[4:]]) if self._continued else line[4:]
            self._continued = []
            self._replies.append((code, text))
        self._hand_out()

    def _hand_out(self) -> None:
        while self._waiting and len(self._replies) >= self._waiting[0][0]:
            count, future = self._waiting.popleft()
            replies = [self._replies.popleft() for _ in range(count)]
            if not future.done():
                future.set_result(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(_Lost(str(exc) if exc else "the server closed the connection"))
        self.transport = None

    def _fail(self, exc: BaseException) -> None:
        self._lost = exc
        while self._waiting:
            _, future = self._waiting.popleft()
            if not future.done():
                future.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def expect(self, count: int) -> asyncio.Future[list[Reply]]:
        """The next ``count`` replies, once they have all arrived."""
        future: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        if self._lost is not None:
            future.set_exception(self._lost)
        else:
            self._waiting.append((count, future))
            self._hand_out()
        return future

    def timed_out(self, seconds: float) -> None:
        self._fail(_Lost(f"timed out after {seconds:g} s"))


class SMTPConnection(AsyncConnection):
    """One SMTP connection of :class:`SMTPTransport`'s settings, for the engine's event loop."""

    def __init__(self, transport: ConnectionSettings) -> None:
        self.settings = transport
        self.where = transport.describe()
        self._reader: _ReplyReader | None = None
        self._extensions: dict[str, str] = {}
        self._current: OutgoingMessage | None = None
        self._prefetched: OutgoingMessage | None = None  # its MAIL, RCPT and DATA went out behind the last dot

    # --- connecting ---------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._reader is None:
            await self._connect()

    async def _connect(self) -> None:
        settings, loop = self.settings, asyncio.get_running_loop()
        context = settings._ssl_context if settings.tls == "implicit" else None
        try:
            async with asyncio.timeout(settings.timeout):
                _, reader = await loop.create_connection(
                    _ReplyReader,
                    settings.host,
                    settings.port,
                    ssl=context,
                    server_hostname=settings.host if context else None,
                )
        except ssl.SSLCertVerificationError as exc:
            raise untrusted(self.where, exc) from exc
        except (OSError, TimeoutError) as exc:
            raise TemporaryFailure(None, f"cannot connect to {self.where}: {_why(exc)}") from exc
        self._reader = reader
        self._prefetched = None
        try:
            await self._handshake()
        except BaseException:
            self._discard()
            raise

    async def _handshake(self) -> None:
        settings = self.settings
        try:
            code, text = (await self._replies(1))[0]
            if code != 220:
                raise TemporaryFailure(code, f"cannot connect to {self.where}: {code} {reply_text(text)}")
            await self._ehlo()
            if settings.tls == "starttls":
                if "starttls" not in self._extensions:
                    raise TransportConfigError(
                        f"{self.where}: the server does not offer STARTTLS (use tls=none only on a trusted network)"
                    )
                await self._start_tls()
                await self._ehlo()
            if settings.username:
                await self._login()
        except ssl.SSLCertVerificationError as exc:
            raise untrusted(self.where, exc) from exc
        except (_Lost, OSError) as exc:
            raise TemporaryFailure(None, f"cannot connect to {self.where}: {_why(exc)}") from exc

    async def _ehlo(self) -> None:
        name = self.settings.local_hostname or local_hostname()
        code, text = await self._command(f"EHLO {name}")
        if code != 250:
            code, text = await self._command(f"HELO {name}")
            if code != 250:
                raise TemporaryFailure(code, f"cannot connect to {self.where}: HELO refused: {reply_text(text)}")
            self._extensions = {}
            return
        extensions = {}
        for line in reply_text(text).split("\n")[1:]:
            keyword, _, parameters = line.strip().partition(" ")
            extensions[keyword.lower()] = parameters
        self._extensions = extensions

    async def _start_tls(self) -> None:
        code, text = await self._command("STARTTLS")
        if code != 220:
            raise TemporaryFailure(code, f"cannot connect to {self.where}: STARTTLS refused: {reply_text(text)}")
        reader, context = self._reader, self.settings._ssl_context
        assert reader is not None and reader.transport is not None and context is not None
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.settings.timeout):
            secured = await loop.start_tls(reader.transport, reader, context, server_hostname=self.settings.host)
        assert isinstance(secured, asyncio.Transport)
        reader.transport = secured

    async def _login(self) -> None:
        settings = self.settings
        user, password = settings.username or "", settings._password or ""
        mechanisms = self._extensions.get("auth", "").upper().split()
        if "auth" not in self._extensions:
            raise TransportConfigError(f"{self.where}: the server does not offer AUTH")
        if "PLAIN" in mechanisms:
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
            code, text = await self._command(f"AUTH PLAIN {token}")
        elif "LOGIN" in mechanisms:
            code, text = await self._command(f"AUTH LOGIN {base64.b64encode(user.encode()).decode('ascii')}")
            if code == 334:
                code, text = await self._command(base64.b64encode(password.encode()).decode("ascii"))
        else:
            raise TransportConfigError(f"{self.where}: cannot log in (no AUTH mechanism we know is offered)")
        if code == 235:
            return
        if code < 500:
            raise TemporaryFailure(code, f"login refused: {reply_text(text)}")
        raise TransportConfigError(
            f"{self.where} refused the login of {user!r} ({code} {reply_text(text)}); "
            "check the user name and NEWSLETTER_SMTP_PASSWORD"
        )

    # --- the dialogue -----------------------------------------------------------------------------------

    def _write(self, data: bytes | memoryview) -> None:
        reader = self._reader
        if reader is None or reader.transport is None or reader.transport.is_closing():
            raise _Lost("the connection is closed")
        reader.transport.write(data)

    async def _replies(self, count: int) -> list[Reply]:
        reader = self._reader
        if reader is None:
            raise _Lost("the connection is closed")
        future = reader.expect(count)
        if future.done():
            return future.result()
        timer = asyncio.get_running_loop().call_later(self.settings.timeout, reader.timed_out, self.settings.timeout)
        try:
            return await future
        finally:
            timer.cancel()

    async def _command(self, command: str) -> Reply:
        self._write(f"{command}\r\n".encode(self._command_encoding()))
        return (await self._replies(1))[0]

    def _command_encoding(self) -> str:
        return "utf-8" if "smtputf8" in self._extensions else "ascii"

    def _envelope(self, message: OutgoingMessage) -> list[str]:
        extensions = self._extensions
        return envelope(message, eightbit="8bitmime" in extensions, smtputf8="smtputf8" in extensions, where=self.where)

    def _send_envelope(self, commands: list[str]) -> None:
        self._write("".join(f"{command}\r\n" for command in commands).encode(self._command_encoding()))

    async def begin(self, message: OutgoingMessage) -> None:
        prefetched = self._prefetched
        self._prefetched = self._current = None
        if prefetched is not None and prefetched is not message:
            # Another message's DATA may already be open on this connection: only dropping the
            # connection ends it without delivering anything.
            self._discard()
        if self._reader is not None:
            try:
                await self._transaction(message, already_sent=prefetched is message, stale_ok=True)
            except NotSent:
                self._discard()  # the kept-open connection had gone (idle timeout); nothing was sent
            else:
                self._send_body(message)
                return
        await self._connect()
        await self._transaction(message, already_sent=False, stale_ok=False)
        self._send_body(message)

    def _send_body(self, message: OutgoingMessage) -> None:
        """Everything of the body but its final dot: the server reads it while the engine commits
        that the message is in flight, and nothing can be delivered before the dot (:meth:`finish`)."""
        data = message.wire or wire_form(message.data)
        try:
            self._write(memoryview(data)[: -len(END_OF_DATA)])
        except (_Lost, OSError) as exc:
            self._discard()
            raise TemporaryFailure(None, f"connection to {self.where} lost: {_why(exc)}") from exc
        self._current = message

    async def _transaction(self, message: OutgoingMessage, *, already_sent: bool, stale_ok: bool) -> None:
        """MAIL, RCPT, DATA and the body; raises NotSent (if ``stale_ok``) when nothing could have been sent."""
        commands = self._envelope(message)
        replies: list[tuple[str, Reply]] = []
        try:
            if "pipelining" in self._extensions:
                if not already_sent:
                    self._send_envelope(commands)
                replies = list(zip(commands, await self._replies(3), strict=True))
            else:
                for command, expected in zip(commands, EXPECTED_REPLIES, strict=True):
                    reply = await self._command(command)
                    replies.append((command, reply))
                    if reply[0] not in expected:
                        break
        except (_Lost, OSError) as exc:
            self._discard()
            if stale_ok and not replies:
                raise NotSent(_why(exc)) from exc
            raise TemporaryFailure(None, f"connection to {self.where} lost: {_why(exc)}") from exc
        for (command, (code, text)), expected in zip(replies, EXPECTED_REPLIES, strict=False):
            if code == 421 and stale_ok and command.startswith("MAIL"):
                raise NotSent(reply_text(text))
            if code not in expected:
                await self._refused(replies)
                raise failure(code, f"{command} refused: {reply_text(text)}")

    async def _refused(self, replies: list[tuple[str, Reply]]) -> None:
        """Keep the connection in step after a refusal: end an accepted DATA, then RSET."""
        if any(code == 421 for _, (code, _) in replies):
            self._discard()
            return
        try:
            if replies[-1][1][0] == 354:  # a refused recipient but an accepted DATA (a non-conforming server)
                self._write(b".\r\n")
                await self._replies(1)
            if (await self._command("RSET"))[0] != 250:
                self._discard()
        except (_Lost, OSError):
            self._discard()

    async def finish(self, following: OutgoingMessage | None = None) -> SendResult:
        message, self._current = self._current, None
        if message is None:
            raise RuntimeError("finish() without a successful begin()")
        data = END_OF_DATA
        # The next message's envelope goes out in the same write as this one's end (PIPELINING):
        # one more wake-up of the server per message would cost more than the envelope's bytes.
        if following is not None and "pipelining" in self._extensions:
            try:
                data += "".join(f"{c}\r\n" for c in self._envelope(following)).encode(self._command_encoding())
                self._prefetched = following
            except TransportError:
                pass  # its own begin() reports it
        try:
            self._write(data)
        except (_Lost, OSError) as exc:
            # The final dot never left: the server cannot have accepted the message.
            self._discard()
            raise TemporaryFailure(None, f"connection to {self.where} lost: {_why(exc)}") from exc
        try:
            code, text = (await self._replies(1))[0]
        except (_Lost, OSError) as exc:
            self._discard()
            raise ConnectionLost(
                None, f"connection to {self.where} lost before the server confirmed the message: {_why(exc)}"
            ) from exc
        if code != 250:
            if code == 421:
                self._discard()
            raise failure(code, f"message refused: {reply_text(text)}")
        return SendResult(message.message_id, code, reply_text(text))

    async def abandon(self) -> None:
        self._current = None
        self._discard()

    # --- closing ---------------------------------------------------------------------------------------

    def _discard(self) -> None:
        reader, self._reader = self._reader, None
        self._prefetched = None
        if reader is not None and reader.transport is not None:
            reader.transport.abort()

    async def close(self) -> None:
        reader = self._reader
        if reader is None:
            return
        if self._prefetched is not None or self._current is not None:
            self._discard()  # a DATA is or may be open: only dropping the connection ends it undelivered
            return
        try:
            await asyncio.wait_for(self._command("QUIT"), min(self.settings.timeout, 5.0))
        except (_Lost, OSError, TimeoutError):
            pass  # saying goodbye is a courtesy
        finally:
            self._discard()


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    return str(exc) or type(exc).__name__
