"""Polling the bounce mailbox over IMAP (imapclient): read, ingest, and file away what was recognised.

The ``bounce_mailbox`` setting is a URL::

    imaps://USER@HOST[:993]/FOLDER                     TLS from the first byte (the usual choice)
    imap://USER@HOST[:143]/FOLDER[?tls=starttls|none]   STARTTLS by default; tls=none only on a trusted host

FOLDER defaults to ``INBOX``. Options: ``timeout`` (seconds), ``cafile`` (trust this CA). The
password comes only from NEWSLETTER_IMAP_PASSWORD.

What a fetch does:

- Reads every message in the folder with ``BODY.PEEK[]``, so nothing is marked as read, a hundred at
  a time; each batch is ingested and committed before anything moves.
- Moves the recognised ones (delivery reports, complaints, auto-replies, and those seen before) to
  ``bounce_processed_folder`` (default ``Processed``, created if missing), with IMAP MOVE (RFC 6851).
- Leaves everything else where it was, unread: a person's "please remove me", an unrelated message.
  Nothing is ever deleted.
"""

from __future__ import annotations

import ssl
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imapclient
from imapclient.exceptions import CapabilityError, IMAPClientError, LoginError

from newsletter.config import Settings
from newsletter.delivery.transports.base import TransportConfigError, query_options, safe_url
from newsletter.errors import ConfigError, NewsletterError
from newsletter.feedback.ingest import Ingestor, IngestReport
from newsletter.store.engine import Store

FETCH_BATCH = 100
DEFAULT_TIMEOUT = 60.0
_PORTS = {"implicit": 993, "starttls": 143, "none": 143}


class MailboxError(NewsletterError):
    """The bounce mailbox cannot be reached, logged into or read."""


@dataclass(frozen=True)
class MailboxURL:
    host: str
    port: int
    tls: str  # implicit, starttls or none
    username: str
    folder: str
    timeout: float = DEFAULT_TIMEOUT
    cafile: Path | None = None

    @classmethod
    def parse(cls, url: str, settings: Settings) -> MailboxURL:
        parts = urllib.parse.urlsplit(url)
        shown = f"bounce_mailbox {parts._replace(netloc=parts.hostname or '', query='').geturl()!r}"
        if parts.scheme not in ("imap", "imaps"):
            raise ConfigError(f"{shown}: expected imaps://user@host/FOLDER or imap://user@host/FOLDER")
        if parts.password is not None:
            raise ConfigError(f"{shown}: no password in the URL; set NEWSLETTER_IMAP_PASSWORD instead")
        if not parts.hostname or not parts.username:
            raise ConfigError(f"{shown}: needs a user and a host, e.g. imaps://bounces@mail.example.org/INBOX")
        try:
            options = query_options(parts, ("tls", "timeout", "cafile"))
        except TransportConfigError as exc:
            # The same refusals as a transport URL's (unknown or repeated options), worded for this setting.
            raise ConfigError(f"{shown}: {str(exc).removeprefix(f'{safe_url(parts)}: ')}") from None
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"{shown}: malformed port") from None
        tls = "implicit" if parts.scheme == "imaps" else options.get("tls", "starttls")
        if tls not in _PORTS or (parts.scheme == "imaps" and "tls" in options):
            raise ConfigError(f"{shown}: tls must be starttls or none (imaps:// is always TLS)")
        try:
            timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
            if not timeout > 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"{shown}: timeout must be a positive number of seconds") from None
        cafile = settings.resolve_path(options["cafile"]) if "cafile" in options else None
        folder = urllib.parse.unquote(parts.path.strip("/")) or "INBOX"
        return cls(
            parts.hostname, port or _PORTS[tls], tls, urllib.parse.unquote(parts.username), folder, timeout, cafile
        )

    def describe(self) -> str:
        scheme = "imaps" if self.tls == "implicit" else "imap"
        return f"{scheme}://{self.username}@{self.host}:{self.port}/{self.folder}"


@dataclass
class FetchReport:
    mailbox: str
    ingested: IngestReport
    moved: int = 0
    left: list[int] = field(default_factory=list)  # UIDs left in place: not recognised, or not readable

    def as_dict(self) -> dict[str, Any]:
        return {"mailbox": self.mailbox, **self.ingested.as_dict(), "moved": self.moved, "left": len(self.left)}


def connect(mailbox: MailboxURL, password: str) -> imapclient.IMAPClient:
    """A logged-in client; every failure is a :class:`MailboxError` with one line to say why."""
    where = mailbox.describe()
    context = None
    if mailbox.tls != "none":
        try:
            context = ssl.create_default_context(cafile=str(mailbox.cafile) if mailbox.cafile else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"bounce_mailbox: cannot load cafile: {exc}") from exc
    try:
        client = imapclient.IMAPClient(
            mailbox.host, mailbox.port, ssl=mailbox.tls == "implicit", ssl_context=context, timeout=mailbox.timeout
        )
    except ssl.SSLCertVerificationError as exc:
        raise MailboxError(f"{where}: the server's certificate is not trusted ({exc.verify_message})") from exc
    except (OSError, IMAPClientError) as exc:
        raise MailboxError(f"cannot reach {where}: {exc}") from exc
    try:
        if mailbox.tls == "starttls":
            client.starttls(context)
        client.login(mailbox.username, password)
    except LoginError as exc:
        client.shutdown()
        raise MailboxError(
            f"{where} refused the login of {mailbox.username!r}; check NEWSLETTER_IMAP_PASSWORD"
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        client.shutdown()
        raise MailboxError(f"{where}: the server's certificate is not trusted ({exc.verify_message})") from exc
    except (OSError, IMAPClientError) as exc:
        client.shutdown()
        raise MailboxError(f"{where}: {exc}") from exc
    return client


def fetch(store: Store, settings: Settings) -> FetchReport:
    """Read the bounce mailbox, ingest what is there, and move what was recognised."""
    if not settings.bounce_mailbox:
        raise ConfigError("bounce_mailbox is not set, e.g. imaps://bounces@mail.harvest.example/INBOX")
    mailbox = MailboxURL.parse(settings.bounce_mailbox, settings)
    if not settings.imap_password:
        raise ConfigError(f"NEWSLETTER_IMAP_PASSWORD is not set; it is the password of {mailbox.describe()}")
    ingestor = Ingestor(store, settings)
    processed = settings.bounce_processed_folder
    report = FetchReport(mailbox.describe(), IngestReport())
    client = connect(mailbox, settings.imap_password)
    try:
        client.select_folder(mailbox.folder)
        if not client.folder_exists(processed):
            client.create_folder(processed)
        uids = sorted(client.search("ALL"))
        for start in range(0, len(uids), FETCH_BATCH):
            chunk = uids[start : start + FETCH_BATCH]
            fetched = client.fetch(chunk, ["BODY.PEEK[]"])
            items = [(uid, fetched[uid][b"BODY[]"]) for uid in chunk if b"BODY[]" in fetched.get(uid, {})]

            def file_away(done: list[tuple[int, Any]]) -> None:
                recognised = [uid for uid, result in done if result.recognised]
                if recognised:
                    client.move(recognised, processed)
                    report.moved += len(recognised)

            report.ingested.merge(ingestor.run(items, "imap", on_batch=file_away))
        report.left = list(client.search("ALL"))
    except CapabilityError as exc:
        raise MailboxError(f"{mailbox.describe()}: the server cannot MOVE messages (RFC 6851): {exc}") from exc
    except (OSError, IMAPClientError) as exc:
        raise MailboxError(f"{mailbox.describe()}: {exc}") from exc
    finally:
        try:
            client.logout()
        except (OSError, IMAPClientError):
            pass  # the session is over either way
    return report
