"""How consent was given, recorded with every subscription, and the keyed hash of a form's IP."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy.orm import Session

from newsletter.store.models import Consent, Source, Subscriber, utcnow


@dataclass(frozen=True)
class ConsentInfo:
    """How consent was given; recorded with every new subscription."""

    method: Source
    wording_version: str
    origin: str = ""
    ip_hash: str | None = None


def ip_hash(secret_key: str, ip: str) -> str:
    """A keyed hash of the client's IP: spots a flood from one place, cannot be reversed or linked."""
    return hmac.new(secret_key.encode(), b"consent-ip:" + ip.encode(), hashlib.sha256).hexdigest()


def record_consent(session: Session, subscriber: Subscriber, consent: ConsentInfo) -> None:
    session.add(
        Consent(
            subscriber_id=subscriber.id,
            method=consent.method.value,
            wording_version=consent.wording_version,
            origin=consent.origin,
            ip_hash=consent.ip_hash,
            given_at=utcnow(),
        )
    )
    session.flush()
