"""Classification of returned messages, on the sample corpus in tests/data/bounces/ (written for this
project in the formats real MTAs and providers send), with the traps the issue names."""

from __future__ import annotations

import pytest

from newsletter.feedback.classify import read
from newsletter.store.models import FeedbackKind
from tests.support.bounces import CORPUS, corpus

HARD, SOFT, BLOCKED, DELAYED = FeedbackKind.HARD, FeedbackKind.SOFT, FeedbackKind.BLOCKED, FeedbackKind.DELAYED
COMPLAINT, AUTO, OTHER = FeedbackKind.COMPLAINT, FeedbackKind.AUTO_REPLY, FeedbackKind.OTHER

# file: (kind, failed address, status code, Message-ID of the original)
EXPECTED = {
    # standard DSNs (RFC 3464)
    "postfix-user-unknown.eml": (HARD, "ana.lima@example.org", "5.1.1", "<c1.m17.0a1b2c3d4e5f@news.harvest.example>"),
    "postfix-full-mailbox-expired.eml": (
        SOFT,
        "bruno.costa@example.net",
        "4.2.2",
        "<c1.m18.1b2c3d4e5f6a@news.harvest.example>",
    ),
    "postfix-mailbox-full-5.2.2.eml": (
        SOFT,
        "otto.ramos@example.org",
        "5.2.2",
        "<c1.m28.1f2a3b4c5d6e@news.harvest.example>",
    ),
    "postfix-delayed-quoted-user-unknown.eml": (
        DELAYED,
        "carla.dias@example.com",
        "4.4.1",
        "<c1.m19.2c3d4e5f6a7b@news.harvest.example>",
    ),
    "relay-spam-block-5.7.1.eml": (
        BLOCKED,
        "marco.leite@mail.example.org",
        "5.7.1",
        "<c1.m26.9d0e1f2a3b4c@news.harvest.example>",
    ),
    "relay-dmarc-reject.eml": (
        BLOCKED,
        "nina.prado@example.com",
        "5.7.26",
        "<c1.m27.0e1f2a3b4c5d@news.harvest.example>",
    ),
    # Microsoft 365 and Exchange NDRs
    "m365-recipient-not-found.eml": (
        HARD,
        "kai.souza@example.com",
        "5.1.10",
        "<c1.m24.7b8c9d0e1f2a@news.harvest.example>",
    ),
    "exchange-queue-expired.eml": (
        SOFT,
        "lara.vieira@corp.example.com",
        "4.4.7",
        "<c1.m25.8c9d0e1f2a3b@news.harvest.example>",
    ),
    # text bounces: Exim and qmail
    "exim-user-unknown.eml": (HARD, "diego.alves@example.net", "5.1.1", "<c1.m20.3d4e5f6a7b8c@news.harvest.example>"),
    "exim-unrouteable.eml": (HARD, "elisa.nunes@nowhere.example", None, "<c1.m21.4e5f6a7b8c9d@news.harvest.example>"),
    "exim-delay-warning.eml": (DELAYED, "helena.cruz@example.net", "4.7.1", None),
    "qmail-no-mailbox.eml": (HARD, "igor.matos@example.com", "5.1.1", "<c1.m22.5f6a7b8c9d0e@news.harvest.example>"),
    "qmail-host-not-found.eml": (
        HARD,
        "joana.pires@gone.example",
        "5.1.2",
        "<c1.m23.6a7b8c9d0e1f@news.harvest.example>",
    ),
    # ARF complaints (RFC 5965)
    "arf-abuse-complaint.eml": (
        COMPLAINT,
        "paula.reis@example.com",
        None,
        "<c1.m29.2a3b4c5d6e7f@news.harvest.example>",
    ),
    "arf-redacted-headers-only.eml": (COMPLAINT, None, None, "<c1.m30.3b4c5d6e7f8a@news.harvest.example>"),
    # not bounces
    "out-of-office-auto-submitted.eml": (AUTO, None, None, "<c1.m31.4c5d6e7f8a9b@news.harvest.example>"),
    "out-of-office-vacation.eml": (AUTO, None, None, None),
    "human-please-remove-me.eml": (OTHER, None, None, "<c1.m32.5d6e7f8a9b0c@news.harvest.example>"),
    "human-quotes-a-bounce.eml": (OTHER, None, None, None),
}


def test_the_corpus_is_covered() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_sample(name: str) -> None:
    kind, address, status, message_id = EXPECTED[name]
    reading = read(corpus(name))
    assert reading.kind is kind, reading.reason
    assert reading.reason
    if address is None:
        assert reading.findings == []
    else:
        assert [f.address for f in reading.findings] == [address]
        assert reading.findings[0].status_code == status
        assert reading.findings[0].kind is kind
    assert (message_id in reading.message_ids) if message_id else all("c1.m" not in m for m in reading.message_ids)


def test_trap_a_hard_phrase_in_quoted_text_while_the_dsn_says_delayed() -> None:
    raw = corpus("postfix-delayed-quoted-user-unknown.eml")
    assert b"User unknown" in raw and b"550 5.1.1" in raw  # the trap is really there
    reading = read(raw)
    assert reading.kind is DELAYED and reading.findings[0].status_code == "4.4.1"


def test_trap_an_out_of_office_with_no_dsn_mentioning_user_unknown() -> None:
    raw = corpus("out-of-office-auto-submitted.eml")
    assert b"user unknown" in raw
    reading = read(raw)
    assert reading.kind is AUTO and reading.findings == []
    assert "Auto-Submitted" in reading.reason


def test_trap_a_person_asking_to_be_removed_is_kept_for_staff_not_acted_on() -> None:
    reading = read(corpus("human-please-remove-me.eml"))
    assert reading.kind is OTHER and not reading.is_report and "staff" in reading.reason


def test_trap_an_address_in_quoted_text_is_never_a_finding() -> None:
    reading = read(corpus("human-quotes-a-bounce.eml"))
    assert reading.kind is OTHER and reading.findings == []


def test_mtas_own_auto_submitted_marker_does_not_make_a_bounce_an_auto_reply() -> None:
    raw = corpus("postfix-user-unknown.eml")
    assert b"Auto-Submitted: auto-replied" in raw
    assert read(raw).kind is HARD


def test_hard_or_soft_is_decided_by_what_failed_not_by_action_failed() -> None:
    for name in ("postfix-full-mailbox-expired.eml", "exchange-queue-expired.eml"):
        raw = corpus(name)
        assert b"Action: failed" in raw
        assert read(raw).kind is SOFT, name


def test_the_key_is_the_message_id_or_the_bytes() -> None:
    raw = corpus("postfix-user-unknown.eml")
    assert read(raw).key == read(raw.replace(b"Date: Tue,  3 Nov", b"Date: Wed,  4 Nov")).key
    without_id = b"\n".join(line for line in raw.split(b"\n") if not line.startswith(b"Message-Id:"))
    assert read(without_id).key == read(without_id).key != read(raw).key
    assert read(without_id + b"\n").key != read(without_id).key


def test_a_delivery_report_without_failures_changes_nothing() -> None:
    raw = (
        corpus("postfix-user-unknown.eml")
        .replace(b"Action: failed", b"Action: delivered")
        .replace(b"Status: 5.1.1", b"Status: 2.0.0")
    )
    reading = read(raw)
    assert reading.kind is OTHER and "delivered" in reading.reason


def test_not_spam_feedback_is_not_a_complaint() -> None:
    raw = corpus("arf-abuse-complaint.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    assert read(raw).kind is OTHER


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\xff\xfe garbage", b"Subject: hi\n\nbody", b"Content-Type: multipart/report\n\n--x--"],
)
def test_anything_at_all_is_read_without_error(raw: bytes) -> None:
    assert read(raw).kind is OTHER
