"""The import honours what an export says: each person's topics, consent and signup time.

Every variant runs on SQLite and PostgreSQL (the ``store`` fixture). The Google Forms and Mailchimp
exports below were written for these tests, in those tools' layouts, with reserved domains only.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from newsletter.errors import InputError
from newsletter.store.engine import Store
from newsletter.store.models import Consent, Subscriber
from newsletter.subscribers import queries, service
from newsletter.subscribers.importer import (
    ImportReport,
    detect_columns,
    import_csv,
    parse_signup_time,
    parse_topic_map,
)
from tests.conftest import Newsletter

TOPICS = {"faq-updates": "FAQ updates", "client-stories": "Client stories", "clinic-news": "Clinic news"}
REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def run_import(store: Store, text: str, **kwargs: object) -> ImportReport:
    options: dict[str, object] = {"topic_choices": TOPICS, "now": NOW, **kwargs}
    with store.session() as session:
        return import_csv(
            session,
            io.StringIO(text, newline=""),
            origin="export.csv",
            wording_version="2026-11",
            secret_key="k",
            **options,  # type: ignore[arg-type]
        )


def people(store: Store) -> dict[str, tuple[list[str], datetime]]:
    """{address: (tags, the consent's time)} of everyone stored."""
    with store.session() as session:
        rows = session.execute(
            select(Subscriber, Consent.given_at).join(Consent, Consent.subscriber_id == Subscriber.id)
        ).all()
        return {s.email_key: (s.tag_names, given_at) for s, given_at in rows}


# --- columns ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Topics",
        "TOPICS",
        "topic",
        "Interests",
        "interests ",
        "Lists",
        "Newsletter topics",
        "Which topics interest you?",
    ],
)
def test_topic_columns_are_found_by_their_usual_names(store: Store, header: str) -> None:
    report = run_import(store, f"Email,{header}\nann@example.org,Clinic news\n")
    assert report.ignored_columns == []
    assert people(store)["ann@example.org"][0] == ["clinic-news"]


@pytest.mark.parametrize(
    "header",
    [
        "Consent",
        "consent",
        "Opt-in",
        "OPT_IN",
        "Opted in",
        "GDPR",
        "GDPR consent",
        "I agree to receive emails from Harvest",
        "Accepts Email Marketing",
    ],
)
def test_consent_columns_are_found_by_their_usual_names(store: Store, header: str) -> None:
    report = run_import(store, f'Email,"{header}"\nyes@example.org,yes\nno@example.org,no\n')
    assert [r["email"] for r in report.no_consent] == ["no@example.org"]
    assert set(people(store)) == {"yes@example.org"}


@pytest.mark.parametrize(
    "header",
    [
        "Submitted At",
        "submitted_at",
        "SUBMITTED AT",
        "Signup Date",
        "Sign-up date",
        "Timestamp",
        "Created",
        "Created at",
        "OPTIN_TIME",
        "Date added",
    ],
)
def test_signup_time_columns_are_found_by_their_usual_names(store: Store, header: str) -> None:
    report = run_import(store, f"Email,{header}\nann@example.org,2026-09-01 09:12:33\n")
    assert report.ignored_columns == [] and not report.invalid
    assert people(store)["ann@example.org"][1] == datetime(2026, 9, 1, 9, 12, 33, tzinfo=UTC)


def test_flags_name_columns_that_have_other_headers(store: Store) -> None:
    text = "Email,Subjects,Agreed to emails,When\nann@example.org,FAQ updates,Y,2026-09-01 09:00\nbo@example.org,,N,\n"
    report = run_import(
        store, text, topics_column="subjects", consent_column="AGREED TO EMAILS", submitted_column="when"
    )
    assert report.ignored_columns == [] and [r["line"] for r in report.no_consent] == [3]
    assert people(store)["ann@example.org"] == (["faq-updates"], datetime(2026, 9, 1, 9, 0, tzinfo=UTC))
    with pytest.raises(InputError, match=r"no column named 'Topic' in the header \(given with --topics-column\)"):
        run_import(store, text, topics_column="Topic")


def test_without_the_flags_such_columns_are_ignored_and_listed(store: Store) -> None:
    report = run_import(store, "Email,Subjects,Phone\nann@example.org,FAQ updates,555\n")
    assert report.ignored_columns == ["Subjects", "Phone"]
    assert people(store)["ann@example.org"][0] == []


def test_a_time_column_is_not_taken_for_the_consent() -> None:
    columns = detect_columns(["Email", "Consent date", "OPTIN_TIME", "OPTIN_IP", "Consent"])
    assert (columns.consent, columns.submitted) == (4, 2)
    assert columns.ignored == ("Consent date", "OPTIN_IP")


# --- consent ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell",
    [
        "yes",
        "YES",
        "y",
        "true",
        "TRUE",
        "1",
        "checked",
        "x",
        "✓",
        "I agree",
        "I agree to receive emails",
        "Yes, please",
    ],
)
def test_consent_yes_values(store: Store, cell: str) -> None:
    report = run_import(store, f'Email,Consent\nann@example.org,"{cell}"\n')
    assert (report.imported, report.no_consent, report.invalid) == (1, [], [])


@pytest.mark.parametrize(
    "cell", ["no", "No", "n", "false", "FALSE", "0", "unchecked", "", "  ", "off", "No thanks", "I do not agree"]
)
def test_consent_no_values_are_not_imported_and_reported_with_their_line(store: Store, cell: str) -> None:
    report = run_import(store, f'Email,Consent\nann@example.org,yes\n Bo@Example.org ,"{cell}"\n')
    assert report.imported == 1
    assert report.no_consent == [{"line": 3, "email": "Bo@Example.org"}]
    assert set(people(store)) == {"ann@example.org"}


def test_a_consent_cell_that_says_neither_is_invalid(store: Store) -> None:
    report = run_import(store, "Email,Consent\nann@example.org,maybe\n")
    assert report.imported == 0 and report.invalid == [
        {"line": 2, "reason": "the consent cell 'maybe' says neither yes nor no"}
    ]


def test_no_consent_column_means_the_file_vouches_for_everyone(store: Store) -> None:
    assert run_import(store, "Email\nann@example.org\n").imported == 1


def test_a_no_leaves_someone_already_subscribed_as_they_are(store: Store) -> None:
    run_import(store, "Email,Topics\nann@example.org,FAQ updates\n", confirmed=True)
    report = run_import(store, "Email,Topics,Consent\nann@example.org,Clinic news,no\n", confirmed=True)
    assert (report.updated, len(report.no_consent)) == (0, 1)
    assert people(store)["ann@example.org"][0] == ["faq-updates"]


# --- signup times -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "zone", "expected"),
    [
        ("2026-09-01 09:12", "UTC", datetime(2026, 9, 1, 9, 12, tzinfo=UTC)),
        ("2026-09-01 09:12:33", "America/New_York", datetime(2026, 9, 1, 13, 12, 33, tzinfo=UTC)),  # EDT
        ("2026-01-15 09:00:00", "America/New_York", datetime(2026, 1, 15, 14, 0, tzinfo=UTC)),  # EST
        ("2026-09-01T09:12:33+02:00", "America/New_York", datetime(2026, 9, 1, 7, 12, 33, tzinfo=UTC)),
        ("2026-09-01T09:12:33Z", "Europe/Paris", datetime(2026, 9, 1, 9, 12, 33, tzinfo=UTC)),
        ("2026-09-01", "Europe/Paris", datetime(2026, 8, 31, 22, 0, tzinfo=UTC)),
        ("9/1/2026 9:12:33", "America/Los_Angeles", datetime(2026, 9, 1, 16, 12, 33, tzinfo=UTC)),
        ("12/31/2025 23:59", "UTC", datetime(2025, 12, 31, 23, 59, tzinfo=UTC)),
        ("9/1/2026 9:12:33 PM", "UTC", datetime(2026, 9, 1, 21, 12, 33, tzinfo=UTC)),
        ("9/1/2026 12:05 AM", "UTC", datetime(2026, 9, 1, 0, 5, tzinfo=UTC)),
        ("9/1/2026", "UTC", datetime(2026, 9, 1, tzinfo=UTC)),
    ],
)
def test_signup_times_in_the_formats_form_tools_write(cell: str, zone: str, expected: datetime) -> None:
    tz = UTC if zone == "UTC" else ZoneInfo(zone)
    assert parse_signup_time(cell, tz) == expected


def test_naive_times_are_taken_in_the_timezone_setting_and_kept_aware(store: Store) -> None:
    run_import(store, "Email,Submitted At\nann@example.org,2026-07-04 18:30\n", zone=ZoneInfo("America/Chicago"))
    with store.session() as session:
        consent = session.scalars(select(Consent)).one()
        assert consent.given_at == datetime(2026, 7, 4, 23, 30, tzinfo=UTC)
        assert consent.given_at.tzinfo is not None


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("yesterday", "is not ISO 8601"),
        ("13/45/2026 10:00", "is not a date"),
        ("9/1/2026 13:00 PM", "12-hour clock"),
        ("2031-01-01 00:00", "is in the future"),
    ],
)
def test_an_unusable_signup_time_makes_the_row_invalid_not_the_import(store: Store, cell: str, reason: str) -> None:
    report = run_import(store, f"Email,Timestamp\nann@example.org,{cell}\nbo@example.org,2026-09-01 10:00\n")
    assert report.imported == 1 and [p["line"] for p in report.invalid] == [2]
    assert reason in report.invalid[0]["reason"]


def test_an_empty_time_cell_falls_back_to_the_import_time(store: Store) -> None:
    run_import(store, "Email,Timestamp\nann@example.org,\n")
    assert people(store)["ann@example.org"][1] == NOW


# --- topics -----------------------------------------------------------------------------------------


def test_labels_map_by_title_by_tag_and_by_topic_map_and_unknown_ones_are_reported(store: Store) -> None:
    text = (
        "Email,Topics\n"
        "a@example.org,FAQ updates\n"
        'b@example.org,"faq updates; CLIENT-STORIES ,  clinic   news"\n'
        "c@example.org,Events\n"
        'd@example.org,"Clinic news, Events, Research digest"\n'
        "e@example.org,Harvest news\n"
        "f@example.org,\n"
    )
    report = run_import(store, text, topic_map=parse_topic_map(["Harvest news=clinic-news"]), tags=["imported-2026"])
    assert report.unknown_topics == ["Events", "Research digest"]
    tags = {email: found[0] for email, found in people(store).items()}
    assert tags == {
        "a@example.org": ["faq-updates", "imported-2026"],
        "b@example.org": ["client-stories", "clinic-news", "faq-updates", "imported-2026"],
        "c@example.org": ["imported-2026"],
        "d@example.org": ["clinic-news", "imported-2026"],
        "e@example.org": ["clinic-news", "imported-2026"],
        "f@example.org": ["imported-2026"],
    }


def test_a_topic_map_may_name_any_tag_but_must_be_label_equals_tag() -> None:
    assert parse_topic_map(["Clinic news=clinic-news", "A = b = Research"]) == {
        "Clinic news": "clinic-news",
        "A = b": "research",
    }
    for bad in ("no equals sign", "=tag", "Label=", "Label=not a tag!"):
        with pytest.raises(InputError):
            parse_topic_map([bad])


def test_reimporting_adds_newly_chosen_topics_and_never_removes_any(store: Store) -> None:
    run_import(store, "Email,Topics\nann@example.org,FAQ updates\n", confirmed=True)
    report = run_import(store, "Email,Topics\nann@example.org,Clinic news\n", confirmed=True)
    assert report.updated == 1
    assert people(store)["ann@example.org"][0] == ["clinic-news", "faq-updates"]
    again = run_import(store, "Email,Topics\nann@example.org,Clinic news\n", confirmed=True)
    assert again.unchanged == 1


def test_names_with_any_characters_survive_the_bulk_path(store: Store) -> None:
    names = ['Zoë "Zo" Ðoe', "李 小龍", "Amélie 🌻 O'Neil", "Back\\slash", "Tab\there"]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([("Email", "Name"), *((f"p{i}@example.org", n) for i, n in enumerate(names))])
    run_import(store, buffer.getvalue())
    with store.session() as session:
        stored = [s.name for s in session.scalars(select(Subscriber).order_by(Subscriber.id))]
    assert stored == ['Zoë "Zo" Ðoe', "李 小龍", "Amélie 🌻 O'Neil", "Back\\slash", "Tab here"]


# --- whole exports, in layouts written for these tests -----------------------------------------------

GOOGLE_FORMS = (
    '"Timestamp","Email Address","Your name","Which topics would you like to hear about?",'
    '"I agree to receive the Harvest newsletter by email"\r\n'
    '"9/1/2026 9:12:33","avery@example.org","Avery Quinn","FAQ updates, Clinic news",'
    '"I agree to receive the Harvest newsletter by email"\r\n'
    '"9/2/2026 14:03:09","casey@example.com","Casey","Client stories","I agree to receive the Harvest newsletter by email"\r\n'
    '"9/3/2026 8:55:41","devon@example.org","Devon","FAQ updates",""\r\n'
    '"9/4/2026 17:30:00","finley@example.net","Finley","","I agree to receive the Harvest newsletter by email"\r\n'
)

MAILCHIMP = (
    "Email Address,First Name,Last Name,Address,Phone Number,Interests,Marketing Permissions: Email,"
    "MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,"
    "REGION,LAST_CHANGED,LEID,EUID,NOTES,TAGS\n"
    'gray@example.org,Gray,Nakamura,,,"Client stories, FAQ updates",Y,2,"2026-08-30 21:04:11",192.0.2.1,'
    '"2026-08-30 21:05:40",192.0.2.1,,,,,America/New_York,US,NY,"2026-08-30 21:05:40",101,aaa111,,'
    '"""faq"",""vip"""\n'
    'harper@example.org,Harper,Lindqvist,,,Clinic news,Y,2,"2026-09-02 10:00:00",198.51.100.2,'
    '"2026-09-02 10:01:00",198.51.100.2,,,,,Europe/Stockholm,SE,AB,"2026-09-02 10:01:00",102,bbb222,,\n'
    'indigo@example.org,Indigo,Park,,,"Clinic news, Wellness retreats",N,2,"2026-09-03 11:11:11",203.0.113.3,'
    '"2026-09-03 11:12:00",203.0.113.3,,,,,,,,"2026-09-03 11:12:00",103,ccc333,,\n'
)


def test_a_google_forms_export(store: Store) -> None:
    report = run_import(store, GOOGLE_FORMS, zone=ZoneInfo("America/New_York"), confirmed=True)
    assert (report.imported, report.invalid, report.unknown_topics, report.ignored_columns) == (3, [], [], [])
    assert report.no_consent == [{"line": 4, "email": "devon@example.org"}]
    assert people(store) == {
        "avery@example.org": (["clinic-news", "faq-updates"], datetime(2026, 9, 1, 13, 12, 33, tzinfo=UTC)),
        "casey@example.com": (["client-stories"], datetime(2026, 9, 2, 18, 3, 9, tzinfo=UTC)),
        "finley@example.net": ([], datetime(2026, 9, 4, 21, 30, tzinfo=UTC)),
    }
    with store.session() as session:
        assert service.get(session, "avery@example.org").name == "Avery Quinn"


def test_a_mailchimp_export(store: Store) -> None:
    report = run_import(store, MAILCHIMP)
    assert report.imported == 2 and report.invalid == []
    assert report.no_consent == [{"line": 4, "email": "indigo@example.org"}]
    assert report.unknown_topics == []  # Indigo's "Wellness retreats" was never read: no consent
    assert "TAGS" in report.ignored_columns and "OPTIN_IP" in report.ignored_columns
    assert "CONFIRM_TIME" in report.ignored_columns and "TIMEZONE" in report.ignored_columns
    assert people(store) == {
        "gray@example.org": (["client-stories", "faq-updates"], datetime(2026, 8, 30, 21, 4, 11, tzinfo=UTC)),
        "harper@example.org": (["clinic-news"], datetime(2026, 9, 2, 10, 0, tzinfo=UTC)),
    }


# --- the consent record, the report, the command ------------------------------------------------------


def test_the_consent_record_keeps_the_signup_time_the_file_and_the_wording(store: Store) -> None:
    run_import(store, "Email,Submitted At,Consent\nann@example.org,2026-09-01 09:12,yes\n", confirmed=True)
    with store.session() as session:
        subscriber = service.get(session, "ann@example.org")
        (consent,) = subscriber.consents
        assert (consent.method, consent.origin, consent.wording_version) == ("import", "export.csv", "2026-11")
        assert consent.given_at == datetime(2026, 9, 1, 9, 12, tzinfo=UTC)
        assert consent.confirmed_at is not None and consent.confirm_event_id == subscriber.events[0].id
        assert subscriber.created_at > consent.given_at  # joined the store on import, signed up before


def test_cli_import_reports_the_new_fields_and_takes_the_flags(newsletter: Newsletter, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "E-mail,Subjects,OK to email?,Date,Source\n"
        "ann@example.org,News from the clinic,yes,2026-09-01 09:00,web\n"
        "bo@example.org,Parties,no,2026-09-02 10:00,web\n",
        encoding="utf-8",
    )
    args = ["subscribers", "import", str(path), "--topics-column", "Subjects", "--consent-column", "OK to email?"]
    args += ["--topic-map", "News from the clinic=clinic-news", "--confirmed"]
    result = newsletter(*args, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["no_consent"] == [{"line": 3, "email": "bo@example.org"}]
    assert data["unknown_topics"] == [] and data["ignored_columns"] == ["Source"]
    text = newsletter(*args[:7], "--dry-run")  # without the topic map
    assert "without consent 1" in text.output and "line 3" in text.output and "bo@example.org" not in text.output
    assert "unknown topics (not given to anyone; map them with --topic-map): News from the clinic" in text.output
    assert "ignored columns: Source" in text.output
    missing = newsletter("subscribers", "import", str(path), "--submitted-column", "Signed")
    assert missing.exit_code == 1 and missing.output.startswith("Error: no column named 'Signed'")
    bad_map = newsletter("subscribers", "import", str(path), "--topic-map", "oops")
    assert bad_map.exit_code == 1 and "expected LABEL=TAG" in bad_map.output


def test_cli_topic_map_is_repeatable(newsletter: Newsletter, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        'Email,Subjects\nann@example.org,"News from the clinic; Stories"\nbo@example.org,Stories\n', encoding="utf-8"
    )
    maps = ["--topic-map", "News from the clinic=clinic-news", "--topic-map", "Stories=client-stories"]
    result = newsletter("subscribers", "import", str(path), "--topics-column", "Subjects", *maps, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["unknown_topics"] == []
    tags = {email: found[0] for email, found in people(store).items()}
    assert tags == {"ann@example.org": ["client-stories", "clinic-news"], "bo@example.org": ["client-stories"]}


def test_the_demo_export_sends_client_stories_only_to_those_who_chose_them(newsletter: Newsletter) -> None:
    """`make demo`'s import: everyone keeps their own topics, and the client-stories audience is
    exactly the people whose row says Client stories and yes to consent."""
    sample = REPO / "samples" / "signup-export.csv"
    result = newsletter("subscribers", "import", str(sample), "--confirmed", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    with open(sample, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chose = {
        r["Email Address"].lower() for r in rows if "client stories" in r["Topics"].lower() and r["Consent"] == "yes"
    }
    nothing = {r["Email Address"].lower() for r in rows if not r["Topics"].strip() and r["Consent"] == "yes"}
    refused = {r["Email Address"].lower() for r in rows if r["Consent"] != "yes"}
    assert chose and nothing and refused  # the sample shows people with different choices
    assert {r["email"].lower() for r in report["no_consent"]} == refused
    from newsletter.store.engine import open_store

    store = open_store(newsletter.database_url)
    try:
        with store.session() as session:
            audience = session.scalars(select(Subscriber.email_key).where(queries.audience(["client-stories"])))
            assert set(audience) == chose
            for email in nothing:
                assert service.get(session, email).tag_names == []
    finally:
        store.dispose()
