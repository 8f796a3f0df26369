"""How consent was given, recorded with every subscription; what a consent cell in an export means;
and the keyed hash of a form's IP."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.store.models import Consent, Source, Subscriber, utcnow


@dataclass(frozen=True)
class ConsentInfo:
    """How consent was given; recorded with every new subscription."""

    method: Source
    wording_version: str
    origin: str = ""
    ip_hash: str | None = None
    given_at: datetime | None = None  # None: now


def ip_hash(secret_key: str, ip: str) -> str:
    """A keyed hash of the client's IP: spots a flood from one place, cannot be reversed or linked."""
    return hmac.new(secret_key.encode(), b"consent-ip:" + ip.encode(), hashlib.sha256).hexdigest()


def record_consent(session: Session, subscriber: Subscriber, consent: ConsentInfo) -> Consent:
    record = Consent(
        subscriber_id=subscriber.id,
        method=consent.method.value,
        wording_version=consent.wording_version,
        origin=consent.origin,
        ip_hash=consent.ip_hash,
        given_at=consent.given_at or utcnow(),
    )
    session.add(record)
    session.flush()
    return record


# --- a consent column in a signup export ---------------------------------------------------------------
# Form tools write a ticked box as "Yes", "TRUE", "1", "checked" or the box's own label ("I agree to
# receive..."); an unticked one as "No", "FALSE", "0", "unchecked" or nothing at all.

_NO = frozenset(
    {"", "no", "n", "false", "f", "0", "unchecked", "not checked", "off", "none", "declined", "refused", "denied", "-"}
)
_YES = frozenset(
    {
        "yes", "y", "true", "t", "1", "checked", "on", "x", "✓", "✔", "☑", "agree", "agreed", "i agree",
        "accepted", "granted", "given", "opted in", "opt in", "subscribed", "confirmed",
    }
)  # fmt: skip
_NO_PREFIXES = ("no ", "no,", "not ", "don't", "do not", "i don't", "i do not", "i decline", "decline")
_YES_PREFIXES = ("yes", "i agree", "i consent", "i accept", "i would like", "i'd like", "i want")


def consent_given(cell: str) -> bool | None:
    """True for a yes, False for a no (an empty cell included), None when the cell says neither."""
    text = " ".join(cell.replace("’", "'").casefold().split()).rstrip(".!")
    if text in _NO:
        return False
    if text in _YES:
        return True
    if text.startswith(_NO_PREFIXES):
        return False
    if text.startswith(_YES_PREFIXES):
        return True
    return None
