"""The signup intake: a request from the public form, kept from its answer until it is applied.

Answering a signup must take the same time whatever the address's state, and a 200 must still mean
that the request is kept. So the request does one thing, the same for every address: it inserts the
form's values here (:func:`receive`) and commits. What depends on the state (looking the address up,
recording the request, choosing the email) runs later, off the request: :func:`take` removes the row
in the transaction that applies it, so a request is applied once, whichever process takes it, and a
row left by a process that died is still there to be taken (:func:`waiting`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.store.engine import affected
from newsletter.store.models import SignupIntake, Source, utcnow
from newsletter.subscribers.addresses import Address
from newsletter.subscribers.consent import ConsentInfo


@dataclass(frozen=True)
class IntakeRequest:
    """A form request as it was received: what :func:`newsletter.subscribers.service.request_signup` takes."""

    address: Address
    name: str
    topics: tuple[str, ...]
    consent: ConsentInfo  # given when the form was sent, not when the request is applied
    source: str  # the rate limiter's key for the sender's network


def receive(
    session: Session, address: Address, *, name: str, topics: Sequence[str], consent: ConsentInfo, source: str
) -> int:
    """Keep a request until it is applied; returns its id. Reads nothing, so it costs the same for
    every address."""
    row = SignupIntake(
        received_at=consent.given_at or utcnow(),
        email=address.email,
        email_key=address.key,
        name=name,
        topics=list(topics),
        wording_version=consent.wording_version,
        origin=consent.origin,
        ip_hash=consent.ip_hash,
        source=source,
    )
    session.add(row)
    session.flush()
    return row.id


_TAKE = delete(SignupIntake).returning(
    SignupIntake.received_at,
    SignupIntake.email,
    SignupIntake.email_key,
    SignupIntake.name,
    SignupIntake.topics,
    SignupIntake.wording_version,
    SignupIntake.origin,
    SignupIntake.ip_hash,
    SignupIntake.source,
)


def take(session: Session, intake_id: int) -> IntakeRequest | None:
    """Remove a request from the intake, in the caller's transaction, and return it; None when it is
    gone (another process took it).

    A delete rather than a read first: on SQLite it takes the write lock at once, and on PostgreSQL a
    second taker waits for the first and then finds nothing.
    """
    row = session.execute(_TAKE.where(SignupIntake.id == intake_id)).first()
    if row is None:
        return None
    received_at, email, email_key, name, topics, wording_version, origin, ip_hash, source = row
    consent = ConsentInfo(Source.FORM, wording_version, origin, ip_hash, received_at)
    return IntakeRequest(Address(email, email_key), name, tuple(topics), consent, source)


def waiting(session: Session) -> list[int]:
    """The requests not applied yet, oldest first."""
    return list(session.scalars(select(SignupIntake.id).order_by(SignupIntake.id)))


def discard(session: Session, email_key: str) -> int:
    """Drop the waiting requests for an address (erasure); returns how many there were."""
    return affected(
        session.execute(
            delete(SignupIntake).where(SignupIntake.email_key == email_key).execution_options(synchronize_session=False)
        )
    )
