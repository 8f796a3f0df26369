"""The mail relay named by the ``transport`` setting, probed the way a send would use it.

Connect and EHLO (reporting the banner), STARTTLS with a certificate that verifies when
``tls=starttls``, AUTH when a user is configured (logging in, which sends nothing), and the SIZE
limit against the largest campaign message. No mail is sent here; :func:`send_test_message` sends
one only when asked (``newsletter doctor --send-test ADDRESS``).
"""

from __future__ import annotations

import email.policy
import secrets
import smtplib
import ssl
import time
import urllib.parse
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from newsletter.config import Settings, is_loopback
from newsletter.delivery.dkim import dkim_signer
from newsletter.delivery.headers import check_address, clean_header_value, format_address
from newsletter.delivery.transports import (
    OutgoingMessage,
    TransportContext,
    TransportError,
    transport_factory,
)
from newsletter.delivery.transports.smtp import SMTPTransport
from newsletter.doctor.report import Check, Deadline, fail, ok, warn
from newsletter.errors import NewsletterError

STEP_TIMEOUT = 10.0  # seconds for any one exchange with the relay
EXPIRY_WARNING_DAYS = 14
# SMTPTransport refuses a user name without a password; the doctor still wants to connect and
# report the missing password as a finding, and it never logs in with this stand-in.
_NO_PASSWORD = "\0"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} KB"


def _contexts(relay: SMTPTransport) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A context that verifies (the truth about the certificate) and one that does not (to carry on)."""
    verifying = ssl.create_default_context(cafile=str(relay.cafile) if relay.cafile else None)
    lenient = ssl.create_default_context()
    lenient.check_hostname = False
    lenient.verify_mode = ssl.CERT_NONE
    return verifying, lenient


class _Greeted(smtplib.SMTP):
    """smtplib.SMTP keeping the server's greeting (220 and its banner), which the constructor drops."""

    greeting = ""

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> tuple[int, bytes]:
        code, message = super().connect(host, port, source_address)
        self.greeting = f"{code} {_text(message)}"
        return code, message


class _GreetedSSL(_Greeted, smtplib.SMTP_SSL):
    pass


class _Probe:
    """One conversation with the relay; ``step`` names the check a failure belongs to."""

    def __init__(self, relay: SMTPTransport, settings: Settings, deadline: Deadline) -> None:
        self.relay = relay
        self.settings = settings
        self.deadline = deadline
        self.where = relay.describe()
        self.step = "transport.connect"
        self.verifying, self.lenient = _contexts(relay)
        self.smtp: smtplib.SMTP | None = None
        self.certificate: Check | None = None
        self.encrypted = False

    def timeout(self) -> float:
        seconds = self.deadline.cap(min(self.relay.timeout, STEP_TIMEOUT))
        if seconds <= 0:
            raise TimeoutError("the doctor ran out of time")
        if self.smtp is not None and self.smtp.sock is not None:
            self.smtp.sock.settimeout(seconds)
        return seconds

    def connect(self, context: ssl.SSLContext | None) -> str:
        """Connect (TLS first for smtps://) and return the server's greeting."""
        relay = self.relay
        if relay.tls == "implicit":
            smtp: _Greeted = _GreetedSSL(
                relay.host, relay.port, local_hostname=relay.local_hostname, timeout=self.timeout(), context=context
            )
        else:
            smtp = _Greeted(relay.host, relay.port, local_hostname=relay.local_hostname, timeout=self.timeout())
        self.smtp = smtp
        return smtp.greeting

    def certificate_problem(self, exc: ssl.SSLCertVerificationError) -> Check:
        message = f"The TLS certificate of {self.relay.host} is not valid: {exc.verify_message}."
        fix = (
            f"Give the relay a certificate from a public CA that names {self.relay.host}, or trust its CA "
            "with cafile=PATH in the transport URL."
        )
        if self.relay.verify:
            return fail("transport.certificate", message + " Sends will be refused.", fix)
        return warn("transport.certificate", message + " verify=false sends anyway, open to interception.", fix)

    def certificate_ok(self) -> Check:
        assert self.smtp is not None and self.smtp.sock is not None
        peer = self.smtp.sock.getpeercert() if isinstance(self.smtp.sock, ssl.SSLSocket) else None
        expires = ssl.cert_time_to_seconds(str(peer["notAfter"])) if peer and "notAfter" in peer else None
        if expires is not None and expires - time.time() < EXPIRY_WARNING_DAYS * 86400:
            return warn(
                "transport.certificate",
                f"The TLS certificate of {self.relay.host} expires on {time.strftime('%Y-%m-%d', time.gmtime(expires))}.",
                "Have the relay's certificate renewed before then.",
            )
        return ok("transport.certificate", f"The TLS certificate of {self.relay.host} is valid.")

    def tls_handshake(self) -> None:
        """STARTTLS with a verifying context; if the certificate fails, note it and go on without checks."""
        assert self.smtp is not None
        try:
            self.smtp.starttls(context=self.verifying)
            self.certificate = self.certificate_ok()
        except ssl.SSLCertVerificationError as exc:
            self.certificate = self.certificate_problem(exc)
            self.smtp.close()
            self.connect(None)
            assert self.smtp is not None
            self.smtp.ehlo()
            self.timeout()
            self.smtp.starttls(context=self.lenient)
        self.encrypted = True
        self.timeout()
        self.smtp.ehlo()

    def run(self, largest_message: int) -> list[Check]:
        checks: list[Check] = []
        try:
            checks += self._conversation(largest_message)
        except (OSError, smtplib.SMTPException) as exc:
            reason = (
                f"{exc.smtp_code} {_text(exc.smtp_error)}"
                if isinstance(exc, smtplib.SMTPResponseException)
                else (str(exc) or type(exc).__name__)
            )
            checks.append(
                fail(
                    self.step,
                    f"{self.where}: {reason}.",
                    "Check the host and port of the transport setting and that this machine may reach the relay "
                    "(many networks block port 25; relays take mail on 587 with STARTTLS or 465 with TLS).",
                )
            )
        finally:
            if self.smtp is not None:
                try:
                    self.smtp.quit()
                except (OSError, smtplib.SMTPException):
                    self.smtp.close()
        if self.certificate is not None and all(c.id != "transport.certificate" for c in checks):
            checks.insert(min(len(checks), 2), self.certificate)
        return checks

    def _conversation(self, largest_message: int) -> list[Check]:
        relay = self.relay
        if relay.tls == "implicit":
            self.step = "transport.certificate"
            try:
                greeting = self.connect(self.verifying)
                self.certificate = self.certificate_ok()
            except ssl.SSLCertVerificationError as exc:
                self.certificate = self.certificate_problem(exc)
                greeting = self.connect(self.lenient)
            self.encrypted = True
            self.step = "transport.connect"
        else:
            greeting = self.connect(None)
        assert self.smtp is not None
        self.timeout()
        ehlo_code, _ = self.smtp.ehlo()
        if ehlo_code != 250:
            return [
                fail(
                    "transport.connect",
                    f"{self.where} answered {greeting}, but refused EHLO ({ehlo_code}).",
                    "Use a relay that speaks ESMTP (every current one does); check local_hostname.",
                )
            ]
        checks = [ok("transport.connect", f"{self.where} answered {greeting}; EHLO accepted.")]
        self.step = "transport.starttls"
        checks.append(self._starttls())
        self.step = "transport.auth"
        checks.append(self._auth())
        self.step = "transport.size"
        checks.append(self._size(largest_message))
        return checks

    def _starttls(self) -> Check:
        assert self.smtp is not None
        offered = self.smtp.has_extn("starttls")
        if self.relay.tls == "implicit":
            return ok("transport.starttls", "TLS from the first byte (smtps://); STARTTLS is not needed.")
        if self.relay.tls == "none":
            if is_loopback(self.relay.host):
                return ok("transport.starttls", "tls=none to a relay on this machine: nothing crosses a network.")
            return warn(
                "transport.starttls",
                f"tls=none: messages (and any password) travel to {self.relay.host} unencrypted"
                + (", though it offers STARTTLS." if offered else "."),
                "Use tls=starttls (the default for smtp://) or smtps://.",
            )
        if not offered:
            return fail(
                "transport.starttls",
                f"{self.where} does not offer STARTTLS, so every send would be refused (tls=starttls).",
                "Use the relay's submission port (587), or smtps:// on port 465.",
            )
        self.tls_handshake()
        return ok("transport.starttls", "STARTTLS offered and working.")

    def _auth(self) -> Check:
        assert self.smtp is not None
        mechanisms = " ".join(self.smtp.esmtp_features.get("auth", "").split())
        user = self.relay.username
        if not user:
            if mechanisms:
                return ok(
                    "transport.auth",
                    f"No user configured; the relay offers AUTH ({mechanisms}). If it refuses to relay, add user@ "
                    "to the transport URL.",
                )
            return ok("transport.auth", "No user configured, and the relay offers no AUTH.")
        if not mechanisms:
            return fail(
                "transport.auth",
                f"User {user!r} is configured, but {self.where} offers no AUTH"
                + ("." if self.encrypted else " (many relays offer it only after STARTTLS)."),
                "Use the relay's submission port (587 with STARTTLS, or smtps:// on 465).",
            )
        if not self.settings.smtp_password:
            return fail(
                "transport.auth",
                f"The relay offers AUTH ({mechanisms}) but NEWSLETTER_SMTP_PASSWORD is not set.",
                "Set NEWSLETTER_SMTP_PASSWORD in the environment.",
            )
        if not (self.encrypted or is_loopback(self.relay.host)):
            return warn(
                "transport.auth",
                f"The relay offers AUTH ({mechanisms}); not logging in, because the password would travel unencrypted.",
                "Use tls=starttls or smtps://.",
            )
        self.timeout()
        try:
            self.smtp.login(user, self.settings.smtp_password)
        except smtplib.SMTPAuthenticationError as exc:
            return fail(
                "transport.auth",
                f"The relay refused the login of {user!r}: {exc.smtp_code} {_text(exc.smtp_error)}.",
                "Check the user name in the transport URL and NEWSLETTER_SMTP_PASSWORD.",
            )
        except smtplib.SMTPException as exc:
            if type(exc) is not smtplib.SMTPException:
                raise
            return fail("transport.auth", f"Cannot log in: {exc}.", "Ask the relay's operator which AUTH to use.")
        return ok("transport.auth", f"AUTH offered ({mechanisms}); logged in as {user!r}.")

    def _size(self, largest_message: int) -> Check:
        assert self.smtp is not None
        limit = self.smtp.esmtp_features.get("size", "").strip()
        largest = f"; the largest campaign message is {_size(largest_message)}" if largest_message else ""
        if not limit.isdigit() or int(limit) == 0:
            return ok("transport.size", f"The relay states no size limit{largest}.")
        if largest_message > int(limit):
            return fail(
                "transport.size",
                f"The relay takes messages up to {_size(int(limit))}{largest}.",
                "Shorten the campaign, or ask the relay's operator for a larger limit.",
            )
        return ok("transport.size", f"The relay takes messages up to {_size(int(limit))}{largest}.")


def transport_checks(settings: Settings, deadline: Deadline, *, largest_message: int = 0) -> list[Check]:
    """Probe the relay the ``transport`` setting names; one check for a transport that is not SMTP."""
    url = urllib.parse.urlsplit(settings.transport)
    if url.scheme.lower() not in ("smtp", "smtps"):
        return [
            warn(
                "transport.connect",
                f"The transport is {url.scheme or settings.transport}:, not a mail server: nothing leaves this machine.",
                "Set transport to your relay, e.g. smtp://user@smtp.relay.example:587?tls=starttls.",
            )
        ]
    try:
        relay = SMTPTransport.from_url(
            url, TransportContext(settings.project_dir, settings.smtp_password or _NO_PASSWORD)
        )
    except (NewsletterError, ValueError) as exc:
        return [fail("transport.connect", f"The transport setting cannot be used: {exc}", "Fix the transport URL.")]
    return _Probe(relay, settings, deadline).run(largest_message)


def envelope_sender(settings: Settings) -> str:
    return settings.bounce_address or settings.from_address


def build_test_message(settings: Settings, recipient: str) -> OutgoingMessage:
    """A short message that shows, where it lands, how SPF, DKIM and DMARC judged our mail."""
    from_address, domain = check_address(settings.from_address)
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = format_address(settings.organisation, from_address)
    message["To"] = format_address("", recipient)
    message["Subject"] = clean_header_value(f"Test message from newsletter doctor ({settings.organisation})")
    message["Date"] = format_datetime(datetime.now(UTC))
    message_id = f"<doctor.{int(time.time())}.{secrets.token_hex(8)}@{domain}>"
    message["Message-ID"] = message_id
    message.set_content(
        f"This message was sent by `newsletter doctor --send-test` to check how mail from {from_address} "
        'arrives.\n\nOpen its headers ("Show original" in Gmail): Authentication-Results should show '
        "spf=pass, dkim=pass and dmarc=pass.\n"
    )
    data = message.as_bytes()
    signer = dkim_signer(settings, domain)
    if signer is not None:
        data = signer(data)
    return OutgoingMessage(envelope_sender(settings), recipient, data, message_id)


def send_test_message(settings: Settings, recipient: str) -> Check:
    """Send :func:`build_test_message` to ``recipient`` through the ``transport`` setting's transport; the
    outcome as a check."""
    try:
        message = build_test_message(settings, recipient)
        with transport_factory(settings)() as opened:
            result = opened.send(message)
            where = opened.describe()
    except (TransportError, NewsletterError) as exc:
        return fail(
            "transport.send_test",
            f"The test message to {recipient} was not sent: {exc}",
            "Fix what the transport checks above report.",
        )
    reply = f" ({result.code} {result.text})" if result.code else ""
    return ok(
        "transport.send_test",
        f"Sent a test message to {recipient} through {where}{reply}. Where it arrives, its Authentication-Results "
        "header should show spf=pass, dkim=pass and dmarc=pass.",
    )
