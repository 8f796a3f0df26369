"""What the web app's views share: the collaborators built once by :func:`newsletter.web.create_app`."""

from __future__ import annotations

import dataclasses

from flask import current_app

from newsletter.config import Settings
from newsletter.delivery.links import Links
from newsletter.store.engine import Store
from newsletter.web.emails import SignupEmails
from newsletter.web.mailer import Mailer
from newsletter.web.ratelimit import SignupLimiter

EXTENSION = "newsletter"


@dataclasses.dataclass
class WebState:
    settings: Settings
    store: Store
    links: Links
    emails: SignupEmails
    mailer: Mailer
    limiter: SignupLimiter
    owns_store: bool

    @property
    def topic_choices(self) -> dict[str, str]:
        return self.settings.topic_choices

    def close(self) -> None:
        """Send what is queued and release the store if the app opened it."""
        self.mailer.close(end=True)
        if self.owns_store:
            self.store.dispose()


def web_state() -> WebState:
    state: WebState = current_app.extensions[EXTENSION]
    return state
