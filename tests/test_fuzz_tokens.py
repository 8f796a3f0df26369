"""Property tests of token verification (newsletter.delivery.links and the web's look-up of what a
token names): a token either says exactly what was signed, or it is refused with BadToken; nothing
else ever comes out, whatever the string. The budget here is small enough for `make test`; `make
fuzz` runs the same properties with the `fuzz` Hypothesis profile (see conftest.py).
"""

from __future__ import annotations

import hashlib
import string
import time
from collections.abc import Iterator

import pytest
from hypothesis import assume, event, example, given
from hypothesis import strategies as st
from itsdangerous import Signer

from newsletter.delivery.links import PURPOSES, TOKEN_MAX, BadToken, Links, Purpose
from newsletter.store.engine import Store, open_store
from newsletter.store.models import PUBLIC_ID_LENGTH, Source
from newsletter.subscribers import service
from newsletter.subscribers.addresses import normalise_address
from newsletter.subscribers.consent import ConsentInfo
from newsletter.web.tokens import signup_request_for, subscriber_for

SECRET = "fuzz-tokens-secret-0123456789abcdef"
links = Links(SECRET, "https://news.harvest.example", confirm_max_age=3600)
other_key = Links("another-secret-0123456789abcdef-xyz", "https://news.harvest.example")

purposes = st.sampled_from(PURPOSES)
# What new_public_id makes (lower-case base32), drawn by Hypothesis so that a failure can be replayed.
public_ids = st.text(string.ascii_lowercase + "234567", min_size=PUBLIC_ID_LENGTH, max_size=PUBLIC_ID_LENGTH)
request_tokens = st.text(string.hexdigits.lower()[:16], min_size=1, max_size=32)
email_keys = st.text(max_size=80)
campaign_ids = st.none() | st.integers(min_value=0, max_value=2**62)
junk = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=120).map(lambda b: b.decode("latin-1")),
    st.text(string.ascii_letters + string.digits + "-_.", max_size=200),
    st.just("A" * (TOKEN_MAX + 1)),
)


def key_for(purpose: Purpose, draw_public: str, draw_request: str) -> str:
    return draw_request if purpose == "confirm" else draw_public


# The last character of a signature (32 bytes in 43 of base64's characters) carries 2 spare bits:
# changing only those re-encodes the same bytes, which verification accepts.
SIGNED_ID = "a" * PUBLIC_ID_LENGTH
SIGNED = links.token("unsubscribe", SIGNED_ID, "")
_BASE64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
SPARE_BITS_CHANGED = _BASE64URL[_BASE64URL.index(SIGNED[-1]) ^ 1]


@given(
    purpose=purposes, public_id=public_ids, request_token=request_tokens, email_key=email_keys, campaign=campaign_ids
)
def test_a_token_says_exactly_what_was_signed(
    purpose: Purpose, public_id: str, request_token: str, email_key: str, campaign: int | None
) -> None:
    key = key_for(purpose, public_id, request_token)
    token = links.token(purpose, key, email_key, campaign_id=campaign)
    claim = links.read(purpose, token)
    assert (claim.key, claim.campaign_id) == (key, campaign) and links.matches(claim, email_key)
    assert token.isascii() and len(token) <= TOKEN_MAX and "/" not in token and "?" not in token
    for other in PURPOSES:
        if other != purpose:
            with pytest.raises(BadToken):
                links.read(other, token)
    with pytest.raises(BadToken):
        other_key.read(purpose, token)


@given(
    purpose=purposes,
    public_id=public_ids,
    email_key=email_keys,
    campaign=campaign_ids,
    position=st.integers(min_value=0),
    replacement=st.text(string.printable, min_size=0, max_size=3),
    cut=st.booleans(),
)
@example(  # a change in the signature's last character that keeps its bytes would be harmless, not a forgery
    purpose="unsubscribe",
    public_id=SIGNED_ID,
    email_key="",
    campaign=None,
    position=len(SIGNED) - 1,
    replacement=SPARE_BITS_CHANGED,
    cut=False,
)
def test_a_changed_token_is_refused_or_says_the_same(
    purpose: Purpose, public_id: str, email_key: str, campaign: int | None, position: int, replacement: str, cut: bool
) -> None:
    key = key_for(purpose, public_id, "ab12")
    token = links.token(purpose, key, email_key, campaign_id=campaign)
    at = position % (len(token) + 1)
    changed = token[:at] + replacement + ("" if cut else token[at + 1 :])
    assume(changed != token)
    try:
        claim = links.read(purpose, changed)
    except BadToken:
        return
    event("a changed token was accepted")
    # Only a re-encoding of the same signed bytes can pass (base64's spare bits): never other content.
    assert (claim.key, claim.campaign_id) == (key, campaign) and links.matches(claim, email_key)


@given(purpose=purposes, token=junk)
@example(purpose="unsubscribe", token="0-0000000000000000.")
@example(purpose="confirm", token="ünïcödé")
@example(purpose="preferences", token="")
def test_any_string_is_refused_with_badtoken_only(purpose: Purpose, token: str) -> None:
    with pytest.raises(BadToken):
        links.read(purpose, token)


def legacy(purpose: Purpose, row_id: int, email_key: str) -> str:
    payload = f"{row_id}-{links.fingerprint(email_key)}"
    return Signer(SECRET, salt=f"newsletter.{purpose}", digest_method=hashlib.sha256).sign(payload).decode()


@given(purpose=st.sampled_from(["unsubscribe", "preferences"]), row_id=st.integers(0, 10**18 - 1), email_key=email_keys)
def test_links_made_before_public_ids_are_read_and_never_made(purpose: Purpose, row_id: int, email_key: str) -> None:
    claim = links.read(purpose, legacy(purpose, row_id, email_key))
    assert claim.legacy_id == row_id and links.matches(claim, email_key)
    with pytest.raises(ValueError, match="public id"):
        links.token(purpose, str(row_id), email_key)


@given(purpose=purposes, public_id=public_ids, email_key=email_keys)
def test_confirm_links_expire_and_the_others_never_do(purpose: Purpose, public_id: str, email_key: str) -> None:
    token = links.token(purpose, key_for(purpose, public_id, "c0ffee"), email_key)
    real_time = time.time
    try:
        time.time = lambda: real_time() + 3601  # type: ignore[assignment]
        if purpose == "confirm":
            with pytest.raises(BadToken, match="expired"):
                links.read(purpose, token)
        else:
            assert links.read(purpose, token).key == public_id
    finally:
        time.time = real_time  # type: ignore[assignment]


# --- what the web looks up with a token ------------------------------------------------------------------


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, dict[str, tuple[str, str, str]]]]:
    """A store with a few people: {email: (public id, email key, signup request token)}."""
    folder = tmp_path_factory.mktemp("fuzz-tokens-")
    store = open_store(f"sqlite:///{folder / 'subscribers.db'}")
    people: dict[str, tuple[str, str, str]] = {}
    with store.session() as session:
        for name in ("ana", "bo", "cy"):
            address = f"{name}@example.org"
            subscriber = service.add(session, address, consent=ConsentInfo(Source.MANUAL, "v1")).subscriber
            outcome = service.request_signup(
                session,
                normalise_address(address),
                name="",
                topics=(),
                consent=ConsentInfo(Source.FORM, "v1"),
                secret_key=SECRET,
            )
            people[address] = (subscriber.public_id, subscriber.email_key, outcome.request_token)
    yield store, people
    store.dispose()


@given(data=st.data())
def test_the_web_finds_the_right_person_or_refuses(
    populated: tuple[Store, dict[str, tuple[str, str, str]]], data: st.DataObject
) -> None:
    store, people = populated
    owner = data.draw(st.sampled_from(sorted(people)), label="owner")
    claimed = data.draw(st.sampled_from(sorted(people)), label="fingerprint of")
    purpose = data.draw(purposes, label="purpose")
    public_id, _, request_token = people[owner]
    key = request_token if purpose == "confirm" else public_id
    token = data.draw(
        st.one_of(st.just(links.token(purpose, key, people[claimed][1])), junk),
        label="token",
    )
    with store.session(commit=False) as session:
        try:
            found = (
                signup_request_for(session, links, token).subscriber
                if purpose == "confirm"
                else subscriber_for(session, links, purpose, token)
            )
        except BadToken:
            assert owner != claimed or token != links.token(purpose, key, people[claimed][1])
            return
        assert found.email_key == owner and owner == claimed  # only the person it was made for
