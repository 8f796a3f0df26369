"""From a signed link to what it belongs to (a subscriber, or a signup request), or a refusal.

The token is the only key to the confirm, unsubscribe and preferences pages: there is no login.
It is signed for one purpose, names one subscriber by their public id (or, for confirm, one signup
request), and carries a keyed fingerprint of the address, so a token is refused if it is forged, cut
short, made for another purpose, made for someone else, expired (confirm only), or if its subscriber
has since been erased. An unsubscribe token from a campaign also names the campaign, for the
campaign report's count of unsubscribes. Links made before public ids name the row id; they still
work (see :attr:`newsletter.delivery.links.TokenClaim.legacy_id`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.delivery.links import BadToken, Links, Purpose, TokenClaim
from newsletter.store.models import SignupRequest, StartedCampaign, Subscriber
from newsletter.subscribers import service


def subscriber_for(session: Session, links: Links, purpose: Purpose, token: str) -> Subscriber:
    """The subscriber a token was made for; raises :class:`BadToken` otherwise."""
    return subscriber_and_claim(session, links, purpose, token)[0]


def subscriber_and_claim(session: Session, links: Links, purpose: Purpose, token: str) -> tuple[Subscriber, TokenClaim]:
    """The subscriber a token was made for and what the token says; raises :class:`BadToken` otherwise."""
    claim = links.read(purpose, token)
    subscriber = _subscriber_named(session, claim)
    # Erasure deletes the row; a row id reused after that has another address, hence the fingerprint.
    if subscriber is None or not links.matches(claim, subscriber.email_key):
        raise BadToken("this link is not valid")
    return subscriber, claim


def _subscriber_named(session: Session, claim: TokenClaim) -> Subscriber | None:
    legacy_id = claim.legacy_id
    if legacy_id is not None:
        return session.get(Subscriber, legacy_id)
    return session.scalar(select(Subscriber).where(Subscriber.public_id == claim.key))


def campaign_of(session: Session, claim: TokenClaim) -> str | None:
    """The slug of the campaign whose message carried the link, if the token names one we know."""
    if claim.campaign_id is None:
        return None
    campaign = session.get(StartedCampaign, claim.campaign_id)
    return campaign.slug if campaign is not None else None


def signup_request_for(session: Session, links: Links, token: str) -> SignupRequest:
    """The signup request a confirmation link was sent for; raises :class:`BadToken` otherwise."""
    claim = links.read("confirm", token)
    request = service.find_request(session, claim.key)
    if request is None or not links.matches(claim, request.subscriber.email_key):
        # An unknown request was erased, or forgotten after the retention period: sign up again.
        raise BadToken("this link is not valid")
    return request
