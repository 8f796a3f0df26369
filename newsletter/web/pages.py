"""Every answer is a page a person can read: error pages, and the headers every response carries.

Nothing a visitor sends may produce a 500: the project's own errors become 4xx pages, Werkzeug's
HTTP errors keep their code with a friendly body, and an unreachable store is a 503. A bug is
still a 500, with a page that says nothing about the bug.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, render_template
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, InternalServerError

from newsletter.delivery.links import BadToken
from newsletter.errors import NewsletterError, NotFound, StoreError
from newsletter.web.forms import FormError, TooManyFields
from newsletter.web.ratelimit import RateLimited
from newsletter.web.state import web_state

log = logging.getLogger(__name__)

# Our pages: no scripts at all, styles only from our own stylesheet, forms only to ourselves.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Archived campaigns: MJML's HTML needs inline styles; scripts are blocked twice (no script-src, and
# a sandbox without allow-scripts), and nothing on the page may post anywhere.
ARCHIVE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"
)

_HTTP_PAGES = {
    400: ("Something went wrong", "We could not understand that request. Please go back and try again."),
    404: ("Page not found", "There is no page at this address."),
    405: ("Not available", "This page cannot be used that way."),
    413: ("Too much", "That was more than this form accepts. Please shorten what you typed and try again."),
    429: ("Please wait a little", "There have been too many attempts. Please wait an hour and try again."),
}


def page(status: int, title: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(render_template("error.html", title=title, message=message), status)
    response.headers.update(headers or {})
    return response


def _http_error(exc: HTTPException) -> HTTPException | Response:
    if exc.code is None or exc.code < 400:
        return exc  # routing redirects (a missing trailing slash) are HTTPExceptions too
    title, message = _HTTP_PAGES.get(exc.code, (exc.name, "Please go back and try again."))
    headers = {k: v for k, v in exc.get_headers() if k in ("Allow", "Retry-After")}
    return page(exc.code, title, message, headers)


def _newsletter_error(exc: NewsletterError) -> Response:
    if isinstance(exc, RateLimited):
        title, message = _HTTP_PAGES[429]
        return page(429, title, message, {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, TooManyFields):
        return page(413, *_HTTP_PAGES[413])
    if isinstance(exc, BadToken):
        # Not a dead end: a new preferences link, the signup form, or a person to write to.
        return Response(render_template("link_broken.html", reason=str(exc), contact=contact_address()), 400)
    if isinstance(exc, FormError):
        return page(400, "Please check the form", str(exc))
    if isinstance(exc, NotFound):
        return page(404, *_HTTP_PAGES[404])
    if isinstance(exc, StoreError):
        return _unavailable(exc)
    # Other messages may name an address or a setting: log them, show a general page.
    log.warning("refused a request: %s: %s", type(exc).__name__, exc)
    return page(400, *_HTTP_PAGES[400])


def contact_address() -> str:
    """Where a visitor can write to a person: the reply_to setting, else the From address."""
    settings = web_state().settings
    return settings.reply_to or settings.from_address


def _unavailable(exc: Exception) -> Response:
    log.error("the store failed: %s", type(exc).__name__)
    return page(503, "Temporarily unavailable", "Please try again in a few minutes.", {"Retry-After": "120"})


def _internal_error(exc: InternalServerError) -> Response:
    original = exc.original_exception or exc
    log.error("internal error", exc_info=(type(original), original, original.__traceback__))
    return page(500, "Something went wrong on our side", "Please try again later.")


def security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", PAGE_CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    # Pages under /confirm, /unsubscribe and /preferences carry a personal token in their URL.
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers.setdefault("Cache-Control", "no-store")
    return response


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(NewsletterError, _newsletter_error)
    app.register_error_handler(SQLAlchemyError, _unavailable)
    app.register_error_handler(InternalServerError, _internal_error)
    app.after_request(security_headers)
