"""Property tests of the CSV importer, on generated exports (text in any encoding, separator and
quoting, huge cells) and on bytes (arbitrary, and mutations of a well-formed export).

Invariants: no traceback (a file is imported, or refused with one NewsletterError line); every row of
a readable export is accounted for once (imported, duplicate, invalid or without consent); what is
stored is clean (a normalised address, a name without control characters); and a CSV export of what
was imported runs no formula in a spreadsheet. The budget here is small enough for `make test`;
`make fuzz` runs the same properties with the `fuzz` Hypothesis profile (see conftest.py).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from newsletter.errors import NewsletterError
from newsletter.store.engine import Store, open_store
from newsletter.store.models import Consent, Subscriber
from newsletter.subscribers import listing
from newsletter.subscribers.addresses import NAME_MAX, normalise_address
from newsletter.subscribers.export import csv_chunks
from newsletter.subscribers.importer import ImportReport, import_csv, open_csv
from tests.support.fuzz import edits, mutate

TOPICS = {"faq-updates": "FAQ updates", "clinic-news": "Clinic news", "client-stories": "Client stories"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HEADERS = {
    "email": ["Email Address", "email", "E-mail", "EMAIL ADDRESS", "mail"],
    "name": ["Name", "Full name", "name"],
    "topics": ["Topics", "Which topics?", "topics"],
    "consent": ["Consent", "I agree to receive emails", "consent"],
    "submitted": ["Submitted At", "Timestamp", "submitted_at"],
}

valid_emails = st.one_of(
    st.integers(0, 40).map(lambda n: f"person.{n}@example.org"),
    st.sampled_from(
        [
            "Ana.Lima@Example.ORG",
            " bo@example.org ",
            "ünï@example.org",
            "cy+news@example.com",
            "=cmd@example.org",
            "-minus@example.org",
            "@at@example.org",
            '"quoted local"@example.org',
            "dee@bücher.example",
        ]
    ),
)
any_text = st.text(max_size=40)
names = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            '=HYPERLINK("https://evil.example/","Open record")',
            "+1 555 0100",
            "-2+3",
            "@SUM(A1:A9)",
            "\tTab",
            "\rCR",
            "Ana\r\nBcc: victim@example.org",
            "=?UTF-8?Q?=0A?=Bcc: x@example.org",
            "Zoë \u2028 Ångström",
            "{{ 7*7 }}",
            "x" * (NAME_MAX + 1),
        ]
    ),
)
topic_cells = st.lists(
    st.sampled_from([*TOPICS.values(), *TOPICS, "Retired topic", "", " faq-updates "]), max_size=4
).flatmap(lambda labels: st.sampled_from([",", ";", ", "]).map(lambda sep: sep.join(labels)))
consent_cells = st.sampled_from(["yes", "Yes", "TRUE", "1", "checked", "I agree", "no", "", "0", "maybe", "☑"])
times = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat(sep=" ")),
    st.sampled_from(["2026-01-02 10:00", "9/1/2026 13:00", "9/1/2026 1:00 PM", "yesterday", "", "2999-01-01"]),
)
cells = {
    "email": st.one_of(valid_emails, valid_emails, any_text),
    "name": names,
    "topics": topic_cells,
    "consent": consent_cells,
    "submitted": times,
}


@dataclass(frozen=True)
class Export:
    header: list[str]
    rows: list[list[str]]
    delimiter: str
    quoting: int
    terminator: str
    encoding: str

    def text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.delimiter, quoting=self.quoting, lineterminator=self.terminator)
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buffer.getvalue()

    def data(self) -> bytes:
        return self.text().encode(self.encoding, errors="replace")

    @property
    def plain(self) -> bool:
        """What every version of the importer reads: commas, UTF-8, no line break inside a cell."""
        return (
            self.delimiter == ","
            and self.encoding in ("utf-8", "utf-8-sig")
            and not any("\r" in c or "\n" in c for r in self.rows for c in r)
        )

    @property
    def oversized(self) -> bool:
        """A cell over the csv module's field limit: the importer refuses such a file, in one line."""
        return any(len(c) > csv.field_size_limit() for r in self.rows for c in r)

    @property
    def data_rows(self) -> int:
        """Rows the importer must account for: every row that is not blank."""
        return sum(1 for row in self.rows if "".join(row).strip())


@st.composite
def exports(draw: st.DrawFn) -> Export:
    columns = draw(st.lists(st.sampled_from(list(HEADERS)), min_size=1, max_size=5, unique=True))
    if "email" not in columns:
        columns.insert(draw(st.integers(0, len(columns))), "email")
    header = [draw(st.sampled_from(HEADERS[c])) for c in columns]
    if draw(st.booleans()):
        header.append(draw(st.sampled_from(["Notes", "Phone", ""])))  # a column nobody asked for
    rows = [
        [draw(cells[c]) for c in columns] + ([draw(any_text)] if len(header) > len(columns) else [])
        for _ in range(draw(st.integers(0, 12)))
    ]
    if draw(st.integers(0, 9)) == 0 and rows:
        rows[0][0] = "x" * 200_000  # a huge cell: over the csv module's field limit
    return Export(
        header,
        rows,
        delimiter=draw(st.sampled_from([",", ",", ",", ";", "\t", "|"])),
        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])),
        terminator=draw(st.sampled_from(["\r\n", "\n", "\r"])),
        encoding=draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"])),
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("fuzz-import-")
    opened = open_store(f"sqlite:///{folder / 'subscribers.db'}")
    yield opened
    opened.dispose()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-import-files-")


def run_import(store: Store, path: Path) -> ImportReport | None:
    """Import into a transaction that is rolled back; check what was stored before it is. None when
    the file was refused."""
    refusal = None
    with store.session(commit=False) as session:
        try:
            with open_csv(str(path)) as stream:
                report = import_csv(
                    session, stream, origin=path.name, wording_version="v1", confirmed=True, topic_choices=TOPICS
                )
            check_stored(session)
        except NewsletterError as exc:
            refusal = str(exc)
    if refusal is not None:
        assert refusal and "\n" not in refusal, refusal  # one line, for a person
        event("refused")
        return None
    event("imported" if report.imported else "read, nothing imported")
    return report


def check_stored(session) -> None:  # type: ignore[no-untyped-def]
    subscribers = session.scalars(select(Subscriber)).all()
    for subscriber in subscribers:
        address = normalise_address(subscriber.email)
        assert (address.email, address.key) == (subscriber.email, subscriber.email_key)
        name = subscriber.name
        assert len(name) <= NAME_MAX and name == name.strip()
        assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") for c in name), name
        assert set(subscriber.tag_names) <= set(TOPICS)
    consents = session.scalar(select(Consent.id).where(Consent.subscriber_id.not_in([s.id for s in subscribers])))
    assert consents is None
    exported = "".join(csv_chunks(listing.summary(s) for s in listing.rows(session.connection())))
    for row in csv.reader(io.StringIO(exported, newline="")):
        assert not any(cell.startswith(FORMULA_STARTS) for cell in row), row


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(export=exports())
@example(
    export=Export(["Email Address", "Name"], [["=cmd@example.org", "=1+1"]], ",", csv.QUOTE_MINIMAL, "\r\n", "utf-8")
)
@example(export=Export(["email"], [["x" * 200_000]], ",", csv.QUOTE_MINIMAL, "\n", "utf-8"))
def test_an_export_is_imported_or_refused_in_one_line(store: Store, folder: Path, export: Export) -> None:
    path = folder / "export.csv"
    path.write_bytes(export.data())
    report = run_import(store, path)
    if export.plain and not export.oversized:
        event("plain")
        assert report is not None, "a plain export was refused"  # an importer refusing everything fails here
    if report is None or not export.plain:
        return
    accounted = report.imported + report.duplicates + len(report.invalid) + len(report.no_consent)
    assert accounted == export.data_rows, report.as_dict()


SAMPLE = (
    b"Submitted At,Name,Email Address,Topics,Consent\r\n"
    b'2026-01-02 10:00,"Lima, Ana",ana@example.org,"FAQ updates, Clinic news",yes\r\n'
    b"2026-01-03 11:30,Bo,bo@example.org,Client stories,I agree\r\n"
    b"9/1/2026 13:00,Cy,cy@example.org,,no\r\n"
)
sample_edits = edits(10_000, 6, 8, [b'"', b",", b"\r\n", b"\x00", b"\xff\xfe", b"\xe9", b"="], max_edits=6)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=400), sample_edits.map(lambda e: mutate(SAMPLE, e))))
@example(data=b'"\n')  # found by this test: a header cell with a line break made a two-line error
@example(data=b"\xef\xbb\xbf")  # a byte-order mark and nothing else
@example(data=b"email\r\nana@example.org\x00\r\n")
@example(data=b"\xff\xfeE\x00m\x00a\x00i\x00l\x00")  # UTF-16 without asking
def test_any_bytes_are_imported_or_refused_in_one_line(store: Store, folder: Path, data: bytes) -> None:
    path = folder / "bytes.csv"
    path.write_bytes(data)
    run_import(store, path)
