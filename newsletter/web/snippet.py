"""The signup form as a snippet of HTML for the clinic's existing website (`newsletter web snippet`)."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.web import jinja_env


def signup_snippet(settings: Settings) -> str:
    """The form, posting to ``{public_base_url}/subscribe``; the same fields as our own page."""
    return jinja_env.render(
        "snippet.html",
        action=f"{settings.public_base_url.rstrip('/')}/subscribe",
        topics=settings.topic_choices,
        organisation=settings.organisation,
        consent_version=settings.consent_version,
    )
