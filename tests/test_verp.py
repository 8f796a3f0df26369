"""VERP senders and our Message-IDs: short, opaque, and only ours read back."""

from __future__ import annotations

import pytest

from newsletter.delivery.links import Links
from newsletter.delivery.verp import TOKEN_LENGTH, Verp, make_message_id, read_message_id
from newsletter.errors import ConfigError

verp = Verp("test-secret", "bounce@news.harvest.example")


def test_a_sender_names_its_row_and_reads_back() -> None:
    sender = verp.sender(42)
    local, _, domain = sender.partition("@")
    assert domain == "news.harvest.example" and local.startswith("bounce+")
    token = local.removeprefix("bounce+")
    assert len(token) == TOKEN_LENGTH and token.isalnum() and token == token.lower()
    assert "42" not in token
    assert verp.outbox_id(token) == 42
    assert verp.outbox_id_in(sender) == 42
    assert verp.outbox_id_in(f"<{sender.upper()}>") == 42  # a relay may change the case
    assert verp.outbox_id_in(f"bounce+{token}@relay.example") == 42  # or rewrite the domain


def test_tokens_reveal_no_order_and_differ_by_key() -> None:
    tokens = [verp.token(n) for n in range(1, 21)]
    assert len(set(tokens)) == 20
    assert sorted(tokens) != tokens  # consecutive rows do not give ordered tokens
    assert len({t[:4] for t in tokens}) > 15  # nor tokens that share a telling prefix
    assert Verp("other-secret").token(1) != tokens[0]
    assert Verp("other-secret").outbox_id(tokens[0]) is None


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a" * 26, "!" * 26, "a" * 27],
)
def test_anything_we_did_not_make_is_refused(token: str) -> None:
    assert verp.outbox_id(token) is None


def test_flipping_any_character_breaks_the_token() -> None:
    token = verp.token(7)
    for i in range(len(token)):
        forged = token[:i] + ("b" if token[i] != "b" else "c") + token[i + 1 :]
        assert verp.outbox_id(forged) is None, i


def test_addresses_without_a_token_name_no_row() -> None:
    assert verp.outbox_id_in("bounce@news.harvest.example") is None
    assert verp.outbox_id_in("ana+newsletter@example.org") is None
    assert verp.outbox_id_in("not an address") is None


def test_a_bad_bounce_address_or_missing_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bounce_address"):
        Verp("k", "not an address")
    with pytest.raises(ConfigError, match="too long"):
        Verp("k", "b" * 50 + "@example.org")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Verp("", "bounce@example.org")
    with pytest.raises(ConfigError, match="not set"):
        Verp("k").sender(1)


def test_our_message_ids_read_back_and_others_do_not() -> None:
    links = Links("test-secret", "https://news.harvest.example")
    message_id = make_message_id(links, 3, 1234, "news.harvest.example")
    assert read_message_id(links, message_id) == (3, 1234)
    assert read_message_id(links, message_id.strip("<>")) == (3, 1234)
    assert read_message_id(Links("other", "https://x.example"), message_id) is None
    assert read_message_id(links, message_id.replace("m1234", "m1235")) is None
    assert read_message_id(links, "<1700000000.abc@news.harvest.example>") is None
