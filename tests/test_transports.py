"""Transports: one contract every built-in transport keeps, then what is particular to each.

SMTP runs against real aiosmtpd servers on 127.0.0.1 (see smtp_servers.py); the memory
transport's fault injection stands in only for faults a real server cannot produce on demand.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import re
import socket
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

from newsletter.delivery.transports import (
    ConnectionLost,
    OutgoingMessage,
    PermanentFailure,
    SendResult,
    TemporaryFailure,
    Transport,
    TransportConfigError,
    TransportContext,
    TransportError,
    available_transports,
    open_transport,
    transport_class,
)
from newsletter.delivery.transports.console import ConsoleTransport
from newsletter.delivery.transports.file import FileTransport, file_name
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.delivery.transports.smtp import SMTPTransport
from newsletter.errors import NewsletterError
from tests.support.smtp_servers import (
    DROP,
    STALL,
    Certificate,
    RecordingHandler,
    RunningServer,
    make_certificate,
    password_authenticator,
    smtp_server,
    stalled_server,
)

SENDER = "news@clinic.example"
PASSWORD = "s3cr3t-Pa55w0rd"


@pytest.fixture(autouse=True)
def _empty_mailboxes() -> Iterator[None]:
    MemoryTransport.reset()
    yield
    MemoryTransport.reset()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def context(base_dir: Path, password: str | None = None) -> TransportContext:
    return TransportContext(base_dir=base_dir, password=password)


# --- messages ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sample:
    message: OutgoingMessage
    subject: str  # as a person reads it
    text: str  # the text part as a person reads it


def sample(recipient: str, n: int, kind: str = "ascii") -> Sample:
    """A serialised message, written out by hand so these tests depend on no MIME code of ours."""
    mid = f"<{n}.{kind}@clinic.example>"
    head = f"From: Harvest <{SENDER}>\r\nTo: <{recipient}>\r\nMessage-ID: {mid}\r\nMIME-Version: 1.0\r\n"
    if kind == "ascii":  # lines SMTP must dot-stuff, and no final CRLF
        text = f"Hello {n}.\r\n.\r\n..\r\n.leading dot\r\nBye."
        data = f"{head}Subject: Plain {n}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}".encode()
        return Sample(OutgoingMessage(SENDER, recipient, data, mid), f"Plain {n}", text.replace("\r\n", "\n"))
    if kind == "8bit":
        text = f"Grüße aus der Praxis {n}\r\n"
        data = (
            f"{head}Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_{n}?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{text}"
        ).encode()
        return Sample(OutgoingMessage(SENDER, recipient, data, mid), f"Grüße {n}", text.replace("\r\n", "\n"))
    assert kind == "large"  # multipart/alternative, quoted-printable, about 40 KB like a campaign
    line = "Vaccination hours change in November; see the schedule below. =E2=80=94 Harvest\r\n"
    body = (
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        f"{line * 500}--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{'x' * 70}</p>\r\n--b1--\r\n"
    )
    head += f"Subject: Large {n}\r\nContent-Type: multipart/alternative; boundary=b1\r\n"
    data = f"{head}\r\n{body}".encode()
    text = "Vaccination hours change in November; see the schedule below. \u2014 Harvest\n" * 500
    return Sample(OutgoingMessage(SENDER, recipient, data, mid), f"Large {n}", text)


def samples() -> list[Sample]:
    return [
        sample("ana@example.org", 1),
        sample("ben@example.org", 2, "8bit"),
        sample("cy@example.org", 3, "large"),
    ]


# --- one harness per built-in transport -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Delivered:
    """What arrived; a field a transport does not keep is None."""

    sender: str | None
    recipients: list[str] | None
    data: bytes | None
    shown: str = ""


@dataclasses.dataclass(frozen=True)
class Harness:
    url: str
    context: TransportContext
    received: Callable[[], list[Delivered]]
    normalise: Callable[[bytes], bytes] = lambda data: data

    def open(self) -> Transport:
        return open_transport(self.url, self.context)


def smtp_normalise(data: bytes) -> bytes:
    # The only change SMTP makes to CRLF data: the message must end with a line end.
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def console_received(out: str) -> list[Delivered]:
    blocks = re.split(r"^----- message .* -----$", out, flags=re.M)[1:]
    found = []
    for block in blocks:
        envelope = re.search(r"^Envelope: (\S*) -> (\S+)$", block, flags=re.M)
        assert envelope, block
        found.append(Delivered(envelope[1], [envelope[2]], None, block))
    return found


@pytest.fixture(params=["smtp", "smtp+starttls", "smtps", "file", "console", "memory"])
def harness(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str], certificate: Certificate
) -> Iterator[Harness]:
    kind: str = request.param
    ctx = context(tmp_path)
    if kind.startswith("smtp"):
        modes: dict[str, Literal["none", "starttls", "implicit"]] = {
            "smtp": "none", "smtp+starttls": "starttls", "smtps": "implicit"
        }  # fmt: skip
        tls = modes[kind]
        handler = RecordingHandler()
        with smtp_server(handler, tls=tls, certificate=certificate) as server:
            options = {"cafile": str(certificate.cert)} if tls != "none" else {}
            yield Harness(
                server.url(**options),
                ctx,
                lambda: [Delivered(r.sender, r.recipients, r.data) for r in handler.received],
                smtp_normalise,
            )
    elif kind == "file":
        outbox = tmp_path / "outbox"
        yield Harness(
            "file:outbox/", ctx, lambda: [file_delivered(p.read_bytes()) for p in sorted(outbox.glob("*.eml"))]
        )
    elif kind == "console":
        yield Harness("console:", ctx, lambda: console_received(capsys.readouterr().out))
    else:
        yield Harness(
            "memory:contract",
            ctx,
            lambda: [Delivered(m.sender, [m.recipient], m.data) for m in MemoryTransport.outbox("contract")],
        )


def file_delivered(content: bytes) -> Delivered:
    """A file transport's .eml: the envelope sender as a first Return-Path line, then the message."""
    first, _, data = content.partition(b"\r\n")
    match = re.fullmatch(rb"Return-Path: <(.*)>", first)
    assert match, first
    return Delivered(match[1].decode(), None, data)


# --- the contract -----------------------------------------------------------------------------


def test_open_and_close_are_idempotent_and_a_closed_transport_reopens(harness: Harness) -> None:
    transport = harness.open()
    assert not transport.is_open
    transport.close()  # closing what was never opened is harmless
    transport.open()
    transport.open()
    assert transport.is_open
    transport.close()
    transport.close()
    assert not transport.is_open
    transport.open()
    message = samples()[0].message
    assert transport.send(message).message_id == message.message_id
    transport.close()
    assert len(harness.received()) == 1


def test_context_manager_opens_and_closes_even_on_error(harness: Harness) -> None:
    with harness.open() as transport:
        assert transport.is_open
    assert not transport.is_open
    with pytest.raises(KeyError), harness.open() as transport:
        raise KeyError("boom")
    assert not transport.is_open


def test_send_on_a_transport_that_is_not_open_is_a_programming_error(harness: Harness) -> None:
    transport = harness.open()
    with pytest.raises(RuntimeError, match="not open"):
        transport.send(samples()[0].message)
    assert harness.received() == []


def test_several_messages_over_one_open_transport_arrive_intact(harness: Harness) -> None:
    sent = samples()
    with harness.open() as transport:
        results = [transport.send(s.message) for s in sent]
    assert all(isinstance(r, SendResult) for r in results)
    assert [r.message_id for r in results] == [s.message.message_id for s in sent]
    received = harness.received()
    assert len(received) == len(sent)
    if received[0].recipients is None:  # the file transport keeps the sender but not the order
        expected = sorted((s.message.sender, harness.normalise(s.message.data)) for s in sent)
        assert sorted((d.sender, d.data or b"") for d in received) == expected
        return
    for got, want in zip(received, sent, strict=True):
        assert got.sender == want.message.sender
        assert got.recipients == [want.message.recipient]  # one recipient per send, always
        if got.data is not None:
            assert got.data == harness.normalise(want.message.data)
        else:  # the console shows, rather than keeps, the message
            assert f"Subject: {want.subject}" in got.shown
            assert want.text.strip() in got.shown


def test_from_url_round_trips_through_describe(harness: Harness) -> None:
    transport = harness.open()
    again = open_transport(transport.describe(), harness.context)
    assert type(again) is type(transport)
    assert again.describe() == transport.describe()
    assert repr(transport) == f"<{type(transport).__name__} {transport.describe()}>"
    assert type(transport) is transport_class(urllib.parse.urlsplit(harness.url).scheme)


# --- messages and errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"recipient": ["a@example.org", "b@example.org"]}, ValueError),
        ({"recipient": ""}, ValueError),
        ({"recipient": "a@example.org>\r\nRCPT TO:<b@example.org"}, ValueError),
        ({"sender": "a b@example.org"}, ValueError),
        ({"data": "Subject: str\r\n\r\n"}, TypeError),
    ],
)
def test_outgoing_message_holds_one_bare_recipient_and_bytes(changes: dict[str, object], error: type) -> None:
    fields: dict[str, object] = {
        "sender": SENDER, "recipient": "a@example.org", "data": b"x", "message_id": "<1@x>"
    }  # fmt: skip
    with pytest.raises(error):
        OutgoingMessage(**{**fields, **changes})  # type: ignore[arg-type]
    null_sender = OutgoingMessage(**{**fields, "sender": ""})  # type: ignore[arg-type]
    assert null_sender.sender == ""  # the null reverse-path, for bounces


def test_outgoing_message_repr_leaves_out_the_body() -> None:
    assert "Subject" not in repr(samples()[0].message)


def test_transport_errors_are_newsletter_errors_that_keep_code_and_text_and_pickle() -> None:
    for error in (TemporaryFailure(451, "later"), PermanentFailure(550, "no"), ConnectionLost(None, "gone")):
        assert isinstance(error, TransportError) and isinstance(error, NewsletterError)
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (copy.code, copy.text, str(copy)) == (error.code, error.text, str(error))
    assert str(PermanentFailure(550, "no such user")) == "550 no such user"
    assert str(ConnectionLost(None, "gone")) == "gone"
    assert issubclass(ConnectionLost, TemporaryFailure)
    assert issubclass(TransportConfigError, NewsletterError)


# --- SMTP against real servers --------------------------------------------------------------------


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler(
        rcpt_replies={
            "busy@example.org": "451 4.7.1 Try again later",
            "nobody@example.org": "550 5.1.1 No such user",
            "closing@example.org": "421 4.3.2 Shutting down",
        },
        data_replies={
            "spam@example.org": "554 5.7.1 Looks like spam",
            "drop@example.org": DROP,
            "stall@example.org": STALL,
        },
    )


@pytest.fixture
def server(handler: RecordingHandler) -> Iterator[RunningServer]:
    with smtp_server(handler) as running:
        yield running


def test_smtp_reuses_one_connection_for_many_messages(
    server: RunningServer, handler: RecordingHandler, tmp_path: Path
) -> None:
    with open_transport(server.url(), context(tmp_path)) as transport:
        for n in range(5):
            transport.send(sample(f"r{n}@example.org", n).message)
    assert server.connections == 1
    assert len(handler.received) == 5
    assert len({r.peer for r in handler.received}) == 1


@pytest.mark.parametrize(
    ("recipient", "failure", "code"),
    [
        ("busy@example.org", TemporaryFailure, 451),
        ("nobody@example.org", PermanentFailure, 550),
        ("spam@example.org", PermanentFailure, 554),
    ],
)
def test_smtp_refusal_maps_to_its_failure_and_the_connection_stays_usable(
    server: RunningServer, handler: RecordingHandler, tmp_path: Path, recipient: str, failure: type, code: int
) -> None:
    with open_transport(server.url(), context(tmp_path)) as transport:
        with pytest.raises(TransportError) as raised:
            transport.send(sample(recipient, 1).message)
        assert type(raised.value) is failure
        assert raised.value.code == code
        assert recipient in raised.value.text or "spam" in raised.value.text
        transport.send(sample("ok@example.org", 2).message)
    assert [r.recipients for r in handler.received] == [["ok@example.org"]]
    assert server.connections == 1


def test_smtp_421_drops_the_connection_and_the_next_send_reconnects(
    server: RunningServer, handler: RecordingHandler, tmp_path: Path
) -> None:
    with open_transport(server.url(), context(tmp_path)) as transport:
        with pytest.raises(TemporaryFailure) as raised:
            transport.send(sample("closing@example.org", 1).message)
        assert raised.value.code == 421
        transport.send(sample("ok@example.org", 2).message)
    assert [r.recipients for r in handler.received] == [["ok@example.org"]]


def test_smtp_drop_during_data_is_connection_lost_and_the_next_send_reconnects(
    server: RunningServer, handler: RecordingHandler, tmp_path: Path
) -> None:
    with open_transport(server.url(), context(tmp_path)) as transport:
        with pytest.raises(ConnectionLost) as raised:
            transport.send(sample("drop@example.org", 1).message)
        assert raised.value.code is None
        assert isinstance(raised.value.__cause__, Exception)  # the library's error, chained
        transport.send(sample("ok@example.org", 2).message)
    assert server.connections == 2
    assert [r.recipients for r in handler.received] == [["ok@example.org"]]


def test_smtp_connection_closed_while_idle_is_reopened_without_a_failure(
    server: RunningServer, handler: RecordingHandler, tmp_path: Path
) -> None:
    with open_transport(server.url(), context(tmp_path)) as transport:
        transport.send(sample("a@example.org", 1).message)
        server.drop_connections()  # what a server's idle timeout does between two messages
        transport.send(sample("b@example.org", 2).message)
    assert server.connections == 2
    assert [r.recipients for r in handler.received] == [["a@example.org"], ["b@example.org"]]


def test_smtp_server_stalling_after_data_times_out_as_connection_lost(
    server: RunningServer, handler: RecordingHandler, tmp_path: Path
) -> None:
    with open_transport(server.url(timeout="0.5"), context(tmp_path)) as transport:
        with pytest.raises(ConnectionLost, match="timed out"):
            transport.send(sample("stall@example.org", 1).message)
        transport.send(sample("ok@example.org", 2).message)
    assert [r.recipients for r in handler.received] == [["ok@example.org"]]


def test_smtp_server_that_never_greets_times_out_as_temporary_failure(tmp_path: Path) -> None:
    with stalled_server() as (host, port):
        transport = open_transport(f"smtp://{host}:{port}?timeout=0.5", context(tmp_path))
        with pytest.raises(TemporaryFailure, match="timed out") as raised:
            transport.open()
    assert raised.value.code is None
    assert not isinstance(raised.value, ConnectionLost)
    assert not transport.is_open


def test_smtp_nothing_listening_is_a_temporary_failure_without_code(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    transport = open_transport(f"smtp://127.0.0.1:{port}?tls=none", context(tmp_path))
    with pytest.raises(TemporaryFailure) as raised:
        transport.open()
    assert raised.value.code is None
    assert not isinstance(raised.value, ConnectionLost)  # nothing was sent, so nothing can be duplicated
    assert not transport.is_open


def test_smtp_bare_line_ends_are_sent_as_crlf_and_8bit_bodies_declared(
    server: RunningServer, handler: RecordingHandler, tmp_path: Path
) -> None:
    bare = OutgoingMessage(SENDER, "a@example.org", b"Subject: bare\n\nline\rline\n", "<bare@x>")
    with open_transport(server.url(), context(tmp_path)) as transport:
        transport.send(bare)
        transport.send(sample("b@example.org", 2, "8bit").message)
    assert handler.received[0].data == b"Subject: bare\r\n\r\nline\r\nline\r\n"
    assert handler.received[0].mail_options == []
    assert handler.received[1].mail_options == ["BODY=8BITMIME"]


def test_smtp_send_after_close_is_refused(server: RunningServer, tmp_path: Path) -> None:
    transport = open_transport(server.url(), context(tmp_path))
    with transport:
        transport.send(sample("a@example.org", 1).message)
    with pytest.raises(RuntimeError):
        transport.send(sample("a@example.org", 2).message)


# --- TLS and AUTH ---------------------------------------------------------------------------------


@pytest.fixture
def auth_server(certificate: Certificate) -> Iterator[tuple[RunningServer, RecordingHandler]]:
    handler = RecordingHandler()
    authenticator = password_authenticator("clinic@example.org", PASSWORD)
    with smtp_server(
        handler, tls="starttls", certificate=certificate, authenticator=authenticator, auth_required=True
    ) as server:
        yield server, handler


def test_smtp_auth_succeeds_with_the_password_from_the_context(
    auth_server: tuple[RunningServer, RecordingHandler], certificate: Certificate, tmp_path: Path
) -> None:
    server, handler = auth_server
    url = server.url("clinic@example.org", cafile=str(certificate.cert))
    with open_transport(url, context(tmp_path, PASSWORD)) as transport:
        transport.send(sample("a@example.org", 1).message)
    assert len(handler.received) == 1


def test_smtp_user_without_password_is_refused_before_connecting(
    auth_server: tuple[RunningServer, RecordingHandler], tmp_path: Path
) -> None:
    server, _ = auth_server
    with pytest.raises(TransportConfigError, match="NEWSLETTER_SMTP_PASSWORD"):
        open_transport(server.url("clinic@example.org"), context(tmp_path, None))
    assert server.connections == 0


def test_smtp_wrong_password_is_a_config_error_that_does_not_show_it(
    auth_server: tuple[RunningServer, RecordingHandler], certificate: Certificate, tmp_path: Path
) -> None:
    server, handler = auth_server
    wrong = "not-the-" + PASSWORD
    url = server.url("clinic@example.org", cafile=str(certificate.cert))
    transport = open_transport(url, context(tmp_path, wrong))
    with pytest.raises(TransportConfigError) as raised:
        transport.open()
    assert "535" in str(raised.value) and "NEWSLETTER_SMTP_PASSWORD" in str(raised.value)
    assert wrong not in str(raised.value) and wrong not in str(raised.value.__cause__)
    assert not transport.is_open and handler.received == []


def test_smtp_without_login_a_server_requiring_auth_refuses_permanently(
    auth_server: tuple[RunningServer, RecordingHandler], certificate: Certificate, tmp_path: Path
) -> None:
    server, _ = auth_server
    transport = open_transport(server.url(cafile=str(certificate.cert)), context(tmp_path))
    with transport, pytest.raises(PermanentFailure) as raised:
        transport.send(sample("a@example.org", 1).message)
    assert raised.value.code == 530


def test_smtp_untrusted_certificate_is_a_config_error_unless_verify_is_off(
    certificate: Certificate, tmp_path: Path
) -> None:
    handler = RecordingHandler()
    with smtp_server(handler, tls="starttls", certificate=certificate) as server:
        with pytest.raises(TransportConfigError, match="cafile"):
            open_transport(server.url(), context(tmp_path)).open()
        with open_transport(server.url(verify="false"), context(tmp_path)) as transport:
            transport.send(sample("a@example.org", 1).message)
    assert len(handler.received) == 1


def test_smtp_starttls_required_but_not_offered_is_a_config_error(server: RunningServer, tmp_path: Path) -> None:
    url = server.url().replace("tls=none", "tls=starttls")
    with pytest.raises(TransportConfigError, match="STARTTLS"):
        open_transport(url, context(tmp_path)).open()


# --- URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "cls", "attributes"),
    [
        ("smtp://mail.example.org", SMTPTransport,
         {"host": "mail.example.org", "port": 587, "tls": "starttls"}),
        ("smtp://user%40clinic.example@mail.example.org:2525"
         "?tls=none&timeout=2.5&local_hostname=clinic.example",
         SMTPTransport, {"username": "user@clinic.example", "port": 2525, "tls": "none", "timeout": 2.5,
                         "local_hostname": "clinic.example"}),
        ("smtp://[::1]:25?tls=starttls&verify=false", SMTPTransport, {"host": "::1", "verify": False}),
        ("smtps://mail.example.org", SMTPTransport, {"port": 465, "tls": "implicit"}),
        ("smtps://mail.example.org:4650?cafile=ca.pem", SMTPTransport, {"port": 4650, "cafile": "BASE/ca.pem"}),
        ("file:outbox/", FileTransport, {"folder": "BASE/outbox"}),
        ("file:///var/mail/outbox", FileTransport, {"folder": "/var/mail/outbox"}),
        ("console:", ConsoleTransport, {}),
        ("memory:", MemoryTransport, {"name": "default"}),
        ("memory:tests", MemoryTransport, {"name": "tests"}),
    ],
)  # fmt: skip
def test_valid_urls(
    url: str, cls: type, attributes: dict[str, object], tmp_path: Path, certificate: Certificate
) -> None:
    (tmp_path / "ca.pem").write_bytes(certificate.cert.read_bytes())  # relative cafile: in base_dir
    transport = open_transport(url, context(tmp_path, PASSWORD))
    assert type(transport) is cls
    for name, value in attributes.items():
        if isinstance(value, str) and value.startswith("BASE/"):
            value = tmp_path / value.removeprefix("BASE/")
        elif name in ("folder", "cafile"):
            value = Path(str(value))
        assert getattr(transport, name) == value, name
    assert not transport.is_open  # building does not connect


@pytest.mark.parametrize(
    "url",
    ["smtp://user:" + PASSWORD + "@mail.example.org", "smtp://:" + PASSWORD + "@mail.example.org:25",
     "smtps://user:" + PASSWORD + "@mail.example.org", "memory://user:" + PASSWORD + "@x"],
)  # fmt: skip
def test_a_password_in_the_url_is_refused_without_repeating_it(url: str, tmp_path: Path) -> None:
    with pytest.raises(TransportConfigError) as raised:
        open_transport(url, context(tmp_path))
    assert PASSWORD not in str(raised.value)
    assert "NEWSLETTER_SMTP_PASSWORD" in str(raised.value)
    with pytest.raises(TransportConfigError) as direct:
        SMTPTransport.from_url(urllib.parse.urlsplit(url.replace("memory", "smtp")), context(tmp_path))
    assert PASSWORD not in str(direct.value)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("pigeon:north", r"unknown transport 'pigeon'; available: .*console.*file.*memory.*smtp.*smtps"),
        ("outbox/", "has no scheme"),
        ("smtp://mail.example.org?tlz=none", "unknown option 'tlz'"),
        ("smtp://mail.example.org?tls=none&tls=none", "given twice"),
        ("smtp://mail.example.org?tls=ssl", "tls must be starttls or none"),
        ("smtps://mail.example.org?tls=starttls", "always uses implicit TLS"),
        ("smtp://mail.example.org?timeout=-1", "timeout must be a positive number"),
        ("smtp://mail.example.org?timeout=soon", "timeout must be a positive number"),
        ("smtp://mail.example.org?verify=maybe", "verify must be true or false"),
        ("smtp://mail.example.org?cafile=missing.pem", "cannot load cafile"),
        ("smtp://mail.example.org?tls=none&verify=false", "only apply to TLS"),
        ("smtp://mail.example.org:port", "malformed"),
        ("smtp://mail.example.org/inbox", "no path"),
        ("smtp://?tls=none", "no host name"),
        ("file:", "no folder"),
        ("file://otherhost/outbox", "expected file:FOLDER"),
        ("file:outbox?fsync=1", "unknown option 'fsync'"),
        ("console:stderr", "takes no path"),
        ("memory:a/b", "expected memory:"),
    ],
)
def test_unusable_urls_are_one_line_config_errors(url: str, complaint: str, tmp_path: Path) -> None:
    with pytest.raises(TransportConfigError, match=complaint) as raised:
        open_transport(url, context(tmp_path))
    assert "\n" not in str(raised.value)


def test_the_password_never_appears_in_repr_str_or_describe(tmp_path: Path) -> None:
    ctx = context(tmp_path, PASSWORD)
    transport = open_transport("smtp://clinic@mail.example.org:587", ctx)
    assert transport._password == PASSWORD  # type: ignore[attr-defined] # it is there, to be used
    for shown in (repr(transport), str(transport), transport.describe(), repr(ctx), str(ctx)):
        assert PASSWORD not in shown
    assert transport.describe() == "smtp://clinic@mail.example.org:587?tls=starttls"


# --- the plugin door ------------------------------------------------------------------------------

PLUGIN = """
from newsletter.delivery.transports import SendResult, Transport, query_options, refuse_password

class FakeTransport(Transport):
    sent = []

    def __init__(self, target):
        self.target = target

    @classmethod
    def from_url(cls, url, context):
        refuse_password(url)
        query_options(url, allowed=())
        return cls(url.path)

    def describe(self):
        return f"fake:{self.target}"

    def _send(self, message):
        FakeTransport.sent.append(message)
        return SendResult(message.message_id, None, "faked")

class NotATransport:
    pass
"""


def install_plugin(folder: Path, dist: str, module: str, entry_points: str) -> None:
    """A third-party distribution, installed the way pip would: a module and its dist-info."""
    (folder / f"{module}.py").write_text(PLUGIN)
    info = folder / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[newsletter.transports]\n{entry_points}\n")


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [n for n in sys.modules if n.startswith("fake_transport_")]:
        del sys.modules[name]


def test_a_third_party_transport_comes_in_through_the_entry_point_group(plugin_path: Path, tmp_path: Path) -> None:
    install_plugin(
        plugin_path, "fake_transport_plugin", "fake_transport_one", "fake = fake_transport_one:FakeTransport"
    )
    assert available_transports()["fake"] == "fake_transport_one:FakeTransport"
    with open_transport("fake:pigeons", context(tmp_path)) as transport:
        assert type(transport).__module__ == "fake_transport_one"
        assert repr(transport) == "<FakeTransport fake:pigeons>"
        transport.send(samples()[0].message)
    sent = type(transport).sent  # type: ignore[attr-defined]
    assert [m.message_id for m in sent] == [samples()[0].message.message_id]


def test_a_broken_or_conflicting_plugin_is_a_config_error(plugin_path: Path, tmp_path: Path) -> None:
    install_plugin(
        plugin_path, "fake_transport_bad", "fake_transport_two",
        "missing = fake_transport_nowhere:Transport\nodd = fake_transport_two:NotATransport\n"
        "memory = fake_transport_two:FakeTransport",
    )  # fmt: skip
    with pytest.raises(TransportConfigError, match="cannot be loaded"):
        open_transport("missing:", context(tmp_path))
    with pytest.raises(TransportConfigError, match="not a Transport subclass"):
        open_transport("odd:", context(tmp_path))
    with pytest.raises(TransportConfigError, match="registered twice"):
        open_transport("memory:", context(tmp_path))
    assert type(open_transport("file:outbox", context(tmp_path))) is FileTransport  # the rest still works


# --- file -----------------------------------------------------------------------------------------


def test_file_names_stay_in_the_folder_and_are_unique(tmp_path: Path) -> None:
    ids = ["<../../etc/passwd>", "<a/b@x>", "<a_b@x>", "<A_b@x>", "<" + "z" * 300 + "@x>", "<.hidden@x>", "<>"]
    names = [file_name(mid) for mid in ids]
    assert len(set(names)) == len(ids)
    for name in names:
        assert "/" not in name and not name.startswith(".") and name.endswith(".eml") and len(name) < 100
    with FileTransport(tmp_path / "deep" / "outbox") as transport:  # created if missing
        for mid in ids:
            transport.send(OutgoingMessage(SENDER, "a@example.org", mid.encode(), mid))
    assert sorted(p.name for p in (tmp_path / "deep" / "outbox").iterdir()) == sorted(names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]


def test_file_resending_a_message_replaces_it_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    with open_transport("file:outbox", context(tmp_path)) as transport:
        first = transport.send(OutgoingMessage(SENDER, "a@example.org", b"first\r\n", "<1@x>"))
        second = transport.send(OutgoingMessage(SENDER, "a@example.org", b"second\r\n", "<1@x>"))
    assert first.text == second.text == str(tmp_path / "outbox" / file_name("<1@x>"))
    assert [p.read_bytes() for p in (tmp_path / "outbox").iterdir()] == [
        f"Return-Path: <{SENDER}>\r\nsecond\r\n".encode()
    ]


def test_file_writes_the_envelope_sender_first_as_a_delivery_agent_would(tmp_path: Path) -> None:
    with open_transport("file:outbox", context(tmp_path)) as transport:
        transport.send(
            OutgoingMessage("bounce+abc@news.example", "a@example.org", b"To: a@example.org\r\n\r\nHi\r\n", "<2@x>")
        )
        transport.send(OutgoingMessage("", "a@example.org", b"To: a@example.org\r\n\r\nHi\r\n", "<3@x>"))
    first = (tmp_path / "outbox" / file_name("<2@x>")).read_bytes()
    assert first.startswith(b"Return-Path: <bounce+abc@news.example>\r\nTo: a@example.org\r\n")
    assert (tmp_path / "outbox" / file_name("<3@x>")).read_bytes().startswith(b"Return-Path: <>\r\n")


def test_file_folder_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(TransportConfigError, match="cannot create the outbox folder"):
        open_transport("file:taken/outbox", context(tmp_path)).open()


# --- console --------------------------------------------------------------------------------------


def test_console_shows_envelope_decoded_headers_and_text_part_on_the_given_stream() -> None:
    stream = io.StringIO()
    large = sample("cy@example.org", 3, "large")
    with ConsoleTransport(stream) as transport:
        transport.send(sample("ben@example.org", 2, "8bit").message)
        transport.send(large.message)
        html_only = b"Content-Type: text/html\r\n\r\n<p>hi</p>\r\n"
        transport.send(OutgoingMessage(SENDER, "a@example.org", html_only, "<h@x>"))
    out = stream.getvalue()
    assert "Envelope: news@clinic.example -> ben@example.org" in out
    assert "Subject: Grüße 2\n" in out and "Grüße aus der Praxis 2\n" in out
    assert large.text in out and "<p>" not in out.split("<h@x>")[0]  # the HTML part is not shown
    assert "Content-Transfer-Encoding" not in out
    assert "(no text part;" in out


# --- memory ---------------------------------------------------------------------------------------


def test_memory_mailboxes_are_shared_by_name_across_instances(tmp_path: Path) -> None:
    with open_transport("memory:", context(tmp_path)) as one, MemoryTransport("other") as two:
        one.send(sample("a@example.org", 1).message)
        two.send(sample("b@example.org", 2).message)
    assert [m.recipient for m in MemoryTransport.outbox()] == ["a@example.org"]
    assert [m.recipient for m in MemoryTransport("other").messages] == ["b@example.org"]
    MemoryTransport.reset()
    assert MemoryTransport.outbox() == [] and MemoryTransport.outbox("other") == []


def test_memory_fault_injection(tmp_path: Path) -> None:
    MemoryTransport.fail_next(TemporaryFailure(451, "greylisted"))
    MemoryTransport.fail_next(ConnectionLost(None, "dropped after accepting"), delivered=True)
    MemoryTransport.fail_next(RuntimeError("a bug in the transport"))
    MemoryTransport.fail_recipient("bounce@example.org", PermanentFailure(550, "no such user"))
    with MemoryTransport() as transport:
        ok = sample("a@example.org", 1).message
        with pytest.raises(TemporaryFailure, match="greylisted"):
            transport.send(ok)
        with pytest.raises(ConnectionLost):
            transport.send(ok)
        with pytest.raises(RuntimeError):
            transport.send(ok)
        assert transport.send(ok).message_id == ok.message_id
        for _ in range(2):  # a recipient's fault persists
            with pytest.raises(PermanentFailure) as raised:
                transport.send(sample("bounce@example.org", 2).message)
            assert raised.value.code == 550
        MemoryTransport.fail_recipient("bounce@example.org", None)
        transport.send(sample("bounce@example.org", 3).message)
    # the ConnectionLost message was delivered (a duplicate in the making); the others were not
    kept = [m.message_id for m in MemoryTransport.outbox()]
    assert kept == [ok.message_id, ok.message_id, "<3.ascii@clinic.example>"]
