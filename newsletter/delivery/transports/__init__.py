"""Swappable mail transports, chosen by URL.

The scheme of the URL names an entry point in the ``newsletter.transports`` group. The built-in
transports (``smtp``, ``smtps``, ``file``, ``console``, ``memory``) are registered there by this
package's own ``pyproject.toml``, so a third-party transport goes through exactly the same door.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from newsletter.delivery.transports.base import (
    ConnectionLost,
    OutgoingMessage,
    PermanentFailure,
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

if TYPE_CHECKING:
    from newsletter.config import Settings

ENTRY_POINT_GROUP = "newsletter.transports"

TransportFactory = Callable[[], Transport]
"""Makes a new, unopened transport: one per connection, since a transport is not thread-safe."""

__all__ = [
    "ENTRY_POINT_GROUP",
    "ConnectionLost",
    "OutgoingMessage",
    "PermanentFailure",
    "SendResult",
    "TemporaryFailure",
    "Transport",
    "TransportConfigError",
    "TransportContext",
    "TransportError",
    "TransportFactory",
    "available_transports",
    "open_transport",
    "query_options",
    "refuse_password",
    "safe_url",
    "transport_class",
    "transport_factory",
    "url_for_test_copies",
]


def _entry_points() -> dict[str, list[EntryPoint]]:
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        same = found.setdefault(ep.name, [])
        if all(other.value != ep.value for other in same):
            same.append(ep)
    return dict(sorted(found.items()))


def available_transports() -> dict[str, str]:
    """Installed transports: URL scheme -> ``module:Class`` that handles it."""
    return {name: eps[0].value for name, eps in _entry_points().items()}


def transport_class(scheme: str) -> type[Transport]:
    """The Transport subclass registered for a URL scheme."""
    registered = _entry_points()
    eps = registered.get(scheme.lower())
    if not eps:
        raise TransportConfigError(f"unknown transport {scheme!r}; available: {', '.join(registered) or 'none'}")
    if len(eps) > 1:
        raise TransportConfigError(
            f"transport {scheme!r} is registered twice ({', '.join(ep.value for ep in eps)}); "
            "uninstall one of the packages"
        )
    try:
        cls = eps[0].load()
    except Exception as exc:  # a broken plugin can fail to import in any way
        raise TransportConfigError(f"transport {scheme!r} ({eps[0].value}) cannot be loaded: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise TransportConfigError(f"transport {scheme!r} ({eps[0].value}) is not a Transport subclass")
    return cls


def open_transport(url: str, context: TransportContext) -> Transport:
    """Build the transport a URL names, not yet connected: use it as ``with open_transport(...) as t:``.

    Raises TransportConfigError, with a one-line message that never shows a password, if the URL
    cannot be used.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - a malformed port raises here rather than deep inside a transport
    except ValueError as exc:
        # Not echoing the URL: it may be one with a password that failed to parse.
        raise TransportConfigError(f"transport URL is malformed ({exc})") from None
    refuse_password(parts)
    if not parts.scheme:
        raise TransportConfigError(
            f"transport URL {url!r} has no scheme; available: {', '.join(available_transports())}"
        )
    return transport_class(parts.scheme).from_url(parts, context)


def transport_factory(settings: Settings, url: str | None = None) -> TransportFactory:
    """A factory for the transport ``url`` names (default: the ``transport`` setting).

    A bad URL is reported here, before anything else happens.
    """
    context = TransportContext(settings.project_dir, settings.smtp_password or None)
    url = url or settings.transport
    open_transport(url, context)
    return lambda: open_transport(url, context)


TEST_COPIES_FOLDER = "tests"


def url_for_test_copies(url: str) -> str:
    """The transport URL for test copies: a ``file:`` folder gets a ``tests/`` subfolder, so that a test
    copy never sits among the campaign's own messages; every other transport is used as it is."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "file" or not parts.path:
        return url
    folder = parts.path.rstrip("/") + f"/{TEST_COPIES_FOLDER}/"
    if not url.lower().startswith("file://"):
        return f"{url[: len(parts.scheme)]}:{folder}"  # file:outbox/ stays relative to the project
    return parts._replace(path=folder).geturl()
