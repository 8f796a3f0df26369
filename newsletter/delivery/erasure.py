"""Erasing a person (GDPR Art. 17) everywhere the newsletter keeps them: the store, and the copies of
their messages that a transport keeps (the ``file:`` transport's ``.eml`` files).

:func:`newsletter.subscribers.service.forget` erases what is in the store; this module also knows
the transports, so it is what the ``subscribers forget`` command calls.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from newsletter.config import Settings
from newsletter.delivery.transports import Transport, transport_class, transport_factory
from newsletter.store.engine import Store
from newsletter.subscribers import service


@dataclass(frozen=True)
class Erased:
    files_removed: int  # copies of their messages the transport still had


def forget(store: Store, settings: Settings, email: str) -> Erased:
    """Erase ``email`` from the store (committed), then remove the transport's copies of their messages.

    The copies looked for are those of the ``transport`` setting; messages sent with another
    ``--transport`` may have left copies elsewhere.
    """
    transport = _transport_keeping_copies(settings)
    with store.session() as session:
        forgotten = service.forget(session, email, secret_key=settings.require_secret_key())
    return Erased(transport.forget(forgotten.message_ids) if transport else 0)


def _transport_keeping_copies(settings: Settings) -> Transport | None:
    """The configured transport if it keeps copies of messages, else None.

    Built before anything is erased, so that a transport that cannot be built stops the erasure
    rather than failing once it is committed; and built only when it keeps copies, since building one
    can need what an erasure does not (an SMTP user's password).
    """
    try:
        scheme = urllib.parse.urlsplit(settings.transport).scheme
    except ValueError:
        scheme = ""  # malformed: transport_factory says how
    if scheme and transport_class(scheme).forget is Transport.forget:
        return None
    return transport_factory(settings)()
