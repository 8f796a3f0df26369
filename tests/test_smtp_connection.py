"""The SMTP transport's asyncio connection (the engine's fast path), against real aiosmtpd servers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.delivery.transports import (
    ConnectionLost,
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
    TransportConfigError,
    TransportContext,
    open_transport,
)
from newsletter.delivery.transports.smtp_common import wire_form
from newsletter.delivery.transports.smtp_pipeline import SMTPConnection
from tests.support.smtp_servers import (
    DROP,
    STALL,
    Certificate,
    RecordingHandler,
    RunningServer,
    make_certificate,
    password_authenticator,
    smtp_server,
)

PASSWORD = "correct horse battery staple"


class Pipelining(RecordingHandler):
    """Advertises PIPELINING, as Postfix and the big relays do."""

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def message(n: int, recipient: str = "", *, wire: bool = True) -> OutgoingMessage:
    recipient = recipient or f"r{n}@example.org"
    data = f"To: {recipient}\r\nSubject: {n}\r\n\r\n.a line with a dot\r\nbody {n}\r\n".encode()
    return OutgoingMessage(
        "news@harvest.example", recipient, data, f"<{n}@harvest.example>", wire=wire_form(data) if wire else None
    )


def connection(url: str, tmp_path: Path, password: str | None = None) -> SMTPConnection:
    transport = open_transport(url, TransportContext(tmp_path, password))
    found = transport.connection()
    assert isinstance(found, SMTPConnection)
    return found


async def send_all(conn: SMTPConnection, messages: list[OutgoingMessage]) -> list[Any]:
    """Send like the engine: begin, finish with the next message pipelined behind; outcomes in order."""
    outcomes: list[Any] = []
    await conn.open()
    queue = list(messages)
    current = queue.pop(0) if queue else None
    while current is not None:
        try:
            await conn.begin(current)
        except (TemporaryFailure, PermanentFailure) as exc:
            outcomes.append(exc)
            current = queue.pop(0) if queue else None
            continue
        following = queue.pop(0) if queue else None
        try:
            outcomes.append(await conn.finish(following))
        except (TemporaryFailure, PermanentFailure) as exc:
            outcomes.append(exc)
        current = following
    await conn.close()
    return outcomes


@pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[RunningServer, RecordingHandler]]:
    handler = Pipelining() if request.param else RecordingHandler()
    with smtp_server(handler) as running:
        yield running, handler


def test_many_messages_over_one_connection_arrive_intact(
    server: tuple[RunningServer, RecordingHandler], tmp_path: Path
) -> None:
    running, handler = server
    messages = [message(n, wire=n % 2 == 0) for n in range(12)]  # with and without a prepared wire form
    outcomes = asyncio.run(send_all(connection(running.url(), tmp_path), messages))
    assert [o.code for o in outcomes] == [250] * 12
    assert [r.recipients for r in handler.received] == [[m.recipient] for m in messages]
    assert [r.data for r in handler.received] == [m.data for m in messages]  # un-stuffed by the server again
    assert running.connections == 1


def test_refusals_keep_the_connection_in_step(tmp_path: Path) -> None:
    handler = Pipelining(
        rcpt_replies={"busy@example.org": "451 4.7.1 Try later", "gone@example.org": "550 5.1.1 No such user"}
    )
    with smtp_server(handler) as running:
        messages = [message(1), message(2, "busy@example.org"), message(3), message(4, "gone@example.org"), message(5)]
        outcomes = asyncio.run(send_all(connection(running.url(), tmp_path), messages))
        assert running.connections == 1
    assert isinstance(outcomes[1], TemporaryFailure) and outcomes[1].code == 451
    assert isinstance(outcomes[3], PermanentFailure) and outcomes[3].code == 550
    assert "RCPT TO:<gone@example.org> refused" in str(outcomes[3])
    assert [r.recipients for r in handler.received] == [["r1@example.org"], ["r3@example.org"], ["r5@example.org"]]


def test_a_drop_before_the_reply_to_the_dot_is_connection_lost_and_the_next_reconnects(tmp_path: Path) -> None:
    handler = Pipelining(data_replies={"r2@example.org": DROP})
    with smtp_server(handler) as running:
        outcomes = asyncio.run(send_all(connection(running.url(), tmp_path), [message(1), message(2), message(3)]))
        assert running.connections == 2
    assert isinstance(outcomes[1], ConnectionLost)
    assert [r.recipients for r in handler.received] == [["r1@example.org"], ["r3@example.org"]]


def test_a_stalled_reply_times_out_as_connection_lost(tmp_path: Path) -> None:
    handler = Pipelining(data_replies={"r1@example.org": STALL})
    with smtp_server(handler) as running:
        outcomes = asyncio.run(send_all(connection(running.url(timeout="0.5"), tmp_path), [message(1), message(2)]))
    assert isinstance(outcomes[0], ConnectionLost) and "timed out" in str(outcomes[0])
    assert [r.recipients for r in handler.received] == [["r2@example.org"]]


def test_a_connection_closed_while_idle_is_reopened_without_a_failure(tmp_path: Path) -> None:
    handler = Pipelining()
    with smtp_server(handler) as running:

        async def scenario() -> None:
            conn = connection(running.url(), tmp_path)
            await conn.open()
            await conn.begin(message(1))
            await conn.finish()
            running.drop_connections()  # the server's idle timeout
            await conn.begin(message(2))
            await conn.finish()
            await conn.close()

        asyncio.run(scenario())
        assert running.connections == 2
    assert len(handler.received) == 2


def test_abandon_ends_an_open_data_without_delivering_it(tmp_path: Path) -> None:
    handler = Pipelining()
    with smtp_server(handler) as running:

        async def scenario() -> None:
            conn = connection(running.url(), tmp_path)
            await conn.open()
            await conn.begin(message(1))
            await conn.abandon()
            await conn.begin(message(2))
            await conn.finish()
            await conn.close()

        asyncio.run(scenario())
    assert [r.recipients for r in handler.received] == [["r2@example.org"]]


def test_closing_with_a_body_sent_but_not_its_dot_delivers_nothing(tmp_path: Path) -> None:
    """begin() sends the body ahead of the commit; a run that stops before finish() must not end it."""
    handler = Pipelining()
    with smtp_server(handler) as running:

        async def scenario() -> None:
            conn = connection(running.url(), tmp_path)
            await conn.open()
            await conn.begin(message(1))
            await conn.close()

        asyncio.run(scenario())
        assert running.connections == 1
    assert handler.received == []


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_tls_and_login(tls: str, certificate: Certificate, tmp_path: Path) -> None:
    handler = RecordingHandler()
    options: dict[str, Any] = {"authenticator": password_authenticator("clinic@example.org", PASSWORD)}
    if tls == "starttls":
        options["auth_required"] = True
    else:
        options["auth_require_tls"] = False  # the whole connection is TLS; aiosmtpd cannot tell
    with smtp_server(handler, tls=tls, certificate=certificate, **options) as running:  # type: ignore[arg-type]
        url = running.url("clinic@example.org", cafile=str(certificate.cert))
        outcomes = asyncio.run(send_all(connection(url, tmp_path, PASSWORD), [message(1), message(2)]))
    assert [o.code for o in outcomes] == [250, 250] and len(handler.received) == 2


def test_a_wrong_password_is_a_config_error_that_does_not_show_it(certificate: Certificate, tmp_path: Path) -> None:
    handler = RecordingHandler()
    authenticator = password_authenticator("clinic@example.org", PASSWORD)
    wrong = "not-the-" + PASSWORD
    with smtp_server(
        handler, tls="starttls", certificate=certificate, authenticator=authenticator, auth_required=True
    ) as running:
        url = running.url("clinic@example.org", cafile=str(certificate.cert))
        with pytest.raises(TransportConfigError) as raised:
            asyncio.run(connection(url, tmp_path, wrong).open())
    assert "535" in str(raised.value) and "NEWSLETTER_SMTP_PASSWORD" in str(raised.value)
    assert wrong not in str(raised.value)


def test_an_untrusted_certificate_is_a_config_error(certificate: Certificate, tmp_path: Path) -> None:
    with (
        smtp_server(RecordingHandler(), tls="starttls", certificate=certificate) as running,
        pytest.raises(TransportConfigError, match="not trusted"),
    ):
        asyncio.run(connection(running.url(), tmp_path).open())


def test_starttls_required_but_not_offered_is_a_config_error(tmp_path: Path) -> None:
    with smtp_server(RecordingHandler()) as running:
        url = running.url().replace("tls=none", "tls=starttls")
        with pytest.raises(TransportConfigError, match="STARTTLS"):
            asyncio.run(connection(url, tmp_path).open())


def test_nothing_listening_is_a_temporary_failure(tmp_path: Path) -> None:
    with pytest.raises(TemporaryFailure, match="cannot connect") as raised:
        asyncio.run(connection("smtp://127.0.0.1:1?tls=none&timeout=2", tmp_path).open())
    assert raised.value.code is None
