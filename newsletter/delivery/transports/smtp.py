"""SMTP and SMTPS, on :mod:`smtplib`: one connection reused for many messages.

URLs::

    smtp://[user@]host[:port][?tls=starttls|none]      port 587 by default; STARTTLS unless tls=none
    smtps://[user@]host[:port]                          port 465 by default; TLS from the first byte

Options: ``timeout`` (seconds, default 30), ``cafile`` (trust this CA or self-signed certificate;
relative to the project folder), ``verify`` (``false`` skips certificate checks),
``local_hostname`` (the name sent in EHLO). With a user name, the password comes from
NEWSLETTER_SMTP_PASSWORD (``TransportContext.password``), never from the URL.

Each message is one MAIL/RCPT/DATA transaction on the open connection. If the connection turns
out to be gone before any of the message was sent (typically the server's idle timeout), the
transport reconnects once and carries on. A drop while the message is being sent is a
:class:`TemporaryFailure` (without the final "." no server delivers it); a drop after the whole
message went out but before the server's reply is :class:`ConnectionLost`, because the outcome is
unknown. Either way the connection is discarded and the next ``send`` reconnects.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import urllib.parse
from pathlib import Path
from typing import Literal, Self

from newsletter.delivery.transports.base import (
    ConnectionLost,
    OutgoingMessage,
    SendResult,
    TemporaryFailure,
    Transport,
    TransportConfigError,
    TransportContext,
    TransportError,
    query_options,
    refuse_password,
    safe_url,
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
from newsletter.delivery.transports.smtp_pipeline import SMTPConnection

TLSMode = Literal["starttls", "none", "implicit"]
DEFAULT_PORTS = {"starttls": 587, "none": 587, "implicit": 465}
DEFAULT_TIMEOUT = 30.0
_OPTIONS = frozenset({"tls", "timeout", "cafile", "verify", "local_hostname"})
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class SMTPTransport(Transport):
    """Delivers over one SMTP connection, reconnecting after a drop. One instance per thread."""

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        tls: TLSMode = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        cafile: Path | None = None,
        verify: bool = True,
        local_hostname: str | None = None,
    ) -> None:
        if tls not in DEFAULT_PORTS:
            raise TransportConfigError(f"SMTP tls must be starttls, none or implicit, not {tls!r}")
        self.host = host
        self.port = port or DEFAULT_PORTS[tls]
        self.tls = tls
        self.username = username
        self._password = password
        self.timeout = timeout
        self.cafile = cafile
        self.verify = verify
        self.local_hostname = local_hostname
        if username and not password:
            raise TransportConfigError(
                f"{self.describe()} names user {username!r} but NEWSLETTER_SMTP_PASSWORD is not set"
            )
        if tls == "none" and (cafile is not None or not verify):
            raise TransportConfigError(f"{self.describe()}: cafile and verify only apply to TLS")
        self._ssl_context = self._make_ssl_context() if tls != "none" else None
        self._smtp: smtplib.SMTP | None = None
        self._eightbit = self._smtputf8 = self._pipelining = False

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult, context: TransportContext) -> Self:
        refuse_password(url)
        where = safe_url(url)
        if url.scheme not in ("smtp", "smtps"):
            raise TransportConfigError(f"{where}: SMTPTransport handles smtp:// and smtps:// only")
        options = query_options(url, _OPTIONS)
        if url.path not in ("", "/") or url.fragment:
            raise TransportConfigError(f"{where}: an SMTP URL has no path; expected smtp://[user@]host[:port]")
        if not url.hostname:
            raise TransportConfigError(f"{where}: no host name")
        tls = options.get("tls", "starttls")
        if url.scheme == "smtps":
            if "tls" in options:
                raise TransportConfigError(f"{where}: smtps:// always uses implicit TLS; drop the tls option")
            tls = "implicit"
        elif tls not in ("starttls", "none"):
            raise TransportConfigError(f"{where}: tls must be starttls or none, not {tls!r}")
        try:
            timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
            if not timeout > 0:
                raise ValueError
        except ValueError:
            raise TransportConfigError(f"{where}: timeout must be a positive number of seconds") from None
        verify = _BOOLEANS.get(options.get("verify", "true").lower())
        if verify is None:
            raise TransportConfigError(f"{where}: verify must be true or false")
        cafile = None
        if "cafile" in options:
            cafile = Path(options["cafile"]).expanduser()
            cafile = cafile if cafile.is_absolute() else context.base_dir / cafile
        username = urllib.parse.unquote(url.username) if url.username else None
        return cls(
            url.hostname,
            url.port,
            tls=tls,  # type: ignore[arg-type] # checked above
            username=username,
            password=context.password if username else None,
            timeout=timeout,
            cafile=cafile,
            verify=verify,
            local_hostname=options.get("local_hostname") or None,
        )

    def describe(self) -> str:
        user = urllib.parse.quote(self.username, safe="") + "@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        query: dict[str, str] = {"tls": self.tls} if self.tls != "implicit" else {}
        if self.timeout != DEFAULT_TIMEOUT:
            query["timeout"] = f"{self.timeout:g}"
        if self.cafile is not None:
            query["cafile"] = str(self.cafile)
        if not self.verify:
            query["verify"] = "false"
        if self.local_hostname:
            query["local_hostname"] = self.local_hostname
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        encoded = f"?{urllib.parse.urlencode(query, safe='/')}" if query else ""
        return f"{scheme}://{user}{host}:{self.port}{encoded}"

    def _make_ssl_context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        except (OSError, ssl.SSLError) as exc:
            raise TransportConfigError(f"{self.describe()}: cannot load cafile: {exc}") from exc
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def connection(self) -> SMTPConnection:
        """A connection with these settings for the delivery engine's event loop."""
        return SMTPConnection(self)

    def _open(self) -> None:
        self._connect()

    def _close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass  # saying goodbye is a courtesy; the socket is closed either way
            finally:
                smtp.close()

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _connect(self) -> smtplib.SMTP:
        where = self.describe()
        try:
            if self.tls == "implicit":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    self.local_hostname or local_hostname(),
                    timeout=self.timeout,
                    context=self._ssl_context,
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, self.local_hostname or local_hostname(), timeout=self.timeout)
        except ssl.SSLCertVerificationError as exc:
            raise untrusted(where, exc) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(None, f"cannot connect to {where}: {_reason(exc)}") from exc
        try:
            self._handshake(smtp, where)
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def _handshake(self, smtp: smtplib.SMTP, where: str) -> None:
        try:
            # Each command goes out in one write; Nagle would only delay it waiting for an ACK.
            assert smtp.sock is not None  # the constructor connected
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            smtp.ehlo_or_helo_if_needed()
            if self.tls == "starttls":
                if not smtp.has_extn("starttls"):
                    raise TransportConfigError(
                        f"{where}: the server does not offer STARTTLS (use tls=none only on a trusted network)"
                    )
                smtp.starttls(context=self._ssl_context)
                smtp.ehlo()
            if self.username:
                self._login(smtp, where)
        except ssl.SSLCertVerificationError as exc:
            raise untrusted(where, exc) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(None, f"cannot connect to {where}: {_reason(exc)}") from exc
        self._eightbit = smtp.has_extn("8bitmime")
        self._pipelining = smtp.has_extn("pipelining")
        self._smtputf8 = smtp.has_extn("smtputf8")
        if self._smtputf8:
            smtp.command_encoding = "utf-8"  # lets MAIL/RCPT carry internationalised addresses

    def _login(self, smtp: smtplib.SMTP, where: str) -> None:
        try:
            smtp.login(self.username or "", self._password or "")
        except smtplib.SMTPAuthenticationError as exc:
            if exc.smtp_code < 500:
                raise TemporaryFailure(exc.smtp_code, f"login refused: {reply_text(exc.smtp_error)}") from exc
            raise TransportConfigError(
                f"{where} refused the login of {self.username!r} ({exc.smtp_code} {reply_text(exc.smtp_error)}); "
                "check the user name and NEWSLETTER_SMTP_PASSWORD"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise TransportConfigError(f"{where}: the server does not offer AUTH ({exc})") from exc
        except smtplib.SMTPException as exc:
            if type(exc) is not smtplib.SMTPException:
                raise  # a dropped connection or odd reply: the caller's to report
            # smtplib's own complaint: no AUTH mechanism it knows is offered
            raise TransportConfigError(f"{where}: cannot log in ({exc})") from exc

    def _send(self, message: OutgoingMessage) -> SendResult:
        if self._smtp is not None:
            try:
                return self._transaction(self._smtp, message, stale_ok=True)
            except NotSent:
                pass  # the kept-open connection had gone stale (idle timeout); nothing was sent
        return self._transaction(self._connect(), message, stale_ok=False)

    def _envelope(self, smtp: smtplib.SMTP, message: OutgoingMessage) -> list[tuple[str, int, bytes]]:
        """MAIL, RCPT and DATA with their replies; stops at the first refusal.

        With PIPELINING (RFC 2920) the three commands go out in one write and the replies are read
        in order: one round trip instead of three, which is most of the time a message takes.
        """
        commands = envelope(message, eightbit=self._eightbit, smtputf8=self._smtputf8, where=self.describe())
        if not self._pipelining:
            replies = []
            for command, expected in zip(commands, EXPECTED_REPLIES, strict=True):
                code, reply = smtp.docmd(command)
                replies.append((command, code, reply))
                if code not in expected:
                    break
            return replies
        smtp.send("".join(f"{command}\r\n" for command in commands))
        replies = [(command, *smtp.getreply()) for command in commands]
        if replies[-1][1] == 354 and any(
            code not in ok for (_, code, _), ok in zip(replies, EXPECTED_REPLIES, strict=True)
        ):
            # A refused recipient but an accepted DATA (a non-conforming server): end the empty
            # message at once, so the connection stays in step.
            smtp.send(".\r\n")
            smtp.getreply()
        return replies

    def _transaction(self, smtp: smtplib.SMTP, message: OutgoingMessage, *, stale_ok: bool) -> SendResult:
        try:
            for (command, code, reply), expected in zip(self._envelope(smtp, message), EXPECTED_REPLIES, strict=False):
                if code == 421 and stale_ok:
                    raise NotSent(reply_text(reply))
                if code not in expected:
                    raise self._refused(smtp, code, command, reply)
        except (smtplib.SMTPException, OSError) as exc:
            self._discard()
            if stale_ok:
                raise NotSent(_reason(exc)) from exc
            raise TemporaryFailure(None, f"connection to {self.describe()} lost: {_reason(exc)}") from exc
        except NotSent:
            self._discard()
            raise
        try:
            smtp.send(message.wire or wire_form(message.data))
        except (smtplib.SMTPException, OSError) as exc:
            # The final "." never left: the server cannot have accepted the message.
            self._discard()
            raise TemporaryFailure(None, f"connection to {self.describe()} lost: {_reason(exc)}") from exc
        try:
            code, reply = smtp.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self._discard()
            raise ConnectionLost(
                None,
                f"connection to {self.describe()} lost before the server confirmed the message: {_reason(exc)}",
            ) from exc
        if code != 250:
            if code == 421:
                self._discard()
            raise failure(code, f"message refused: {reply_text(reply)}")
        return SendResult(message.message_id, code, reply_text(reply))

    def _refused(self, smtp: smtplib.SMTP, code: int, command: str, reply: bytes) -> TransportError:
        """The failure for a refused command, after RSET so the connection can carry on."""
        if code == 421:
            self._discard()
        else:
            try:
                smtp.rset()
            except (smtplib.SMTPException, OSError):
                self._discard()
        return failure(code, f"{command} refused: {reply_text(reply)}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {reply_text(exc.smtp_error)}"
    return str(exc) or type(exc).__name__
