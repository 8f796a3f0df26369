"""What the public forms do after their answer, on the mail thread (:mod:`newsletter.web.mailer`).

The signup form and the "email me my preferences link" form answer with the same page, in the same
time, whatever the address's state. Everything that depends on the address runs here instead:
the per-address rate limits, looking the address up, recording the request, and choosing the
email. A signup is kept in the store first (:func:`receive`, one insert for every address) and
applied here (:func:`apply_signup`), so a 200 means the request is kept even if the process dies
before this runs: the next process applies what is left when its mail thread starts
(:func:`recover`). A preferences-link request changes nothing, so it is only queued: one lost with
its process is asked for again.

The work starts once the answer is *sent* (:func:`after_answer`): when the WSGI server closes the
response, which PEP 3333 has it do after writing the last byte. Queued any earlier, the mail thread
would take Python's GIL from the request thread while it is still writing the page, and the page
would come out later for an address whose work is heavier (a confirmed subscriber's email, a new
subscriber's rows): the very leak all this avoids, measured in ``bench/timing_bench.py``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from flask import Response, g
from flask.testing import FlaskClient
from sqlalchemy.exc import IntegrityError

from newsletter.delivery.transports import OutgoingMessage
from newsletter.store.models import Status
from newsletter.subscribers import intake
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.addresses import Address
from newsletter.subscribers.consent import ConsentInfo
from newsletter.subscribers.service import Reply, SignupOutcome
from newsletter.web.forms import SignupForm
from newsletter.web.mailer import Job
from newsletter.web.state import WebState

log = logging.getLogger(__name__)

LINK_FORM = "preferences-link"
_AFTER_ANSWER = "newsletter_after_answer"


def after_answer(job: Job) -> None:
    """Run ``job`` on the mail thread once this request's answer has been sent."""
    g.setdefault(_AFTER_ANSWER, []).append(job)


def release_after_answer(state: WebState, response: Response) -> Response:
    """An ``after_request`` hook: hand the request's jobs to the mail thread when the server closes
    the response (after error pages too: Flask runs this hook for them as well)."""
    jobs: list[Job] = g.pop(_AFTER_ANSWER, [])
    if jobs:
        response.call_on_close(functools.partial(_defer_all, state, jobs))
    return response


def _defer_all(state: WebState, jobs: list[Job]) -> None:
    for job in jobs:
        state.mailer.defer(job)


class ClosingTestClient(FlaskClient):
    """Flask's test client, closing each response as a WSGI server does: the work a request leaves
    for after its answer starts then (Werkzeug's client otherwise leaves responses open)."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def receive(state: WebState, signup: SignupForm, consent: ConsentInfo, source: str) -> None:
    """Keep a signup request (the same insert whatever the address) and queue its application."""
    with state.store.session() as session:
        intake_id = intake.receive(
            session, signup.address, name=signup.name, topics=signup.topics, consent=consent, source=source
        )
    after_answer(functools.partial(apply_signup, state, intake_id))


def recover(state: WebState) -> None:
    """Queue the requests a process that died left in the intake (the mail thread's first job)."""
    with state.store.session(commit=False) as session:
        waiting = intake.waiting(session)
    if waiting:
        log.info("applying %d signup request(s) left waiting", len(waiting))
    for intake_id in waiting:
        state.mailer.defer(functools.partial(apply_signup, state, intake_id))


def apply_signup(state: WebState, intake_id: int) -> OutgoingMessage | None:
    """Apply one kept request (see :func:`newsletter.subscribers.service.request_signup`) and build
    its email, if it gets one."""

    def attempt(count_it: bool) -> tuple[intake.IntakeRequest, SignupOutcome] | None:
        with state.store.session() as session:
            request = intake.take(session, intake_id)
            if request is None:
                return None  # another process applied it
            if count_it and not state.limiter.allow_address(request.address.key, request.source):
                return None  # over the address's limit: dropped with its row, no email
            outcome = subscribers.request_signup(
                session,
                request.address,
                name=request.name,
                topics=request.topics,
                consent=request.consent,
                secret_key=state.settings.secret_key,
            )
            return request, outcome

    try:
        applied = attempt(True)
    except IntegrityError:
        # Two requests for a new address applied at once (two processes): the second finds the first's row.
        applied = attempt(False)
    if applied is None:
        return None
    request, outcome = applied
    return _reply(state, request.address.email, outcome)  # the email puts it in wire form


def _reply(state: WebState, recipient: str, outcome: SignupOutcome) -> OutgoingMessage | None:
    if outcome.reply is Reply.NONE:
        return None
    links, who = state.links, (outcome.public_id, outcome.email_key)
    if outcome.reply is Reply.CONFIRM:
        return state.emails.confirmation(recipient, links.url("confirm", outcome.request_token, outcome.email_key))
    return state.emails.already_subscribed(recipient, links.url("preferences", *who), links.url("unsubscribe", *who))


def preferences_link(state: WebState, address: Address, recipient: str, source: str) -> OutgoingMessage | None:
    """The email with the preferences link, if the address is subscribed and within its limits."""
    if not state.limiter.allow_address(address.key, source, form=LINK_FORM):
        return None
    with state.store.session(commit=False) as session:
        subscriber = subscribers.find(session, address)
        if subscriber is None or subscriber.status != Status.CONFIRMED:
            return None
        who = (subscriber.public_id, subscriber.email_key)
    links = state.links
    return state.emails.preferences_link(recipient, links.url("preferences", *who), links.url("unsubscribe", *who))
