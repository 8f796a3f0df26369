"""The one rule for hard, soft and blocked, as the SMTP session and the bounce handler both use it."""

from __future__ import annotations

import pytest

from newsletter.delivery.outcomes import Severity, classify, enhanced_status, reply_code

HARD, SOFT, BLOCKED = Severity.HARD, Severity.SOFT, Severity.BLOCKED


@pytest.mark.parametrize(
    ("status", "diagnostic", "code", "severity", "seen"),
    [
        # the enhanced status code decides
        ("5.1.1", "smtp; 550 5.1.1 <a@example.org>: Recipient address rejected: User unknown", None, HARD, "5.1.1"),
        ("5.1.2", "", None, HARD, "5.1.2"),
        ("5.1.3", "", None, HARD, "5.1.3"),
        ("5.1.6", "", None, HARD, "5.1.6"),
        ("5.1.10", "smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found", None, HARD, "5.1.10"),
        ("5.2.1", "", None, HARD, "5.2.1"),
        ("5.4.4", "", None, HARD, "5.4.4"),
        ("5.2.2", "smtp; 552 5.2.2 Mailbox full", None, SOFT, "5.2.2"),
        # whatever the Action said: Postfix gives up on a full mailbox with 4.2.2, Exchange expires with 4.4.7
        ("4.2.2", "smtp; 452 4.2.2 Mailbox full, user unknown to patience", None, SOFT, "4.2.2"),
        (None, "550 4.4.7 QUEUE.Expired; message expired", 550, SOFT, "4.4.7"),
        ("4.0.0", "user unknown", None, SOFT, "4.0.0"),
        # policy, spam and authentication are about us, not the address
        (
            "5.7.1",
            "smtp; 550 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
            None,
            BLOCKED,
            "5.7.1",
        ),
        (
            "5.7.26",
            "550 5.7.26 Unauthenticated email is not accepted due to domain's DMARC policy",
            None,
            BLOCKED,
            "5.7.26",
        ),
        (None, "550 5.7.1 Message rejected as spam", 550, BLOCKED, "5.7.1"),
        ("5.1.8", "", None, BLOCKED, "5.1.8"),
        ("5.6.0", "", None, BLOCKED, "5.6.0"),
        # a generic status field takes the specific code from the diagnostic
        ("5.0.0", "smtp; 550 5.1.1 No such user", None, HARD, "5.1.1"),
        ("5.0.0", "smtp; 550 mailbox unavailable", None, HARD, "5.0.0"),
        ("5.0.0", "smtp; 550 go away", None, SOFT, "5.0.0"),
        # qmail and old Exchange put the code after a '#'
        (None, "Sorry, no mailbox here by that name. (#5.1.1)", None, HARD, "5.1.1"),
        # no code: the words, blocked before soft before hard
        (None, "Sender address rejected: Domain not found", None, BLOCKED, None),
        (None, "Mailbox full: user unknown to patience", None, SOFT, None),
        (None, "unrouteable address", None, HARD, None),
        (None, "all relevant MX records point to non-existent hosts", None, HARD, None),
        (None, "Sorry, I couldn't find any host named example.invalid. (#5.1.2)", None, HARD, "5.1.2"),
        # then the basic reply code
        (None, "Requested action not taken", 550, HARD, None),
        (None, "smtp; 553 sorry", None, HARD, None),
        (None, "Transaction failed", 554, SOFT, None),
        (None, "Try later", 451, SOFT, None),
        (None, "", None, SOFT, None),
    ],
)
def test_classify(status: str | None, diagnostic: str, code: int | None, severity: Severity, seen: str | None) -> None:
    outcome = classify(status=status, diagnostic=diagnostic, code=code)
    assert (outcome.severity, outcome.status) == (severity, seen), outcome.reason
    assert outcome.reason


def test_enhanced_status_is_not_read_from_addresses_or_version_numbers() -> None:
    assert enhanced_status("from [192.0.2.1] by mx (Postfix 3.5.2)") is None
    assert enhanced_status("host 10.4.4.4 said: 550 5.1.1 no") == "5.1.1"
    assert enhanced_status("Exchange 15.20.7.1 said 5.4.4") == "5.4.4"
    assert enhanced_status("5.01.001") == "5.1.1"


def test_reply_code() -> None:
    assert reply_code("smtp; 550-5.7.1 blocked") == 550
    assert reply_code("  452 4.2.2 full") == 452
    assert reply_code("X-Postfix; Host not found") is None
    assert reply_code("5501 nonsense") is None
