"""Settings: one object, one precedence.

Every setting is resolved from these sources, later ones winning::

    defaults  <  newsletter.toml (in the project folder)  <  NEWSLETTER_<NAME>  <  command-line flags

Secrets (``secret_key``, ``smtp_password``, ``imap_password``) are read from the environment only: a
value for them in ``newsletter.toml`` is an error rather than silently ignored, so nobody commits one
by accident.
:func:`load_settings` records where each value came from, so ``newsletter config show`` can report it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import ipaddress
import os
import re
import tomllib
import urllib.parse
import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from newsletter.errors import ConfigError

CONFIG_FILENAME = "newsletter.toml"
SECRET_KEY_MIN_BYTES = 32
MAKE_A_KEY = 'Generate one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
ENV_PREFIX = "NEWSLETTER_"


def _setting(default: Any, help: str, *, secret: bool = False, env_only: bool = False) -> Any:
    return dataclasses.field(default=default, metadata={"help": help, "secret": secret, "env_only": env_only})


@dataclasses.dataclass(frozen=True)
class Settings:
    """The resolved settings. Build one with :func:`load_settings`; tests may construct it directly."""

    project_dir: Path = dataclasses.field(
        default_factory=Path.cwd, metadata={"help": "Folder holding newsletter.toml", "internal": True}
    )
    database_url: str = _setting(
        "sqlite:///subscribers.db", "SQLAlchemy URL of the store; relative SQLite paths are in the project folder"
    )
    organisation: str = _setting("Harvest", "Name shown in the email header and footer")
    postal_address: str = _setting("", "Postal address printed in every email footer")
    from_address: str = _setting("", "From: address of campaign emails")
    reply_to: str = _setting("", "Reply-To: address of campaign emails (empty: none)")
    bounce_address: str = _setting(
        "",
        "Envelope sender (Return-Path) for campaign messages; bounces come back here. With a '+', VERP: bounce+TOKEN@domain",
    )
    public_base_url: str = _setting("http://127.0.0.1:8000", "Base URL of the web endpoint that emails link to")
    transport: str = _setting("file:outbox/", "Transport URL: smtp://, smtps://, file:, console:, memory:")
    campaigns_dir: str = _setting("campaigns", "Folder of campaign Markdown files")
    templates_dir: str = _setting(
        "templates", "Folder of the clinic's email templates and its theme.toml (colours, fonts)"
    )
    faq_dir: str = _setting("faq", "Folder of the FAQ: one Markdown file per question")
    faq_url: str = _setting(
        "",
        "Where each FAQ block links for the full answer: a URL with {id} for the entry's id, or a page URL "
        "that gets #ID (empty: this product's own page, public_base_url/faq#ID)",
    )
    vignette_caption: str = _setting(
        "A client’s story, shared anonymously; details changed. Individual results vary.",
        "Caption above every client story (vignette) in campaign emails, so none reads as a typical result (empty: none)",
    )
    consent_version: str = _setting("2026-11", "Version of the consent wording shown on the signup form")
    rate: float = _setting(0.0, "Messages per second for a campaign, all workers together (0: unlimited)")
    connections: int = _setting(1, "SMTP connections used in parallel")
    max_attempts: int = _setting(5, "Attempts per message within one send run after temporary (4xx) failures")
    retry_base: float = _setting(1.0, "Seconds before the first retry of a temporary failure; doubles each time")
    retry_max_time: float = _setting(300.0, "Seconds a send run keeps retrying one message before leaving it pending")
    dkim_key_path: str = _setting("", "PEM private key for DKIM signing (empty: no DKIM signature)")
    dkim_selector: str = _setting("", "DKIM selector (the key is published at SELECTOR._domainkey.DOMAIN)")
    dns_servers: str = _setting(
        "", "DNS servers for `newsletter doctor`, as host:port entries separated by commas (empty: the system's)"
    )
    topics: str = _setting(
        "faq-updates=FAQ updates, client-stories=Client stories, clinic-news=Clinic news",
        "Topics subscribers can choose, as tag=Label pairs separated by commas",
    )
    confirm_max_age: int = _setting(7 * 24 * 3600, "Seconds a double opt-in confirmation link stays valid")
    bounce_mailbox: str = _setting(
        "",
        "IMAP mailbox that bounces arrive in, e.g. imaps://bounces@mail.harvest.example/INBOX "
        "(password: NEWSLETTER_IMAP_PASSWORD; empty: send-due fetches no bounces)",
    )
    bounce_processed_folder: str = _setting(
        "Processed", "IMAP folder that `bounces fetch` moves recognised messages to (created if missing)"
    )
    soft_bounce_limit: int = _setting(
        3, "Soft bounces within a subscriber's last soft_bounce_window sends that mark them bounced"
    )
    soft_bounce_window: int = _setting(5, "How many of a subscriber's latest sends the soft-bounce limit looks at")
    bounce_retention_days: int = _setting(90, "Days the raw bounce messages are kept before `retention` removes them")
    ses_topic_arns: str = _setting(
        "",
        "Amazon SNS topic ARNs (comma-separated) whose SES notifications POST /webhooks/ses accepts (empty: none)",
    )
    timezone: str = _setting("UTC", "IANA time zone for times given without one, e.g. in imported signup exports")
    # Retention: how long personal data is kept once it is no longer needed (see `newsletter retention`).
    pending_retention_days: int = _setting(30, "Days before signups never confirmed are erased")
    outbox_error_retention_days: int = _setting(90, "Days before the error text of an outbox row is cleared")
    ip_hash_retention_days: int = _setting(365, "Days before the hashed IP in a consent record is cleared")
    consent_retention_days: int = _setting(
        3 * 365, "Days a consent record is kept, as proof, after its subscriber has left the list"
    )
    secret_key: str = _setting("", "Key for signed links and erased-address hashes", secret=True, env_only=True)
    smtp_password: str = _setting("", "Password for SMTP AUTH", secret=True, env_only=True)
    imap_password: str = _setting("", "Password of the bounce_mailbox IMAP account", secret=True, env_only=True)

    @classmethod
    def setting_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")]

    @classmethod
    def field_info(cls, name: str) -> Mapping[str, Any]:
        return {f.name: f for f in dataclasses.fields(cls)}[name].metadata

    def resolve_path(self, value: str | Path) -> Path:
        """A path from settings, relative to the project folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.project_dir / path

    @property
    def campaigns_path(self) -> Path:
        return self.resolve_path(self.campaigns_dir)

    @property
    def templates_path(self) -> Path:
        return self.resolve_path(self.templates_dir)

    @property
    def faq_path(self) -> Path:
        return self.resolve_path(self.faq_dir)

    @property
    def resolved_database_url(self) -> str:
        """The database URL with a relative SQLite path anchored in the project folder."""
        from sqlalchemy.engine import make_url  # only commands that open the store need SQLAlchemy

        url = make_url(self.database_url)
        sqlite_file = url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:"
        if sqlite_file and not Path(str(url.database)).is_absolute():
            url = url.set(database=str(self.project_dir / str(url.database)))
        return url.render_as_string(hide_password=False)

    @property
    def topic_choices(self) -> dict[str, str]:
        """The ``topics`` setting as {tag: label}, in the order given."""
        choices = {}
        for item in self.topics.split(","):
            tag, _, label = item.partition("=")
            if tag.strip():
                choices[tag.strip()] = label.strip() or tag.strip()
        return choices

    @property
    def zone(self) -> tzinfo:
        """The ``timezone`` setting as a time zone; a name the time zone database does not know is an error."""
        return _zone(self.timezone)

    def require_secret_key(self) -> str:
        if not self.secret_key:
            raise ConfigError(
                f"NEWSLETTER_SECRET_KEY is not set; it signs links and protects erased addresses. {MAKE_A_KEY}"
            )
        check_secret_key(self.secret_key)
        return self.secret_key


@functools.cache
def _zone(name: str) -> tzinfo:
    if name.strip().upper() in ("UTC", "Z"):
        return UTC
    try:
        return zoneinfo.ZoneInfo(name.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"timezone {name!r} is not a time zone name; use an IANA name such as UTC or America/New_York"
        ) from None


@dataclasses.dataclass(frozen=True)
class ResolvedSettings:
    settings: Settings
    sources: dict[str, str]


def check_secret_key(key: str) -> None:
    """Refuse a short key: links and erased-address hashes are only as strong as it is."""
    if len(key.encode()) < SECRET_KEY_MIN_BYTES:
        raise ConfigError(
            f"NEWSLETTER_SECRET_KEY is {len(key.encode())} bytes; it must be at least {SECRET_KEY_MIN_BYTES}. "
            + MAKE_A_KEY
        )


def _coerce(name: str, raw: Any, target: type, source: str) -> Any:
    try:
        if target is bool:
            if isinstance(raw, bool):
                return raw
            return {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}[
                str(raw).strip().lower()
            ]
        if target is int and isinstance(raw, float | bool):
            raise ValueError
        value = target(raw)
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{source}: {name} must be {target.__name__}, got {raw!r}") from None
    if target in (int, float) and value < 0:
        raise ConfigError(f"{source}: {name} must not be negative, got {raw!r}")
    if target is str and any(ord(c) < 32 and c != "\t" for c in value):
        raise ConfigError(f"{source}: {name} must not contain control characters")
    return value


# NEWSLETTER_* variables that are read elsewhere, not settings.
_OTHER_VARIABLES = frozenset({"debug"})


def _did_you_mean(name: str, known: Iterable[str], *, prefix: str = "", upper: bool = False) -> str:
    """' (did you mean 'organisation'?)' for a near miss such as 'organization', else ''."""
    close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.75)
    if not close:
        return ""
    suggestion = prefix + (close[0].upper() if upper else close[0])
    return f" (did you mean {suggestion!r}?)"


def load_settings(
    project_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ResolvedSettings:
    """Resolve settings from defaults, ``newsletter.toml``, the environment and flags, in that order.

    ``overrides`` are command-line flags; ``None`` values mean "not given".
    """
    project_dir = (project_dir or Path.cwd()).resolve()
    environ = os.environ if environ is None else environ
    types: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}  # annotations are strings
    fields = {f.name: f for f in dataclasses.fields(Settings) if not f.metadata.get("internal")}
    values: dict[str, Any] = {}
    sources = dict.fromkeys(fields, "default")

    def put(name: str, raw: Any, source: str, note: str, *, context: str = "") -> None:
        """Set ``name`` from ``source`` (named so in its errors, and as ``note`` in ``sources``);
        ``context`` begins the error for a name that is not a setting."""
        if name not in fields:
            raise ConfigError(f"{context}unknown setting {name!r}{_did_you_mean(name, fields)}")
        values[name] = _coerce(name, raw, types[str(fields[name].type)], source)
        sources[name] = note

    config_file = project_dir / CONFIG_FILENAME
    if config_file.is_file():
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_file}: not valid TOML ({exc})") from exc
        for name, raw in data.items():
            if name in fields and fields[name].metadata["env_only"]:
                raise ConfigError(
                    f"{config_file}: {name} is a secret and may only come from {ENV_PREFIX}{name.upper()}"
                )
            put(name, raw, CONFIG_FILENAME, CONFIG_FILENAME, context=f"{config_file}: ")

    for env_name in environ:
        # A misspelt variable would otherwise be ignored in silence, e.g. NEWSLETTER_ORGANIZATION.
        guess = env_name.removeprefix(ENV_PREFIX).lower()
        if env_name.startswith(ENV_PREFIX) and guess not in fields and guess not in _OTHER_VARIABLES:
            hint = _did_you_mean(guess, fields, prefix=ENV_PREFIX, upper=True)
            if hint:
                raise ConfigError(f"{env_name} is not a setting{hint}")

    for name in fields:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            put(name, environ[env_name], env_name, f"env {env_name}")

    for name, raw in (overrides or {}).items():
        if raw is not None:
            put(name, raw, "command line", "command line")

    if values.get("secret_key"):
        check_secret_key(values["secret_key"])
    try:
        settings = Settings(project_dir=project_dir, **values)
        settings.resolved_database_url  # noqa: B018 - validates the URL early
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises ArgumentError, ValueError... for a malformed URL
        raise ConfigError(f"database_url is not a valid database URL ({exc})") from None
    settings.zone  # noqa: B018 - an unknown time zone fails here, not halfway through an import
    return ResolvedSettings(settings, sources)


def masked(name: str, value: Any) -> Any:
    """A value for display: secrets hidden, credentials in URLs hidden, anything else as it is."""
    if Settings.field_info(name).get("secret"):
        return "********" if value else "(not set)"
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


_CREDENTIAL_PARAMETER = re.compile(r"pass|pwd|secret|token|key|auth|credential", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` with its password and every credential-like query value replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:
        return "(a URL that cannot be shown safely)"
    netloc = parts.netloc
    if password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    shown = [(key, "***" if _CREDENTIAL_PARAMETER.search(key) else value) for key, value in query]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=urllib.parse.urlencode(shown, safe="*/:")))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, bracketed or not, or ``localhost``) is reachable only from this machine."""
    if host.casefold().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
