"""Property tests of the bounce parser and classifier (newsletter.feedback.parse and classify), and of
ingesting what they read (on SQLite and PostgreSQL), on generated delivery reports, complaints, text
bounces and auto-replies, and on mutations of the sample corpus in tests/data/bounces/.

Invariants: no traceback; every message gets a kind; what is read and stored is clean (addresses
without spaces or line breaks, status codes of the RFC 3463 form, texts within their limits, fitting
the store's columns); the same bytes always read the same; a report changes someone only when it is
matched to a message we sent them. The budget here is small enough for `make test`; `make fuzz` runs
the same properties with the `fuzz` Hypothesis profile (see conftest.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from newsletter.delivery import ledger
from newsletter.delivery.links import Links
from newsletter.delivery.verp import Verp, make_message_id
from newsletter.feedback.classify import DIAGNOSTIC_LIMIT, Reading, read
from newsletter.feedback.ingest import Ingestor
from newsletter.store.engine import Store, open_store
from newsletter.store.models import Bounce, FeedbackKind, OutboxRow, OutboxState, Source, Status, Subscriber, utcnow
from newsletter.subscribers import service
from newsletter.subscribers.consent import ConsentInfo
from tests.conftest import _fresh_postgres_database
from tests.support.bounces import CORPUS
from tests.support.campaigns import clinic_settings
from tests.support.fuzz import edits, mutate

SECRET = "fuzz-bounces-secret-0123456789abcdef"
BOUNCE_ADDRESS = "bounce@news.harvest.example"
SAMPLES = sorted(p.read_bytes() for p in CORPUS.glob("*.eml"))
_ADDRESS = re.compile(r"[^\s<>]+@[^\s<>]+")
_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
PEOPLE = [f"reader{n}@example.org" for n in range(3)]

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
line = st.text(st.characters(codec="ascii", exclude_characters="\r\n"), max_size=60)
addresses = st.one_of(
    st.sampled_from([*PEOPLE, "stranger@example.net", "ANA.LIMA@example.org", "<reader0@example.org>"]),
    st.from_regex(r"[a-z0-9.+_-]{1,30}@(example\.org|[a-z0-9-]{1,20}\.(example|test))", fullmatch=True),
    st.just("x" * 400 + "@example.org"),  # longer than the store's address columns
    line,
)
statuses = st.one_of(
    st.sampled_from(["5.1.1", "4.2.2", "5.7.1", "4.4.1", "5.0.0", "2.0.0", "", "5.1.1 (user unknown)", "9.9.9"]),
    st.from_regex(r"[245]\.\d{1,4}\.\d{1,4}", fullmatch=True),
    line,
)
actions = st.sampled_from(["failed", "delayed", "delivered", "relayed", "expanded", "FAILED", "error", "", "x"])
diagnostics = st.one_of(
    st.sampled_from(
        [
            "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
            "smtp; 452 4.2.2 Mailbox full",
            "smtp; 554 5.7.1 Message rejected as spam",
            "X-Postfix; Host or domain name not found",
            "smtp; 421 Try again later",
        ]
    ),
    line,
    st.just("smtp; 550 " + "x" * 5000),
)


def references(sent: list[tuple[int, int, str]]) -> st.SearchStrategy[tuple[str, str, str]]:
    """(VERP address, Message-ID, recipient) of a message we sent, or of nothing we sent."""
    verp = Verp(SECRET, BOUNCE_ADDRESS)
    links = Links(SECRET, "")
    ours = st.sampled_from(sent).map(
        lambda s: (verp.sender(s[1]), make_message_id(links, s[0], s[1], "news.harvest.example"), s[2])
    )
    theirs = st.tuples(
        st.sampled_from([BOUNCE_ADDRESS, "bounce+aaaaaaaaaaaaaaaaaaaaaaaaaa@news.harvest.example", "x@example.net"]),
        st.sampled_from(["<c1.m1.000000000000@news.harvest.example>", "<other@example.net>", ""]),
        addresses,
    )
    return st.one_of(ours, theirs)


@st.composite
def delivery_report(draw: st.DrawFn, ref: tuple[str, str, str]) -> bytes:
    envelope, message_id, recipient = ref
    blocks = [
        f"Final-Recipient: rfc822; {draw(st.just(recipient) | addresses)}\n"
        f"Action: {draw(actions)}\nStatus: {draw(statuses)}\n"
        f"Diagnostic-Code: {draw(diagnostics).replace('{rcpt}', recipient)}\n"
        for _ in range(draw(st.integers(0, 3)))
    ]
    returned = f"Message-ID: {message_id}\nSubject: {draw(line)}\nTo: {recipient}\n" if message_id else ""
    return (
        f"Return-Path: <>\nDelivered-To: {envelope}\nFrom: MAILER-DAEMON@relay.example.net\n"
        f"Subject: {draw(line)}\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        f"--B\nContent-Type: text/plain\n\n{draw(text)}\n"
        f"--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; relay.example.net\n\n"
        + "\n".join(blocks)
        + f"\n--B\nContent-Type: {draw(st.sampled_from(['text/rfc822-headers', 'message/rfc822']))}\n\n{returned}"
        + "\n--B--\n"
    ).encode("utf-8", "surrogateescape")


@st.composite
def complaint(draw: st.DrawFn, ref: tuple[str, str, str]) -> bytes:
    envelope, message_id, recipient = ref
    rcpt = f"Original-Rcpt-To: <{recipient}>\n" if draw(st.booleans()) else ""
    return (
        "Return-Path: <>\nFrom: fbl@fbl.example.com\nTo: fbl@news.harvest.example\n"
        f"Subject: FW: {draw(line)}\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="P"\n\n'
        f"--P\nContent-Type: text/plain\n\n{draw(text)}\n"
        f"--P\nContent-Type: message/feedback-report\n\n"
        f"Feedback-Type: {draw(st.sampled_from(['abuse', 'fraud', 'not-spam', 'auth-failure', '', 'x']))}\n"
        f"Version: 1\nOriginal-Mail-From: <{envelope}>\n{rcpt}\n"
        f"--P\nContent-Type: text/rfc822-headers\n\nMessage-ID: {message_id}\nTo: {recipient}\n\n--P--\n"
    ).encode("utf-8", "surrogateescape")


@st.composite
def text_bounce(draw: st.DrawFn, ref: tuple[str, str, str]) -> bytes:
    envelope, message_id, recipient = ref
    failed = f"X-Failed-Recipients: {recipient}\n" if draw(st.booleans()) else ""
    return (
        f"Return-Path: <>\nDelivered-To: {envelope}\n{failed}"
        f"From: {draw(st.sampled_from(['Mail Delivery System <Mailer-Daemon@mx.example.net>', 'postmaster@x.example', 'someone@example.org']))}\n"
        f"Subject: {draw(st.sampled_from(['Mail delivery failed', 'Undeliverable', 'Warning: message delayed', 'Hello']))}\n\n"
        f"{draw(text)}\n\n  {recipient}\n    {draw(diagnostics).replace('{rcpt}', recipient)}\n\n"
        f"------ This is a copy of the message, including all the headers. ------\n"
        f"Message-ID: {message_id}\nTo: {recipient}\n"
    ).encode("utf-8", "surrogateescape")


@st.composite
def auto_reply(draw: st.DrawFn, ref: tuple[str, str, str]) -> bytes:
    envelope, message_id, recipient = ref
    return (
        f"Delivered-To: {envelope}\nFrom: <{recipient}>\nSubject: {draw(st.sampled_from(['Out of office', 'Re: hi', 'Automatic reply']))}\n"
        f"{draw(st.sampled_from(['Auto-Submitted: auto-replied', 'X-Autoreply: yes', 'Precedence: auto_reply', '']))}\n"
        f"In-Reply-To: {message_id}\n\n{draw(text)}\n"
    ).encode("utf-8", "surrogateescape")


corpus_edits = edits(
    20_000, 8, 40, [b"\n", b"\r\n", b"\n\n", b"--", b"Content-Type: multipart/mixed\n", b"\x00", b"\xff"], max_edits=8
)


def messages(sent: list[tuple[int, int, str]]) -> st.SearchStrategy[bytes]:
    generated = references(sent).flatmap(
        lambda ref: st.one_of(delivery_report(ref), complaint(ref), text_bounce(ref), auto_reply(ref))
    )
    mutated = st.tuples(st.sampled_from(SAMPLES), corpus_edits).map(lambda pair: mutate(*pair))
    return st.one_of(generated, mutated, st.binary(max_size=300))


def check_reading(reading: Reading, raw: bytes) -> None:
    assert isinstance(reading.kind, FeedbackKind) and reading.reason
    assert re.fullmatch(r"[0-9a-f]{64}", reading.key)
    assert len(reading.subject) <= 200 and "\n" not in reading.subject and "\r" not in reading.subject
    for address in [reading.sender, *reading.envelope] + [a for f in reading.findings for a in f.addresses]:
        assert address == "" or _ADDRESS.fullmatch(address), address
    for finding in reading.findings:
        assert isinstance(finding.kind, FeedbackKind)
        assert finding.status_code is None or _STATUS.fullmatch(finding.status_code), finding.status_code
        assert len(finding.diagnostic) <= DIAGNOSTIC_LIMIT
    again = read(raw)
    assert (again.key, again.kind, again.findings) == (reading.key, reading.kind, reading.findings)


FIXED_SENT = [(1, 1, "reader0@example.org"), (1, 2, "reader1@example.org")]


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=messages(FIXED_SENT))
@example(raw=b"")
# Found by these properties: a header with an 8-bit byte came as an email.header.Header, and
# `.lower()` on it raised, in our code and in flufl.bounce's detectors.
@example(raw=b"From: MAILER-DAEMON\x80@relay.example.com\nSubject: failure notice\n\n<a@gone.example>: no host\n")
# ... a text bounce without From: made a flufl.bounce detector raise IndexError.
@example(raw=b"Return-Path: <>\nSubject: failure notice\n\nhello\n")
# ... an address too long for any mailbox (and the store's columns) was cut, and kept, as the sender.
@example(raw=b"From: <" + b"x" * 400 + b"@example.org>\nSubject: Out of office\nAuto-Submitted: auto-replied\n\n")
# ... a NUL in a charset's name made decoding raise ValueError, not LookupError.
@example(
    raw=b"From: Mailer-Daemon@x.example\nX-Failed-Recipients: a@b.example\nContent-Type: text/plain; charset=\x00x\n\na@b.example\n"
)
@example(raw=b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n--B\n")
@example(raw=b"Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@b.example\nAction: failed\n")
def test_any_message_is_read_and_what_is_read_is_clean(raw: bytes) -> None:
    check_reading(read(raw), raw)


# --- ingesting what was read, on both databases --------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def mailed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Store, list[tuple[int, int, str]]]]:
    """A store where a campaign went to three people a day ago: (store, [(campaign, outbox row, address)])."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('fuzz-bounces-') / 'db.sqlite'}"])
    else:
        urls = _fresh_postgres_database(request.getfixturevalue("postgres_admin_url"))
    url = next(urls)
    store = open_store(url)
    sent = []
    with store.session() as session:
        campaign = ledger.record_campaign(session, "fuzz", "Fuzz", "")
        for email in PEOPLE:
            subscriber = service.add(session, email, consent=ConsentInfo(Source.MANUAL, "v1"), confirmed=True)
            row = OutboxRow(
                campaign_id=campaign.id,
                subscriber_id=subscriber.subscriber.id,
                state=OutboxState.SENT.value,
                attempts=1,
                sent_at=utcnow() - timedelta(days=1),
            )
            session.add(row)
            session.flush()
            sent.append((campaign.id, row.id, email))
    yield store, sent
    store.dispose()
    for _ in urls:  # drops the PostgreSQL database
        pass


VERP = Verp(SECRET)
LINKS = Links(SECRET, "")


def check_match(session: Session, bounce: Bounce) -> None:
    """A matched bounce names the row it was matched to in its own bytes, the way it says it was
    matched (newsletter/feedback/match.py): the row's VERP token, its Message-ID, or the address."""
    row = session.get(OutboxRow, bounce.outbox_id)
    assert row is not None and (bounce.subscriber_id, bounce.campaign_id) == (row.subscriber_id, row.campaign_id)
    subscriber = session.get(Subscriber, row.subscriber_id)
    assert subscriber is not None and bounce.raw is not None
    ties = {
        "verp": VERP.token(row.id),
        "message-id": f"c{row.campaign_id}.m{row.id}.{LINKS.tag(f'message:{row.campaign_id}.{row.id}')}@",
        "final-recipient": subscriber.email_key,
    }
    assert bounce.matched_by in ties, bounce.matched_by
    assert ties[bounce.matched_by].encode() in bounce.raw.lower(), (bounce.matched_by, row.id, bounce.raw)


@pytest.fixture(scope="module")
def ingestor(mailed: tuple[Store, list[tuple[int, int, str]]], tmp_path_factory: pytest.TempPathFactory) -> Ingestor:
    project = tmp_path_factory.mktemp("fuzz-bounces-project-")
    return Ingestor(mailed[0], clinic_settings(project, secret_key=SECRET, bounce_address=BOUNCE_ADDRESS))


FOUND = [
    # Found by this property: PostgreSQL refuses a NUL in text, and a subject held one.
    [b"Return-Path: <>\nFrom: MAILER-DAEMON@relay.example.net\nSubject: \x00\n\nhello\n"],
    [b"From: Mail Delivery System <mailer-daemon@x.example>\nSubject: failed\n\na@b.example\x00\n"],
]


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
@example(data=None)  # the batches in FOUND
def test_ingesting_any_messages_stores_them_cleanly_and_changes_only_whom_they_match(
    mailed: tuple[Store, list[tuple[int, int, str]]], ingestor: Ingestor, data: st.DataObject | None
) -> None:
    store, sent = mailed
    if data is None:
        batches = FOUND
    else:
        batches = [data.draw(st.lists(messages(sent), min_size=1, max_size=4), label="batch")]
    for batch in batches:
        ingest(store, ingestor, batch)


def ingest(store: Store, ingestor: Ingestor, batch: list[bytes]) -> None:
    with store.session() as session:  # everyone can be changed again: nobody stays suppressed
        session.execute(update(Subscriber).values(status=Status.CONFIRMED.value, unsubscribed_at=None))
    with store.session(commit=False) as session:
        before = session.scalar(select(func.count()).select_from(Bounce))
        last = session.scalar(select(func.max(Bounce.id))) or 0
    report = ingestor.run([(f"m{n}", raw) for n, raw in enumerate(batch)], "file")
    assert report.errors == [], report.errors
    with store.session(commit=False) as session:
        after = session.scalar(select(func.count()).select_from(Bounce))
        assert before is not None and after is not None and before <= after <= before + len(batch)
        for bounce in session.scalars(select(Bounce)):
            assert bounce.status_code is None or _STATUS.fullmatch(bounce.status_code)
            assert bounce.recipient is None or _ADDRESS.fullmatch(bounce.recipient)
            assert bounce.changed is None or bounce.subscriber_id is not None  # only whom it matched
            assert (bounce.outbox_id is None) == (bounce.subscriber_id is None) == (bounce.matched_by is None)
            if bounce.outbox_id is not None and bounce.id > last:  # the older ones were checked when new
                check_match(session, bounce)
                event(f"matched by {bounce.matched_by}")
        changed = session.scalars(select(Bounce).where(Bounce.id > last, Bounce.changed.is_not(None))).all()
        assert len(changed) == report.suppressed, report.as_dict()
        for bounce in changed:  # the person it names now has the status it says it gave them
            assert session.get(Subscriber, bounce.subscriber_id).status == bounce.changed  # type: ignore[union-attr]
            event("changed")
        for subscriber in session.scalars(select(Subscriber)):
            assert subscriber.email in PEOPLE  # nothing that came back adds anyone
        statuses = set(session.scalars(select(Subscriber.status)))
    assert statuses <= {s.value for s in Status}
