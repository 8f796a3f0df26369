"""Erasing a person (GDPR Art. 17) everywhere the newsletter keeps them: the store, and the copies of
their messages that a transport keeps (the ``file:`` transport's ``.eml`` files).

:func:`newsletter.subscribers.service.forget` erases what is in the store; this module also knows
the transports, so it is what the ``subscribers forget`` command calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.config import Settings
from newsletter.delivery.transports import transport_factory
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
    with store.session() as session:
        forgotten = service.forget(session, email, secret_key=settings.require_secret_key())
    transport = transport_factory(settings)()
    return Erased(transport.forget(forgotten.message_ids))
