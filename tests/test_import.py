from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from newsletter.errors import ConfigError, InputError
from newsletter.store.engine import Store
from newsletter.store.models import Consent, Event, Source, Status, Subscriber
from newsletter.subscribers import listing, service
from newsletter.subscribers.addresses import normalise_address
from newsletter.subscribers.consent import ConsentInfo
from newsletter.subscribers.importer import import_csv
from tests.conftest import Newsletter

KEY = "test-secret-key-0123456789abcdef-long"


def run_import(store: Store, text: str, **kwargs: object):  # type: ignore[no-untyped-def]
    with store.session() as session:
        return import_csv(
            session,
            io.StringIO(text, newline=""),
            origin="signups.csv",
            wording_version="v1",
            secret_key=KEY,
            **kwargs,  # type: ignore[arg-type]
        )


def count(store: Store, model: type) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_form_export_quirks_are_understood(store: Store) -> None:
    text = (
        "\ufeffSubmitted,FIRST NAME,Last Name,E-mail,Notes\r\n"
        '2026-09-01,Ann,"Lee, Jr.",ann@example.org,"likes, commas"\r\n'
        '2026-09-02,"Bo\nMulti",Line,bo@example.org,"a\r\nmulti-line note"\r\n'
        "2026-09-03,Cy,,cy@example.org,extra,columns,here\r\n"
    )
    report = run_import(store, text)
    assert report.imported == 3 and not report.invalid
    with store.session() as session:
        assert service.get(session, "ann@example.org").name == "Ann Lee, Jr."
        assert service.get(session, "bo@example.org").name == "Bo Multi Line"
        assert service.get(session, "cy@example.org").name == "Cy"
        assert service.get(session, "cy@example.org").status == Status.PENDING


@pytest.mark.parametrize("header", ["Email", "email address", "E-MAIL", "Email Address"])
def test_email_headers_are_recognised_case_insensitively(store: Store, header: str) -> None:
    assert run_import(store, f"Name,{header}\nAnn,ann@example.org\n").imported == 1


def test_report_counts_every_kind_of_row_with_line_numbers(store: Store) -> None:
    with store.session() as session:
        from newsletter.store.models import Source

        consent = service.ConsentInfo(Source.MANUAL, "v1")
        old = service.add(session, "left@example.org", consent=consent, secret_key=KEY).subscriber
        service.unsubscribe(session, old, actor="test")
        service.add(session, "known@example.org", consent=consent, name="Known", secret_key=KEY)
    text = (
        "Email,Name\n"
        "new@example.org,New\n"  # line 2
        '"bad address",Bad\n'  # line 3
        "NEW@example.org,Again\n"  # line 4: duplicate in file
        '"multi\nline@",x\n'  # lines 5-6: invalid, reported at its first line
        "left@example.org,Left\n"  # line 7: suppressed
        "known@example.org,Renamed\n"  # line 8: updated
        ",\n"  # blank row: ignored
        "known2@,\n"  # line 10: invalid
    )
    report = run_import(store, text)
    assert (report.imported, report.updated, report.duplicates, report.suppressed) == (1, 1, 1, 1)
    assert [p["line"] for p in report.invalid] == [3, 5, 10]
    assert all(p["reason"] for p in report.invalid)
    with store.session() as session:
        assert service.get(session, "left@example.org").status == Status.UNSUBSCRIBED
        assert service.get(session, "known@example.org").name == "Renamed"


def test_importing_the_same_file_twice_changes_nothing(store: Store) -> None:
    text = "Email,Name\na@example.org,A\nb@example.org,B\n"
    first = run_import(store, text, tags=["faq-updates"], confirmed=True)
    assert first.imported == 2
    events, consents = count(store, Event), count(store, Consent)
    second = run_import(store, text, tags=["faq-updates"], confirmed=True)
    assert (second.imported, second.updated, second.unchanged) == (0, 0, 2)
    assert (count(store, Event), count(store, Consent)) == (events, consents)


def test_imported_consent_records_how_and_what_confirmed_it(store: Store) -> None:
    run_import(store, "Email\nc@example.org\n", confirmed=True)
    with store.session() as session:
        subscriber = service.get(session, "c@example.org")
        assert subscriber.status == Status.CONFIRMED and subscriber.source == "import"
        (consent,) = subscriber.consents
        assert (consent.method, consent.origin, consent.wording_version) == ("import", "signups.csv", "v1")
        confirming = session.get(Event, consent.confirm_event_id)
        assert confirming is not None and confirming.kind == "imported"


def test_confirming_a_pending_subscriber_by_reimport_is_logged(store: Store) -> None:
    run_import(store, "Email\nd@example.org\n")
    report = run_import(store, "Email\nd@example.org\n", confirmed=True, tags=["news"])
    assert report.updated == 1
    with store.session() as session:
        subscriber = service.get(session, "d@example.org")
        assert subscriber.status == Status.CONFIRMED and subscriber.tag_names == ["news"]
        assert [e.kind for e in subscriber.events] == ["imported", "updated", "confirmed"]
        assert subscriber.consents[0].confirm_event_id == subscriber.events[-1].id


def test_confirming_by_import_confirms_only_the_newest_request_as_add_does(
    store: Store, newsletter: Newsletter, tmp_path: Path
) -> None:
    # Anyone can send the form for any address: each request has its own consent, and vouching for
    # the address vouches for one of them, not for a stranger's earlier request.
    for email in ("added@example.org", "imported@example.org"):
        for name in ("First", "Second"):
            with store.session() as session:
                service.request_signup(
                    session,
                    normalise_address(email),
                    name=name,
                    topics=[],
                    consent=ConsentInfo(Source.FORM, "v1"),
                    secret_key=KEY,
                )
    with store.session() as session:
        service.add(session, "added@example.org", consent=ConsentInfo(Source.IMPORT, "v1"), confirmed=True)
    path = tmp_path / "vouched.csv"
    path.write_text("Email\nimported@example.org\n", encoding="utf-8")
    assert newsletter("subscribers", "import", str(path), "--confirmed").exit_code == 0

    def confirmed(email: str) -> list[bool]:
        with store.session() as session:
            subscriber = service.get(session, email)
            consents = sorted(subscriber.consents, key=lambda c: c.id)
            return [c.confirmed_at is not None and c.confirm_event_id is not None for c in consents]

    assert confirmed("added@example.org") == [False, True]
    assert confirmed("imported@example.org") == [False, True]


def test_erased_addresses_are_suppressed_on_import(store: Store) -> None:
    run_import(store, "Email\ne@example.org\n")
    with store.session() as session:
        service.forget(session, "e@example.org", secret_key=KEY)
    report = run_import(store, "Email\nE@example.org\nf@example.org\n")
    assert (report.imported, report.suppressed) == (1, 1)


def test_an_import_into_a_store_with_erasures_needs_the_secret_key(store: Store) -> None:
    run_import(store, "Email\ne@example.org\n")
    with store.session() as session:
        service.forget(session, "e@example.org", secret_key=KEY)
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY"), store.session() as session:
        import_csv(session, io.StringIO("Email\nf@example.org\n", newline=""), origin="f.csv", wording_version="v1")


def test_a_file_without_an_email_column_is_an_error(store: Store) -> None:
    with pytest.raises(InputError, match="no email column"):
        run_import(store, "Name,Phone\nAnn,555\n")
    with pytest.raises(InputError, match="empty"):
        run_import(store, "")


def test_explicit_columns(store: Store) -> None:
    report = run_import(store, "Who,Addr\nAnn,ann@example.org\n", email_column="addr", name_column="WHO")
    assert report.imported == 1
    with pytest.raises(InputError, match="no column named 'Nope'"):
        run_import(store, "Who,Addr\nAnn,ann@example.org\n", email_column="addr", name_column="Nope")


def test_a_failure_mid_file_changes_nothing(store: Store, tmp_path: Path) -> None:
    good = "".join(f"p{i}@example.org\n" for i in range(2500))
    path = tmp_path / "broken.csv"
    path.write_bytes(b"Email\n" + good.encode() + b"\xff\xfe broken@example.org\n")
    with (
        pytest.raises(InputError, match="not UTF-8"),
        store.session() as session,
        open(path, encoding="utf-8-sig", newline="") as stream,
    ):
        import_csv(session, stream, origin="broken.csv", wording_version="v1")
    assert count(store, Subscriber) == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(st.text(st.characters(blacklist_categories=["Cs"]), max_size=30), min_size=1, max_size=8),
    crlf=st.booleans(),
    bom=st.booleans(),
)
def test_any_names_round_trip_through_csv_without_control_characters(
    tmp_path: Path, names: list[str], crlf: bool, bom: bool
) -> None:
    buffer = io.StringIO(newline="")
    # QUOTE_ALL: Python's minimal quoting leaves a lone CR unquoted, which no form export does.
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["Name", "Email"])
    for index, name in enumerate(names):
        writer.writerow([name, f"h{index}@example.org"])
    path = tmp_path / "h.csv"
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8", newline="")
    from newsletter.store.engine import open_store

    store = open_store(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        with store.session(commit=False) as session, open(path, encoding="utf-8-sig", newline="") as stream:
            report = import_csv(session, stream, origin="h.csv", wording_version="v1")
            stored = [s.name for s in listing.rows(session.connection())]
        assert report.imported + len(report.invalid) == len(names)
        for name in stored:
            assert not any(c in name for c in "\r\n\x00\u2028\u2029\x85")
            assert name == name.strip()
    finally:
        store.dispose()


def test_cli_import_dry_run_and_json(newsletter: Newsletter, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("Email Address,First Name,Last Name\nann@example.org,Ann,Lee\nbad,,\n", encoding="utf-8")
    dry = newsletter("subscribers", "import", str(path), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    data = json.loads(dry.output)
    assert data["imported"] == 1 and data["dry_run"] is True and data["invalid"][0]["line"] == 3
    stats = json.loads(newsletter("subscribers", "stats", "--json").output)
    assert stats["total"] == 0
    real = newsletter("subscribers", "import", str(path))
    assert real.exit_code == 0
    assert "Imported 1" in real.output and "line 3" in real.output
    assert json.loads(newsletter("subscribers", "stats", "--json").output)["by_status"]["pending"] == 1


def test_cli_import_errors_are_one_line(newsletter: Newsletter, tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("Name\nAnn\n", encoding="utf-8")
    result = newsletter("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert result.output.startswith("Error: no email column") and result.output.count("\n") == 1
    missing = newsletter("subscribers", "import", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 1 and "cannot read" in missing.output
    latin = tmp_path / "latin.csv"
    latin.write_bytes("Email,Name\nz@example.org,Zoë\n".encode("latin-1"))
    bad = newsletter("subscribers", "import", str(latin))
    assert bad.exit_code == 1 and "not UTF-8" in bad.output and "Traceback" not in bad.output


# --- the file as spreadsheets write it: separators and encodings -------------------------------------


@pytest.mark.parametrize(("separator", "name"), [(";", "semicolons"), ("\t", "tabs"), ("|", "bars"), (",", "commas")])
def test_the_separator_is_found_from_the_header(
    newsletter: Newsletter, tmp_path: Path, separator: str, name: str
) -> None:
    """Excel where the decimal mark is a comma saves semicolons; "Text (Tab-delimited)" saves tabs.
    The topics cell holds commas and semicolons either way, and must not fool the detection."""
    rows = [
        ["Submitted At", "First Name", "Email Address", "Topics", "Consent"],
        ["2026-09-01 10:00", "Zoë", "zoe@example.org", "FAQ updates, Clinic news", "yes"],
        ["2026-09-02 11:00", "Ann", "ann@example.org", "Client stories; Clinic news", "no"],
    ]
    path = tmp_path / f"{name}.csv"
    with open(path, "w", encoding="utf-8", newline="") as stream:
        csv.writer(stream, delimiter=separator).writerows(rows)  # quotes the cells that hold the separator
    result = newsletter("subscribers", "import", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["imported"] == 1 and report["no_consent"] == [{"line": 3, "email": "ann@example.org"}]
    assert not report["invalid"] and not report["unknown_topics"] and not report["ignored_columns"]
    shown = json.loads(newsletter("subscribers", "show", "zoe@example.org", "--json").output)
    assert shown["name"] == "Zoë" and shown["tags"] == ["clinic-news", "faq-updates"]


def test_a_header_the_separators_do_not_split_names_the_separator_it_has(
    newsletter: Newsletter, tmp_path: Path
) -> None:
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text("Name;Phone\nAnn;555\n", encoding="utf-8")
    result = newsletter("subscribers", "import", str(semicolons))
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "split at semicolons: Name, Phone" in result.output and "--email-column" in result.output
    colons = tmp_path / "colons.csv"
    colons.write_text("Name:Mail:Phone\nAnn:ann@example.org:555\n", encoding="utf-8")
    named = newsletter("subscribers", "import", str(colons), "--email-column", "Email")
    assert (
        named.exit_code == 1
        and "no column named 'Email'" in named.output
        and "split at ':', the header is Name, Mail, Phone" in named.output
    )
    # A separator outside the usual ones is used when the header then has the column asked for.
    assert newsletter("subscribers", "import", str(colons), "--email-column", "Mail").exit_code == 0


def test_the_separator_is_detected_once_for_the_whole_file(store: Store) -> None:
    """A quoted header cell with a line break, and semicolons in the data of a comma file."""
    text = 'Email,"Which topics\nwould you like?",Notes\nann@example.org,FAQ updates,"a; b; c"\nbo@example.org,,x;y\n'
    report = run_import(store, text, topic_choices={"faq-updates": "FAQ updates"})
    assert report.imported == 2 and not report.invalid
    assert report.ignored_columns == ["Notes"]
    bad = run_import(store, 'Email,"Which topics\nwould you like?"\nnot-an-address,\n')
    assert bad.invalid[0]["line"] == 3  # the header took two lines of the file


def latin_export(tmp_path: Path, rows_before: int) -> Path:
    """What Excel's plain "CSV" writes on Windows: Windows-1252, here with a name on line rows_before + 2."""
    lines = ["Email,Name"] + [f"p{i}@example.org,P{i}" for i in range(rows_before)] + ["zoe@example.org,Zoë"]
    path = tmp_path / "latin.csv"
    path.write_bytes("\r\n".join(lines).encode("cp1252") + b"\r\n")
    return path


@pytest.mark.parametrize("rows_before", [0, 1, 4000])  # in the first block the decoder reads, and far beyond it
def test_a_windows_1252_export_is_refused_with_its_line_and_what_to_do(
    newsletter: Newsletter, tmp_path: Path, rows_before: int
) -> None:
    path = latin_export(tmp_path, rows_before)
    result = newsletter("subscribers", "import", str(path))
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"Error: line {rows_before + 2} is not UTF-8 (byte 0xEB")
    assert 'save it as "CSV UTF-8"' in result.output and "--encoding cp1252" in result.output
    assert json.loads(newsletter("subscribers", "stats", "--json").output)["total"] == 0


def test_a_bad_byte_in_the_header_names_line_one(newsletter: Newsletter, tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes("Email,Prénom\nann@example.org,Ann\n".encode("latin-1"))
    result = newsletter("subscribers", "import", str(path))
    assert result.exit_code == 1 and "line 1 is not UTF-8 (byte 0xE9" in result.output


def test_encoding_imports_a_windows_1252_export(newsletter: Newsletter, tmp_path: Path) -> None:
    path = latin_export(tmp_path, 3)
    result = newsletter("subscribers", "import", str(path), "--encoding", "cp1252", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["imported"] == 4
    shown = json.loads(newsletter("subscribers", "show", "zoe@example.org", "--json").output)
    assert shown["name"] == "Zoë"
    # From standard input too, and with the error's line number when not told the encoding.
    piped = newsletter("subscribers", "import", "-", "--dry-run", input=path.read_bytes())  # type: ignore[arg-type]
    assert piped.exit_code == 1 and "line 5 is not UTF-8" in piped.output


@pytest.mark.parametrize("name", ["klingon", "base64"])
def test_an_unknown_encoding_is_a_usage_error(newsletter: Newsletter, tmp_path: Path, name: str) -> None:
    path = latin_export(tmp_path, 1)
    result = newsletter("subscribers", "import", str(path), "--encoding", name)
    assert result.exit_code == 2 and "--encoding" in result.output and "cp1252" in result.output


def test_utf16_with_a_byte_order_mark_is_read_as_it_is(newsletter: Newsletter, tmp_path: Path) -> None:
    """Excel's "Unicode Text": UTF-16 with a byte-order mark, tab-separated."""
    path = tmp_path / "unicode.txt"
    path.write_bytes("Email\tName\r\nunal@example.org\tÜnal\r\n".encode("utf-16"))
    result = newsletter("subscribers", "import", str(path), "--json")
    assert result.exit_code == 0 and json.loads(result.output)["imported"] == 1, result.output
    assert json.loads(newsletter("subscribers", "show", "unal@example.org", "--json").output)["name"] == "Ünal"


@pytest.mark.parametrize(("magic", "what"), [(b"PK\x03\x04", ".xlsx"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", ".xls")])
def test_a_spreadsheet_is_refused_with_what_to_do(
    newsletter: Newsletter, tmp_path: Path, magic: bytes, what: str
) -> None:
    path = tmp_path / f"export{what}"
    path.write_bytes(magic + bytes(200))
    result = newsletter("subscribers", "import", str(path))
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert what in result.output and 'save it as "CSV UTF-8"' in result.output
