"""The web endpoint: Subscribe for Updates, double opt-in, one-click unsubscribe, preferences, archive.

Build the app with :func:`create_app` (collaborators passed in, as tests do), or let a WSGI server
call :func:`wsgi`, which reads the settings the way the command line does (defaults, then
``newsletter.toml`` in the project folder, then ``NEWSLETTER_*``)::

    gunicorn --workers 2 'newsletter.web:wsgi()'
    gunicorn 'newsletter.web:wsgi(proxy_hops=1, storage_uri="redis://localhost:6379")'
    waitress-serve --call newsletter.web:wsgi

Behind a reverse proxy, pass ``proxy_hops`` (how many proxies set X-Forwarded-For), or every
visitor shares the proxy's IP and its rate limit. With several worker processes, give the rate
limits a shared ``storage_uri``: each process otherwise counts on its own.
``newsletter serve`` runs the same app on Werkzeug's development server.
"""

from __future__ import annotations

import functools
from pathlib import Path

from flask import Flask
from jinja2 import StrictUndefined
from werkzeug.middleware.proxy_fix import ProxyFix

from newsletter.config import Settings, load_settings
from newsletter.delivery.links import Links
from newsletter.delivery.transports import TransportFactory, transport_factory
from newsletter.errors import ConfigError, InputError
from newsletter.feedback.sns import Fetch, fetch_https
from newsletter.feedback.webhooks import BODY_LIMIT as SES_BODY_LIMIT
from newsletter.feedback.webhooks import SesWebhook
from newsletter.store.engine import Store, open_store
from newsletter.subscribers.addresses import clean_tag
from newsletter.web import deferred, pages, views, webhooks
from newsletter.web.bodies import BufferedBodies
from newsletter.web.emails import SignupEmails, describe_duration
from newsletter.web.forms import MAX_FIELDS
from newsletter.web.look import register_theme
from newsletter.web.mailer import Mailer
from newsletter.web.ratelimit import RateLimits, SignupLimiter
from newsletter.web.state import EXTENSION, WebState

__all__ = ["RateLimits", "WebState", "close_app", "create_app", "wsgi"]

MAX_CONTENT_LENGTH = 16 * 1024


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    transport: TransportFactory | None = None,
    rate_limits: RateLimits | None = None,
    proxy_hops: int = 0,
    sns_fetch: Fetch = fetch_https,
) -> Flask:
    """The Flask app for ``settings``.

    ``store`` defaults to the settings' database (the app then owns it and :func:`close_app`
    disposes of it); ``transport`` is a factory of unopened transports, by default the settings'
    transport URL. ``sns_fetch`` fetches SNS signing certificates (tests pass their own). Everything
    is checked here, so a misconfigured server fails at start, not on the first signup.
    """
    secret_key = settings.require_secret_key()
    _check_topics(settings)
    links = Links(secret_key, settings.public_base_url, confirm_max_age=settings.confirm_max_age)
    emails = SignupEmails(settings)
    transport = transport or transport_factory(settings)
    limiter = SignupLimiter(rate_limits or RateLimits(), secret_key)
    owns_store = store is None
    store = store or open_store(settings.resolved_database_url)

    app = Flask(__name__)  # templates/ and static/ next to this file
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
        MAX_FORM_MEMORY_SIZE=MAX_CONTENT_LENGTH,
        MAX_FORM_PARTS=MAX_FIELDS,
    )
    app.jinja_env.undefined = StrictUndefined
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    mailer = Mailer(transport)
    state = WebState(settings, store, links, emails, mailer, limiter, owns_store)
    # Each process's mail thread starts with its first request, and first applies the signups that
    # a process which died left waiting.
    mailer.on_start(functools.partial(deferred.recover, state))
    app.extensions[EXTENSION] = state
    app.extensions[webhooks.EXTENSION] = SesWebhook(store, settings, fetch=sns_fetch)
    app.before_request(mailer.start)
    app.after_request(functools.partial(deferred.release_after_answer, state))
    app.test_client_class = deferred.ClosingTestClient
    app.register_blueprint(views.bp)
    app.register_blueprint(webhooks.bp)
    pages.register(app)
    register_theme(app, emails.theme, settings)  # the emails' own theme: pages and emails never disagree

    @app.context_processor
    def clinic() -> dict[str, object]:
        return {
            "organisation": settings.organisation,
            "topics": settings.topic_choices,
            "consent_version": settings.consent_version,
            "confirm_valid_for": describe_duration(settings.confirm_max_age),
        }

    # Every streamed body gets a length, so that the limits above hold for chunked bodies too.
    app.wsgi_app = BufferedBodies(app.wsgi_app, max(MAX_CONTENT_LENGTH, SES_BODY_LIMIT))  # type: ignore[method-assign]
    if proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxy_hops, x_proto=proxy_hops)  # type: ignore[method-assign]
    return app


def close_app(app: Flask) -> None:
    """Send the emails still queued, stop the mail thread, and close the store if the app opened it."""
    state: WebState = app.extensions[EXTENSION]
    state.close()


def _check_topics(settings: Settings) -> None:
    for tag in settings.topic_choices:
        try:
            if clean_tag(tag) != tag:
                raise InputError(tag)
        except InputError:
            raise ConfigError(
                f"topics: {tag!r} is not usable as a tag; use lower-case letters, digits, '-' and '_'"
            ) from None


def wsgi(
    project_dir: str | None = None,
    *,
    proxy_hops: int = 0,
    per_ip: str = RateLimits.per_ip,
    per_address: str = RateLimits.per_address,
    per_address_total: str = RateLimits.per_address_total,
    storage_uri: str = RateLimits.storage_uri,
) -> Flask:
    """The app for a WSGI server, from the settings of ``project_dir`` (default: the current folder,
    so ``gunicorn --chdir /srv/harvest 'newsletter.web:wsgi()'`` serves that project)."""
    settings = load_settings(Path(project_dir) if project_dir else None).settings
    limits = RateLimits(per_ip, per_address, per_address_total, storage_uri)
    return create_app(settings, rate_limits=limits, proxy_hops=proxy_hops)
