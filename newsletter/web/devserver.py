"""``newsletter serve``: the web endpoint on Werkzeug's development server, to try the subscriber side.

On a loopback address (127.0.0.1, ::1, localhost) nobody but this machine can reach the server, so
links in the emails it sends (confirm, preferences, unsubscribe) would lead nowhere if they pointed
at ``public_base_url``, which names the real deployment: they are built from the server's own address
instead, plain http (only this machine sees them). Elsewhere (``--host 0.0.0.0`` behind a proxy) the
links go to ``public_base_url`` as always.

Each email the app sends is reported as it goes: where it went (the ``.eml`` file for the ``file:``
transport, the server and its reply code otherwise) and its subject, never its recipient.

In production, run :func:`newsletter.web.wsgi` under a WSGI server instead.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import urllib.parse
from collections.abc import Callable, Iterable
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, Self

from flask import Flask
from werkzeug.serving import LISTEN_QUEUE, BaseWSGIServer, get_sockaddr, make_server, select_address_family

from newsletter.config import Settings, is_loopback
from newsletter.delivery.transports import (
    OutgoingMessage,
    SendResult,
    Transport,
    TransportConfigError,
    TransportContext,
    TransportFactory,
    transport_factory,
)
from newsletter.errors import CannotListen
from newsletter.store.engine import Store
from newsletter.web import close_app, create_app

Report = Callable[[str], None]


def own_base_url(host: str, port: int) -> str:
    """The server's own address as a URL base: ``http://127.0.0.1:8000``, ``http://[::1]:8000``."""
    host = host.strip("[]")
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ReportingTransport(Transport):
    """Another transport, telling ``report`` where each message went and what it was about."""

    def __init__(self, inner: Transport, report: Report) -> None:
        self.inner = inner
        self.report = report

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult, context: TransportContext) -> Self:
        raise TransportConfigError("a reporting transport wraps another one; it has no URL of its own")

    def describe(self) -> str:
        return self.inner.describe()

    def _open(self) -> None:
        self.inner.open()

    def _close(self) -> None:
        self.inner.close()

    def _send(self, message: OutgoingMessage) -> SendResult:
        result = self.inner.send(message)
        self.report(sent_line(message, result, self.inner.describe()))
        return result

    def forget(self, message_ids: Iterable[str]) -> int:
        return self.inner.forget(message_ids)


def sent_line(message: OutgoingMessage, result: SendResult, transport: str) -> str:
    """One line about a sent message, without its recipient: a mail server's reply may quote the
    address, so only its code is shown; a transport without a server says where it put the message."""
    subject = BytesHeaderParser(policy=default_policy).parsebytes(message.data).get("Subject", "")
    if result.code is None:
        where = result.text
        if Path(where).is_absolute():
            where = os.path.relpath(where) if Path(where).is_relative_to(Path.cwd()) else where
            where = f"written to {where}"
    else:
        where = f"accepted by {transport} ({result.code})"
    return f'Email "{subject}": {where}'


def reporting(factory: TransportFactory, report: Report) -> TransportFactory:
    """``factory``'s transports, each reporting what it sends."""
    return lambda: ReportingTransport(factory(), report)


@dataclasses.dataclass
class DevServer:
    """The app on a listening socket; :meth:`serve_forever` runs it, :meth:`close` ends it."""

    server: BaseWSGIServer
    app: Flask
    settings: Settings  # as the app uses them: public_base_url is the server's own on a loopback host
    local: bool  # links point at this server rather than at public_base_url
    transport: str  # where its emails go, as a URL safe to print

    @property
    def url(self) -> str:
        return own_base_url(self.server.host, self.server.port)

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def close(self) -> None:
        self.server.server_close()
        close_app(self.app)


def _listening(host: str, port: int) -> socket.socket:
    """A socket bound and listening, or a one-line error: Werkzeug would print two lines and exit."""
    family = select_address_family(host, port)
    listening = socket.socket(family, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(get_sockaddr(host, port, family))
        listening.listen(LISTEN_QUEUE)
    except OSError as exc:
        listening.close()
        raise CannotListen(host, port, exc) from None
    return listening


class _Late:
    """A WSGI app filled in once the socket is bound: the app's links need the port it got."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "the server answers only once the app is set"
        return self.app(environ, start_response)


def dev_server(settings: Settings, *, store: Store, host: str, port: int, report: Report) -> DevServer:
    """Bind ``host:port`` (0: any free port) and build the app for it; see the module's docstring."""
    late = _Late()
    with _listening(host, port) as listening:
        server = make_server(host, port, late, threaded=True, fd=listening.fileno())  # it keeps a duplicate
    local = is_loopback(host)
    if local:
        settings = dataclasses.replace(settings, public_base_url=own_base_url(host, server.port))
    try:
        factory = transport_factory(settings)
        app = create_app(settings, store=store, transport=reporting(factory, report))
    except BaseException:
        server.server_close()
        raise
    late.app = app
    return DevServer(server, app, settings, local, factory().describe())
