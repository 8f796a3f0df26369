from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.errors import InputError, InvalidAddress
from newsletter.subscribers.addresses import clean_name, clean_tag, normalise_address

local = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}[A-Za-z0-9]", fullmatch=True).filter(lambda s: ".." not in s)
domain = st.sampled_from(["example.org", "Example.COM", "news.harvest.example", "müller.example.org"])


@given(local, domain)
def test_normalisation_is_idempotent_and_case_insensitive(user: str, host: str) -> None:
    address = normalise_address(f"  {user}@{host} ")
    assert normalise_address(address.email) == address
    assert normalise_address(f"{user.upper()}@{host.upper()}").key == address.key
    assert address.key == address.key.lower()


def test_no_dns_is_needed() -> None:
    # .example never resolves; a DNS check would reject it.
    assert normalise_address("a@news.harvest.example").email == "a@news.harvest.example"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "plain",
        "ünïcode@example.org",
        "a@b",
        "a@@example.org",
        "a b@example.org",
        "a@example.org\nBcc: x@example.com",
    ],
)
def test_invalid_addresses(raw: str) -> None:
    with pytest.raises(InvalidAddress):
        normalise_address(raw)


@given(st.text())
def test_clean_names_have_no_control_or_separator_characters(raw: str) -> None:
    try:
        name = clean_name(raw)
    except InputError:
        assert len(raw) > 200
        return
    assert not any(c in name for c in "\r\n\x00\u2028\u2029\x85\t")
    assert name == " ".join(name.split())


def test_tags_are_slugs() -> None:
    assert clean_tag(" Client Stories ") == "client-stories"
    with pytest.raises(InputError):
        clean_tag("no/slashes")
