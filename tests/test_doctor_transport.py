"""`newsletter doctor`'s relay checks against real SMTP servers (aiosmtpd on 127.0.0.1): with and
without STARTTLS, a self-signed certificate, AUTH offered or not, and one real --send-test."""

from __future__ import annotations

import json
from pathlib import Path

import dkim
import pytest

from newsletter.doctor.report import Check, Deadline, Status
from newsletter.doctor.transport import transport_checks
from tests.conftest import Newsletter
from tests.support.campaigns import clinic_settings
from tests.support.dkim_keys import rsa_key
from tests.support.smtp_servers import (
    Certificate,
    RecordingHandler,
    RunningServer,
    make_certificate,
    password_authenticator,
    smtp_server,
    stalled_server,
)

USER, PASSWORD = "clinic@example.org", "relay-password-123"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"), days=365)


def probe(project: Path, transport: str, *, largest: int = 0, **extra: object) -> dict[str, Check]:
    settings = clinic_settings(project, transport=transport, **extra)
    checks = transport_checks(settings, Deadline(20), largest_message=largest)
    assert len({c.id for c in checks}) == len(checks), "one line per check"
    assert all(c.id.startswith("transport.") for c in checks)
    return {c.id: c for c in checks}


def test_a_local_relay_without_tls(project: Path) -> None:
    with smtp_server(RecordingHandler(), ident="Harvest test relay") as server:
        checks = probe(project, server.url())
    assert {i: c.status.value for i, c in checks.items()} == {
        "transport.connect": "ok",
        "transport.starttls": "ok",
        "transport.auth": "ok",
        "transport.size": "ok",
    }
    assert "220" in checks["transport.connect"].message and "Harvest test relay" in checks["transport.connect"].message
    assert "on this machine" in checks["transport.starttls"].message
    assert "33.6 MB" in checks["transport.size"].message  # aiosmtpd's default SIZE


def test_starttls_required_but_not_offered(project: Path) -> None:
    with smtp_server(RecordingHandler()) as server:
        checks = probe(project, server.url(tls="starttls"))
    assert checks["transport.connect"].status is Status.OK
    assert (
        checks["transport.starttls"].status is Status.FAIL
        and "does not offer STARTTLS" in checks["transport.starttls"].message
    )
    assert "transport.certificate" not in checks


def test_a_self_signed_certificate_is_reported_invalid(project: Path, certificate: Certificate) -> None:
    with smtp_server(RecordingHandler(), tls="starttls", certificate=certificate) as server:
        untrusted = probe(project, server.url())
        trusted = probe(project, server.url(cafile=str(certificate.cert)))
        lenient = probe(project, server.url(verify="false"))
    assert untrusted["transport.starttls"].status is Status.OK
    cert = untrusted["transport.certificate"]
    assert cert.status is Status.FAIL and "self-signed" in cert.message and "cafile" in cert.fix
    assert trusted["transport.certificate"].status is Status.OK and "valid" in trusted["transport.certificate"].message
    assert lenient["transport.certificate"].status is Status.WARN  # sends work, but anyone could intercept
    # The checks go on after a bad certificate: AUTH and SIZE are still reported.
    assert untrusted["transport.size"].status is Status.OK


def test_a_certificate_about_to_expire_is_a_warning(project: Path, tmp_path: Path) -> None:
    soon = make_certificate(tmp_path, days=2)
    with smtp_server(RecordingHandler(), tls="starttls", certificate=soon) as server:
        checks = probe(project, server.url(cafile=str(soon.cert)))
    assert (
        checks["transport.certificate"].status is Status.WARN and "expires" in checks["transport.certificate"].message
    )


def test_implicit_tls_with_a_self_signed_certificate(project: Path, certificate: Certificate) -> None:
    with smtp_server(RecordingHandler(), tls="implicit", certificate=certificate) as server:
        checks = probe(project, server.url())
    assert checks["transport.certificate"].status is Status.FAIL
    assert checks["transport.connect"].status is Status.OK and checks["transport.starttls"].status is Status.OK


@pytest.fixture
def auth_server(certificate: Certificate) -> RunningServer:
    authenticator = password_authenticator(USER, PASSWORD)
    with smtp_server(
        RecordingHandler(), tls="starttls", certificate=certificate, authenticator=authenticator, auth_required=True
    ) as server:
        yield server  # type: ignore[misc]


def test_auth_offered_and_the_login_works(project: Path, certificate: Certificate, auth_server: RunningServer) -> None:
    url = auth_server.url(USER, cafile=str(certificate.cert))
    checks = probe(project, url, smtp_password=PASSWORD)
    assert checks["transport.auth"].status is Status.OK and "logged in" in checks["transport.auth"].message
    wrong = probe(project, url, smtp_password="not-" + PASSWORD)
    assert wrong["transport.auth"].status is Status.FAIL and "535" in wrong["transport.auth"].message
    assert PASSWORD not in json.dumps([c.as_dict() for c in wrong.values()])
    missing = probe(project, url)
    assert (
        missing["transport.auth"].status is Status.FAIL
        and "NEWSLETTER_SMTP_PASSWORD" in missing["transport.auth"].message
    )


def test_a_user_configured_but_no_auth_offered(project: Path) -> None:
    with smtp_server(RecordingHandler()) as server:
        checks = probe(project, server.url(USER), smtp_password=PASSWORD)
    assert checks["transport.auth"].status is Status.FAIL and "offers no AUTH" in checks["transport.auth"].message


def test_no_user_and_the_relay_offers_auth(project: Path) -> None:
    authenticator = password_authenticator(USER, PASSWORD)
    with smtp_server(RecordingHandler(), authenticator=authenticator, auth_require_tls=False) as server:
        checks = probe(project, server.url())
    assert checks["transport.auth"].status is Status.OK and "offers AUTH" in checks["transport.auth"].message


def test_the_size_limit_against_the_largest_message(project: Path) -> None:
    with smtp_server(RecordingHandler(), data_size_limit=50_000) as server:
        fits = probe(project, server.url(), largest=20_000)
        too_big = probe(project, server.url(), largest=60_000)
    assert fits["transport.size"].status is Status.OK and "50 KB" in fits["transport.size"].message
    assert too_big["transport.size"].status is Status.FAIL and "60 KB" in too_big["transport.size"].message


def test_a_relay_that_cannot_be_reached(project: Path) -> None:
    with stalled_server() as (host, port):
        stalled = probe(project, f"smtp://{host}:{port}?tls=none&timeout=1")
    assert list(stalled) == ["transport.connect"] and stalled["transport.connect"].status is Status.FAIL
    with smtp_server(RecordingHandler()) as server:
        closed_port = server.port
    refused = probe(project, f"smtp://127.0.0.1:{closed_port}?tls=none")
    assert refused["transport.connect"].status is Status.FAIL and "port" in refused["transport.connect"].fix


def test_a_transport_that_is_not_smtp(project: Path) -> None:
    checks = probe(project, "file:outbox/")
    assert checks["transport.connect"].status is Status.WARN and "nothing leaves" in checks["transport.connect"].message


def test_nothing_is_sent_without_send_test(newsletter: Newsletter, project: Path) -> None:
    handler = RecordingHandler()
    with smtp_server(handler) as server:
        result = newsletter("doctor", "--json", env={"NEWSLETTER_TRANSPORT": server.url()})
        assert server.connections == 1  # the probe, and nothing else
    assert handler.received == []
    ids = [c["id"] for c in json.loads(result.output)["checks"]]
    assert "transport.connect" in ids and "transport.send_test" not in ids


def test_send_test_sends_one_signed_message(newsletter: Newsletter, tmp_path: Path) -> None:
    key, public = rsa_key(tmp_path, 2048)
    handler = RecordingHandler()
    env = {
        "NEWSLETTER_BOUNCE_ADDRESS": "bounces@harvest.example",
        "NEWSLETTER_DKIM_KEY_PATH": str(key),
        "NEWSLETTER_DKIM_SELECTOR": "s1",
    }
    with smtp_server(handler) as server:
        env["NEWSLETTER_TRANSPORT"] = server.url()
        result = newsletter("doctor", "--json", "--send-test", "staff@example.org", env=env)
    checks = {c["id"]: c for c in json.loads(result.output)["checks"]}
    assert checks["transport.send_test"]["status"] == "ok", checks["transport.send_test"]
    assert "staff@example.org" in checks["transport.send_test"]["message"]
    [received] = handler.received
    assert received.recipients == ["staff@example.org"] and received.sender == "bounces@harvest.example"
    assert received.data.startswith(b"DKIM-Signature:") and b"d=harvest.example" in received.data
    assert b"Subject: Test message from newsletter doctor" in received.data
    record = f"v=DKIM1; k=rsa; p={public}".encode()
    assert dkim.verify(received.data, dnsfunc=lambda name, timeout=5: record) is True


def test_send_test_to_a_bad_address_is_a_one_line_error(newsletter: Newsletter) -> None:
    result = newsletter("doctor", "--send-test", "not an address")
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "Traceback" not in result.output


def test_a_refused_send_test_is_a_failed_check(newsletter: Newsletter) -> None:
    handler = RecordingHandler(rcpt_replies={"staff@example.org": "550 5.7.1 Relaying denied"})
    with smtp_server(handler) as server:
        result = newsletter(
            "doctor", "--json", "--send-test", "staff@example.org", env={"NEWSLETTER_TRANSPORT": server.url()}
        )
    assert result.exit_code == 1
    check = next(c for c in json.loads(result.output)["checks"] if c["id"] == "transport.send_test")
    assert check["status"] == "fail" and "550" in check["message"]


def test_settings_for_the_relay_come_from_the_url(project: Path) -> None:
    # A malformed URL is one failed check, not a crash.
    checks = probe(project, "smtp://relay.example:587?tls=sometimes")
    assert checks["transport.connect"].status is Status.FAIL and "tls" in checks["transport.connect"].message
