from __future__ import annotations

import hashlib
import time

import pytest
from itsdangerous import Signer

from newsletter.delivery.links import BadToken, Links
from newsletter.store.models import PUBLIC_ID_LENGTH, new_public_id

SECRET = "test-secret"
links = Links(SECRET, "https://news.harvest.example/", confirm_max_age=60)
ANN = new_public_id()


def legacy_token(purpose: str, subscriber_id: int, email_key: str, campaign_id: int | None = None) -> str:
    """A link as made before public ids: the subscriber's row id, signed the same way."""
    payload = f"{subscriber_id}-{links.fingerprint(email_key)}" + (f"-{campaign_id}" if campaign_id else "")
    signer = Signer(SECRET, salt=f"newsletter.{purpose}", digest_method=hashlib.sha256)
    return signer.sign(payload).decode()


def test_public_ids_are_random_opaque_and_url_safe() -> None:
    ids = {new_public_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == PUBLIC_ID_LENGTH and i.isalnum() and i.islower() for i in ids)


def test_a_token_round_trips_and_is_bound_to_purpose_and_person() -> None:
    token = links.token("unsubscribe", ANN, "ann@example.org")
    claim = links.read("unsubscribe", token)
    assert claim.key == ANN and claim.legacy_id is None and links.matches(claim, "ann@example.org")
    assert not links.matches(claim, "bob@example.org")
    for other in ("preferences", "confirm"):
        with pytest.raises(BadToken):
            links.read(other, token)  # type: ignore[arg-type]
    assert "ann" not in token and "example" not in token  # the address is never in a URL
    assert token.startswith(ANN)  # the only key in a link is random: it counts nothing


def test_links_never_name_a_row_id() -> None:
    for purpose in ("unsubscribe", "preferences"):
        with pytest.raises(ValueError, match="public id"):
            links.token(purpose, "42", "ann@example.org")  # type: ignore[arg-type]


def test_links_made_before_public_ids_still_work() -> None:
    for purpose in ("unsubscribe", "preferences"):
        claim = links.read(purpose, legacy_token(purpose, 42, "ann@example.org"))  # type: ignore[arg-type]
        assert claim.legacy_id == 42 and links.matches(claim, "ann@example.org")
    old = links.read("unsubscribe", legacy_token("unsubscribe", 42, "ann@example.org", campaign_id=7))
    assert (old.legacy_id, old.campaign_id) == (42, 7)


@pytest.mark.parametrize(
    "mangle",
    [lambda t: t[:-1], lambda t: t + "x", lambda t: "b" + t[1:], lambda t: t.replace("-", "."), lambda t: ""],
)
def test_forged_and_truncated_tokens_are_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    token = links.token("unsubscribe", "a" + ANN[1:], "ann@example.org")
    with pytest.raises(BadToken):
        links.read("unsubscribe", mangle(token))


def test_another_key_cannot_make_tokens() -> None:
    forged = Links("other-secret", "https://news.harvest.example").token("unsubscribe", ANN, "ann@example.org")
    with pytest.raises(BadToken):
        links.read("unsubscribe", forged)


def test_confirm_tokens_expire_and_unsubscribe_tokens_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    confirm = links.token("confirm", "7f3a", "a@example.org")
    unsubscribe = links.token("unsubscribe", ANN, "a@example.org")
    later = time.time() + 3600 * 24 * 365
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(BadToken, match="expired"):
        links.read("confirm", confirm)
    assert links.read("unsubscribe", unsubscribe).key == ANN


def test_urls_live_under_the_public_base_url() -> None:
    assert links.url("preferences", ANN, "a@example.org").startswith("https://news.harvest.example/preferences/")
    assert links.archive_url("faq-addiction") == "https://news.harvest.example/archive/faq-addiction"


def test_an_unsubscribe_link_from_a_campaign_names_it() -> None:
    token = links.token("unsubscribe", ANN, "ann@example.org", campaign_id=7)
    claim = links.read("unsubscribe", token)
    assert (claim.key, claim.campaign_id) == (ANN, 7) and links.matches(claim, "ann@example.org")
    assert links.read("unsubscribe", links.token("unsubscribe", ANN, "ann@example.org")).campaign_id is None
    assert links.url("unsubscribe", ANN, "ann@example.org", campaign_id=7).endswith(token)
