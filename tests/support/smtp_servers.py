"""Real SMTP servers for tests: aiosmtpd on 127.0.0.1, a free port each, stopped on exit.

    handler = RecordingHandler(rcpt_replies={"busy@example.org": "451 4.7.1 Try again later"})
    with smtp_server(handler) as server:            # tls="starttls"/"implicit" need a certificate
        url = server.url()                           # "smtp://127.0.0.1:PORT?tls=none"
        ...
    assert handler.received[0].data == message.data
    assert server.connections == 1

``stalled_server()`` accepts TCP connections and never says a word, for timeout tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import subprocess
import typing
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
DROP = "drop"  # scripted reply: close the connection instead of answering
STALL = "stall"  # scripted reply: never answer


@dataclasses.dataclass(frozen=True)
class Received:
    """One message as the server accepted it (``data`` already un-dot-stuffed by aiosmtpd)."""

    sender: str
    recipients: list[str]
    data: bytes
    mail_options: list[str]
    peer: Any


class RecordingHandler:
    """Keeps every accepted message; answers scripted replies for chosen recipients.

    ``rcpt_replies`` answer RCPT TO, ``data_replies`` answer the end of DATA; a reply is a full
    SMTP reply line ("550 5.1.1 No such user"), DROP or STALL.
    """

    def __init__(self, rcpt_replies: dict[str, str] | None = None, data_replies: dict[str, str] | None = None) -> None:
        self.received: list[Received] = []
        self.rcpt_replies = dict(rcpt_replies or {})
        self.data_replies = dict(data_replies or {})

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return await _act(server, self.rcpt_replies[address])
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for recipient in envelope.rcpt_tos:
            if recipient in self.data_replies:
                return await _act(server, self.data_replies[recipient])
        assert envelope.mail_from is not None and envelope.original_content is not None
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content,
                list(envelope.mail_options),
                session.peer,
            )
        )
        return "250 2.0.0 Ok: queued"


async def _act(server: SMTP, reply: str) -> str:
    if reply == DROP:
        assert server.transport is not None
        server.transport.close()
    elif reply == STALL:
        await asyncio.sleep(3600)  # cancelled when the server stops
    return reply


def password_authenticator(user: str, password: str) -> Callable[..., AuthResult]:
    """An aiosmtpd ``authenticator`` accepting exactly one user name and password."""

    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data == (user.encode(), password.encode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 235/535 reply

    return authenticate


@dataclasses.dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_certificate(folder: Path, days: int = 2) -> Certificate:
    """A self-signed certificate for localhost and 127.0.0.1, made with the openssl CLI."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(days), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)


class _Controller(Controller):
    """Binds port 0 and learns the real port; counts the connections it serves."""

    connections = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.protocols: list[SMTP] = []

    def _create_server(self) -> Any:
        create = super()._create_server()

        async def bind() -> asyncio.AbstractServer:
            server = typing.cast(asyncio.Server, await create)
            self.port = server.sockets[0].getsockname()[1]
            return server

        return bind()

    def factory(self) -> SMTP:
        self.connections += 1  # called once per accepted connection, in the server's thread
        protocol: SMTP = super().factory()  # type: ignore[no-untyped-call]
        self.protocols.append(protocol)
        return protocol


@dataclasses.dataclass(frozen=True)
class RunningServer:
    host: str
    port: int
    tls: str
    controller: _Controller

    @property
    def connections(self) -> int:
        """Connections accepted since the server started."""
        return self.controller.connections

    def drop_connections(self) -> None:
        """Close every open connection from the server's side, as an idle timeout would."""

        async def drop() -> None:
            live = [p for p in self.controller.protocols if p.transport is not None]
            for protocol in live:
                assert protocol.transport is not None
                protocol.transport.close()
            while any(p.transport is not None for p in live):  # until connection_lost has run
                await asyncio.sleep(0.001)

        asyncio.run_coroutine_threadsafe(drop(), self.controller.loop).result(timeout=5)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.host, self.port))

    def url(self, user: str | None = None, **options: str) -> str:
        """A transport URL for this server, tls matching how it was started."""
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        if self.tls != "implicit":
            options = {"tls": self.tls, **options}
        userinfo = urllib.parse.quote(user, safe="") + "@" if user else ""
        query = "?" + urllib.parse.urlencode(options) if options else ""
        return f"{scheme}://{userinfo}{self.host}:{self.port}{query}"


@contextmanager
def smtp_server(
    handler: Any,
    *,
    tls: Literal["none", "starttls", "implicit"] = "none",
    certificate: Certificate | None = None,
    **smtp_options: Any,
) -> Iterator[RunningServer]:
    """Run aiosmtpd with ``handler``; extra keywords go to ``aiosmtpd.smtp.SMTP``."""
    tls_options: dict[str, Any] = {}
    if tls != "none":
        if certificate is None:
            raise ValueError(f"tls={tls!r} needs a certificate")
        if tls == "starttls":
            tls_options = {"tls_context": certificate.server_context(), "require_starttls": True}
        else:
            tls_options = {"ssl_context": certificate.server_context()}
    controller = _Controller(handler, hostname=HOST, port=0, **tls_options, **smtp_options)
    controller.start()
    controller.connections = 0  # start() opens one probe connection of its own
    try:
        yield RunningServer(HOST, controller.port, tls, controller)
    finally:
        controller.stop()


@contextmanager
def stalled_server() -> Iterator[tuple[str, int]]:
    """A port where TCP connections succeed (the kernel's backlog) and nothing is ever said."""
    with socket.create_server((HOST, 0)) as listener:
        yield HOST, listener.getsockname()[1]
