"""From a signed link to the subscriber it belongs to, or a refusal.

The token is the only key to the confirm, unsubscribe and preferences pages: there is no login.
It is signed for one purpose, names one subscriber by id, and carries a keyed fingerprint of their
address, so a token is refused if it is forged, cut short, made for another purpose, made for
someone else, expired (confirm only), or if its subscriber has since been erased. An unsubscribe
token from a campaign also names the campaign, for the campaign report's count of unsubscribes.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter.delivery.links import BadToken, Links, Purpose, TokenClaim
from newsletter.store.models import StartedCampaign, Subscriber

TOKEN_MAX = 512  # ours are about 60-90 characters; anything much longer is not one of ours


def subscriber_for(session: Session, links: Links, purpose: Purpose, token: str) -> Subscriber:
    """The subscriber a token was made for; raises :class:`BadToken` otherwise."""
    return subscriber_and_claim(session, links, purpose, token)[0]


def subscriber_and_claim(session: Session, links: Links, purpose: Purpose, token: str) -> tuple[Subscriber, TokenClaim]:
    """The subscriber a token was made for and what the token says; raises :class:`BadToken` otherwise."""
    if len(token) > TOKEN_MAX or not token.isascii():
        raise BadToken("this link is not valid")
    claim = links.read(purpose, token)
    subscriber = session.get(Subscriber, claim.subscriber_id)
    # Erasure deletes the row; an id reused after that has another address, hence the fingerprint.
    if subscriber is None or not links.matches(claim, subscriber.email_key):
        raise BadToken("this link is not valid")
    return subscriber, claim


def campaign_of(session: Session, claim: TokenClaim) -> str | None:
    """The slug of the campaign whose message carried the link, if the token names one we know."""
    if claim.campaign_id is None:
        return None
    campaign = session.get(StartedCampaign, claim.campaign_id)
    return campaign.slug if campaign is not None else None
