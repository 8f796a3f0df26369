"""ESMTP PIPELINING (RFC 2920): MAIL, RCPT and DATA in one write, replies read in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.delivery.transports import (
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
    TransportContext,
    open_transport,
)
from tests.support.smtp_servers import RecordingHandler, smtp_server


class PipeliningHandler(RecordingHandler):
    """Advertises PIPELINING and records how the client's commands arrived."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.envelope_reads: list[int] = []

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # What is already buffered when MAIL is handled tells whether RCPT and DATA came with it.
        self.envelope_reads.append(len(server._reader._buffer))  # type: ignore[union-attr]
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"


def message(n: int, recipient: str) -> OutgoingMessage:
    data = f"From: news@harvest.example\r\nTo: {recipient}\r\nSubject: {n}\r\n\r\n.line starting with a dot\r\nbody {n}\r\n".encode()
    return OutgoingMessage("news@harvest.example", recipient, data, f"<{n}@harvest.example>")


def test_pipelined_envelopes_deliver_intact(tmp_path: Path) -> None:
    handler = PipeliningHandler()
    with smtp_server(handler) as server, open_transport(server.url(), TransportContext(tmp_path)) as transport:
        for n in range(3):
            transport.send(message(n, f"r{n}@example.org"))
    assert [r.recipients for r in handler.received] == [[f"r{n}@example.org"] for n in range(3)]
    assert all(b"\r\n.line starting with a dot\r\n" in r.data for r in handler.received)
    assert all(pending > 0 for pending in handler.envelope_reads)  # RCPT and DATA were already there


@pytest.mark.parametrize(
    ("reply", "failure"), [("451 4.7.1 Try later", TemporaryFailure), ("550 5.1.1 No such user", PermanentFailure)]
)
def test_a_refused_recipient_keeps_the_connection_in_step(tmp_path: Path, reply: str, failure: type) -> None:
    handler = PipeliningHandler(rcpt_replies={"refused@example.org": reply})
    with smtp_server(handler) as server, open_transport(server.url(), TransportContext(tmp_path)) as transport:
        with pytest.raises(failure) as caught:
            transport.send(message(1, "refused@example.org"))
        assert caught.value.code == int(reply[:3])
        transport.send(message(2, "fine@example.org"))
        assert server.connections == 1
    assert [r.recipients for r in handler.received] == [["fine@example.org"]]
