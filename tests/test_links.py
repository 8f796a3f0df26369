from __future__ import annotations

import time

import pytest

from newsletter.delivery.links import BadToken, Links

links = Links("test-secret", "https://news.harvest.example/", confirm_max_age=60)


def test_a_token_round_trips_and_is_bound_to_purpose_and_person() -> None:
    token = links.token("unsubscribe", 42, "ann@example.org")
    claim = links.read("unsubscribe", token)
    assert claim.subscriber_id == 42 and links.matches(claim, "ann@example.org")
    assert not links.matches(claim, "bob@example.org")
    for other in ("preferences", "confirm"):
        with pytest.raises(BadToken):
            links.read(other, token)  # type: ignore[arg-type]
    assert "ann" not in token and "example" not in token  # the address is never in a URL


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-1], lambda t: t + "x", lambda t: "43" + t[2:], lambda t: t.replace("-", "."), lambda t: ""]
)
def test_forged_and_truncated_tokens_are_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    token = links.token("unsubscribe", 42, "ann@example.org")
    with pytest.raises(BadToken):
        links.read("unsubscribe", mangle(token))


def test_another_key_cannot_make_tokens() -> None:
    forged = Links("other-secret", "https://news.harvest.example").token("unsubscribe", 42, "ann@example.org")
    with pytest.raises(BadToken):
        links.read("unsubscribe", forged)


def test_confirm_tokens_expire_and_unsubscribe_tokens_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    confirm = links.token("confirm", 7, "a@example.org")
    unsubscribe = links.token("unsubscribe", 7, "a@example.org")
    later = time.time() + 3600 * 24 * 365
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(BadToken, match="expired"):
        links.read("confirm", confirm)
    assert links.read("unsubscribe", unsubscribe).subscriber_id == 7


def test_urls_live_under_the_public_base_url() -> None:
    assert links.url("preferences", 1, "a@example.org").startswith("https://news.harvest.example/preferences/")
    assert links.archive_url("faq-addiction") == "https://news.harvest.example/archive/faq-addiction"


def test_an_unsubscribe_link_from_a_campaign_names_it_and_old_links_still_work() -> None:
    token = links.token("unsubscribe", 42, "ann@example.org", campaign_id=7)
    claim = links.read("unsubscribe", token)
    assert (claim.subscriber_id, claim.campaign_id) == (42, 7) and links.matches(claim, "ann@example.org")
    assert links.read("unsubscribe", links.token("unsubscribe", 42, "ann@example.org")).campaign_id is None
    assert links.url("unsubscribe", 42, "ann@example.org", campaign_id=7).endswith(token)
