"""The one blueprint: signup, double opt-in, unsubscribe, preferences, the archive and the FAQ.

Views are thin: they read the request, call the services in this package and render a page. A GET
never changes state (mail scanners and link previewers fetch every link in an email); every change
is a POST, and a personal page's authority is the signed token in its URL (no cookies, no login,
hence no CSRF token: a forged cross-site POST would need the secret token itself).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from datetime import date
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from newsletter.campaigns import faq
from newsletter.delivery.links import BadToken, Purpose
from newsletter.store.models import Source, Status, Subscriber, utcnow
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.consent import ConsentInfo, ip_hash
from newsletter.web import archive, deferred, forms
from newsletter.web.feed import atom_feed
from newsletter.web.forms import FieldErrors
from newsletter.web.pages import ARCHIVE_CSP, contact_address
from newsletter.web.state import WebState, web_state
from newsletter.web.tokens import campaign_of, signup_request_for, subscriber_and_claim, subscriber_for

log = logging.getLogger(__name__)
bp = Blueprint("newsletter", __name__)

ORIGIN_MAX = 300


@bp.get("/")
def index() -> Response:
    return redirect(url_for(".subscribe_form"))  # type: ignore[return-value]


@bp.get("/favicon.ico")
def favicon() -> Response:
    # Browsers ask for it on every page without a <link rel="icon">, such as archived campaigns.
    return current_app.send_static_file("favicon.png")


# --- Subscribe for Updates ------------------------------------------------------------------------


@bp.get("/subscribe")
def subscribe_form() -> str:
    return render_template("subscribe.html", action=url_for(".subscribe"), values=None, errors=None)


@bp.post("/subscribe")
def subscribe() -> Response | str:
    """The same page, in the same time, for every outcome: nothing about the address is looked up
    before the answer (see :mod:`newsletter.web.deferred`)."""
    state = web_state()
    source = state.limiter.source(_client_ip())
    state.limiter.check_source(source)
    form = _read_form()
    if not forms.honeypot_filled(form):
        try:
            signup = forms.parse_signup(form, state.topic_choices)
        except FieldErrors as exc:
            return _form_again("subscribe.html", exc, action=url_for(".subscribe"))
        deferred.receive(state, signup, _consent(state), source)
    return render_template("check_inbox.html")


def _form_again(template: str, exc: FieldErrors, **context: object) -> Response:
    """The form once more, with what was typed and each error by its field (a 400: nothing was done)."""
    return Response(render_template(template, values=exc.values, errors=exc.errors, **context), 400)


def _consent(state: WebState) -> ConsentInfo:
    settings = state.settings
    return ConsentInfo(
        Source.FORM,
        settings.consent_version,
        _consent_origin(state),
        ip_hash(settings.secret_key, _client_ip()),
        given_at=utcnow(),
    )


def _client_ip() -> str:
    return request.remote_addr or ""


def _consent_origin(state: WebState) -> str:
    """Where the form was: the embedding page (as the browser's Referer gives it) or our own form.

    Query and fragment are dropped: they can carry anything, and the record needs the page only.
    """
    fallback = f"{state.links.base}/subscribe"
    referrer = request.headers.get("Referer", "")
    try:
        parts = urlsplit(referrer)
    except ValueError:
        return fallback
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return fallback
    origin = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return origin if len(origin) <= ORIGIN_MAX and origin.isascii() and origin.isprintable() else fallback


def _read_form() -> MultiDict[str, str]:
    if request.mimetype == "application/x-www-form-urlencoded":
        return forms.parse_urlencoded(request.get_data(cache=True))
    form = request.form
    forms.check_decoded(form)
    return form


# --- Double opt-in ---------------------------------------------------------------------------------


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> str:
    state = web_state()
    with state.store.session(commit=False) as session:
        request = signup_request_for(session, state.links, token)
        if subscribers.awaiting_confirmation(request):
            # What this link confirms, so that its owner sees it before pressing the button: someone
            # else may have typed this address with other choices, and that request has its own link.
            chosen = [label for tag, label in state.topic_choices.items() if tag in request.topics]
            return render_template(
                "confirm.html",
                action=url_for(".confirm_post", token=token),
                chosen_topics=chosen,
                name=request.name,
                wording_version=request.consent.wording_version,
            )
        return _confirmed_page(state, request.subscriber)


@bp.post("/confirm/<token>")
def confirm_post(token: str) -> str:
    state = web_state()
    with state.store.session() as session:
        request = signup_request_for(session, state.links, token)
        subscribers.confirm_request(session, request, topic_choices=state.topic_choices)
        return _confirmed_page(state, request.subscriber)


def _confirmed_page(state: WebState, subscriber: Subscriber) -> str:
    if subscriber.status != Status.CONFIRMED:
        # Unsubscribed, bounced or complained since this link was sent: it confirms nothing now.
        raise BadToken("this link is no longer valid; to subscribe again, please use the signup form")
    return render_template("confirmed.html", preferences_url=_personal_url(state, "preferences", subscriber))


def _personal_url(state: WebState, purpose: Purpose, subscriber: Subscriber) -> str:
    token = state.links.token(purpose, subscriber.public_id, subscriber.email_key)
    return url_for(f".{purpose}_page", token=token)


# --- Unsubscribe (RFC 8058 one-click, and the page the visible link opens) ------------------------


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> str:
    state = web_state()
    with state.store.session(commit=False) as session:
        subscriber = subscriber_for(session, state.links, "unsubscribe", token)
        if Status(subscriber.status).suppressed:
            return render_template("unsubscribed.html")
        return render_template(
            "unsubscribe.html",
            action=url_for(".unsubscribe_post", token=token),
            preferences_url=_personal_url(state, "preferences", subscriber),
        )


@bp.post("/unsubscribe/<token>")
def unsubscribe_post(token: str) -> str:
    """One-click: any POST to the token's URL unsubscribes, with or without the RFC 8058 body.

    The session commits before the page is rendered, so a 200 means it is done.
    """
    state = web_state()
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    with state.store.session() as session:
        subscriber, claim = subscriber_and_claim(session, state.links, "unsubscribe", token)
        # The campaign whose link it was, for its report: a count, not a trail of anyone's clicks.
        campaign = campaign_of(session, claim)
        detail: dict[str, Any] = {"via": "one-click" if one_click else "page"}
        if campaign:
            detail["campaign"] = campaign
        subscribers.unsubscribe(session, subscriber, actor="web", **detail)
    return render_template("unsubscribed.html")


# --- Preferences -----------------------------------------------------------------------------------


@bp.get("/preferences/<token>")
def preferences_page(token: str) -> str:
    state = web_state()
    with state.store.session(commit=False) as session:
        subscriber = subscriber_for(session, state.links, "preferences", token)
        return _preferences(state, subscriber, token, saved=False)


@bp.post("/preferences/<token>")
def preferences_post(token: str) -> str:
    state = web_state()
    with state.store.session() as session:
        subscriber = subscriber_for(session, state.links, "preferences", token)
        if Status(subscriber.status).suppressed:
            return _preferences(state, subscriber, token, saved=False)
        form = forms.parse_preferences(_read_form(), state.topic_choices)
        subscribers.update_preferences(
            session, subscriber, topics=form.topics, paused=form.paused, topic_choices=state.topic_choices
        )
        return _preferences(state, subscriber, token, saved=True)


def _preferences(state: WebState, subscriber: Subscriber, token: str, *, saved: bool) -> str:
    if Status(subscriber.status).suppressed:
        return render_template("preferences_closed.html")
    return render_template(
        "preferences.html",
        action=url_for(".preferences_post", token=token),
        chosen=subscribers.topics_of(subscriber, state.topic_choices),
        paused=subscriber.paused,
        pending=subscriber.status == Status.PENDING,
        saved=saved,
        unsubscribe_url=_personal_url(state, "unsubscribe", subscriber),
    )


# --- "Email me my preferences link" ------------------------------------------------------------------


@bp.get("/preferences", endpoint="preferences_without_token")
def preferences_link_form() -> str:
    """Also where the sample preferences link of an archived campaign leads."""
    return render_template("preferences_link.html", action=url_for(".preferences_link"), values=None, errors=None)


@bp.post("/preferences")
def preferences_link() -> Response | str:
    """The same page, in the same time, whatever the address: the look-up happens on the mail thread."""
    state = web_state()
    source = state.limiter.source(_client_ip())
    state.limiter.check_source(source, form=deferred.LINK_FORM)
    form = _read_form()
    if forms.honeypot_filled(form):
        return render_template("preferences_link_sent.html")
    try:
        address, recipient = forms.parse_link_request(form)
    except FieldErrors as exc:
        return _form_again("preferences_link.html", exc, action=url_for(".preferences_link"))
    deferred.after_answer(functools.partial(deferred.preferences_link, state, address, recipient, source))
    return render_template("preferences_link_sent.html")


# --- Links without a token: the sample links in archived and built campaigns ------------------------


@bp.get("/confirm", endpoint="confirm_without_token")
@bp.get("/unsubscribe", endpoint="unsubscribe_without_token")
def without_token() -> str:
    return render_template("use_your_link.html", contact=contact_address())


# --- Archive ----------------------------------------------------------------------------------------


@bp.get("/archive")
def archive_index() -> str:
    with web_state().store.session(commit=False) as session:
        return render_template("archive.html", entries=archive.entries(session))


@bp.get("/archive/feed.xml")
def archive_feed() -> Response:
    state = web_state()
    with state.store.session(commit=False) as session:
        entries = archive.with_web_versions(session)
    links = state.links
    data = atom_feed(
        entries,
        organisation=state.settings.organisation,
        archive_url=links.archive_url(),
        feed_url=f"{links.archive_url()}/feed.xml",
        entry_url=links.archive_url,
    )
    response = Response(data, mimetype="application/atom+xml")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/archive/<slug>")
def archive_page(slug: str) -> Response:
    with web_state().store.session(commit=False) as session:
        html = archive.web_version(session, slug)
    if html is None:
        abort(404)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = ARCHIVE_CSP
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# --- FAQ --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _FaqView:
    id: str
    question: str
    html: Markup
    updated: date | None


@bp.get("/faq")
def faq_page() -> Response:
    """The FAQ from faq_dir, an anchor per entry (``faq_url`` may point here, and emails link to it)."""
    try:
        library = faq.load_faq(web_state().settings.faq_path)
    except faq.FaqError as exc:
        log.error("the FAQ cannot be read: %s", exc)  # staff's file, not the visitor's fault
        abort(503)
    entries = [_FaqView(e.id, e.question, faq.answer_html(e), e.updated) for e in library.entries]
    response = Response(render_template("faq.html", entries=entries))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
