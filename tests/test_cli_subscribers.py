from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Newsletter

SECRET = {"NEWSLETTER_SECRET_KEY": "cli-test-key-0123456789abcdef-0123456789"}


def test_init_twice_is_safe(newsletter: Newsletter) -> None:
    first = newsletter("init")
    assert first.exit_code == 0 and "Created the store" in first.output
    second = newsletter("init", "--json")
    assert json.loads(second.output)["revision_before"] == json.loads(second.output)["revision"]


def test_add_list_show_unsubscribe(newsletter: Newsletter) -> None:
    added = newsletter("subscribers", "add", "Ann@Example.org", "--name", "Ann", "--tag", "faq-updates", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["outcome"] == "added"
    newsletter("subscribers", "add", "bo@example.org", "--confirmed")
    listed = json.loads(newsletter("subscribers", "list", "--json").output)
    assert [(r["email"], r["status"]) for r in listed] == [
        ("Ann@example.org", "pending"),
        ("bo@example.org", "confirmed"),
    ]
    only = json.loads(newsletter("subscribers", "list", "--status", "confirmed", "--json").output)
    assert [r["email"] for r in only] == ["bo@example.org"]
    tagged = json.loads(newsletter("subscribers", "list", "--tag", "faq-updates", "--json").output)
    assert [r["email"] for r in tagged] == ["Ann@example.org"]
    table = newsletter("subscribers", "list").output
    assert "Ann@example.org" in table and "2 subscriber(s)" in table

    shown = json.loads(newsletter("subscribers", "show", "ann@example.org", "--json").output)
    assert {"email", "name", "status", "tags", "events", "consents"} <= shown.keys()
    assert [e["kind"] for e in shown["events"]] == ["subscribed", "exported"]
    assert shown["consents"][0]["method"] == "manual"

    out = newsletter("subscribers", "unsubscribe", "ANN@example.org")
    assert out.exit_code == 0 and "Unsubscribed" in out.output
    assert "nothing changed" in newsletter("subscribers", "unsubscribe", "ann@example.org").output
    refused = newsletter("subscribers", "add", "ann@example.org")
    assert refused.exit_code == 1 and "stays suppressed" in refused.output
    back = newsletter("subscribers", "add", "ann@example.org", "--resubscribe")
    assert back.exit_code == 0 and "Resubscribed" in back.output


def test_forget_needs_the_key_and_then_erases(newsletter: Newsletter) -> None:
    newsletter("subscribers", "add", "erase@example.org", "--name", "Erin")
    no_key = newsletter("subscribers", "forget", "erase@example.org")
    assert no_key.exit_code == 1 and "NEWSLETTER_SECRET_KEY" in no_key.output
    done = newsletter("subscribers", "forget", "erase@example.org", env=SECRET)
    assert done.exit_code == 0, done.output
    gone = newsletter("subscribers", "show", "erase@example.org")
    assert gone.exit_code == 1 and gone.output.startswith("Error: no subscriber")
    again = newsletter("subscribers", "add", "erase@example.org", env=SECRET)
    assert again.exit_code == 1 and "was erased" in again.output
    stats = json.loads(newsletter("subscribers", "stats", "--json").output)
    assert stats["erased"] == 1 and stats["total"] == 0
    dump = newsletter("subscribers", "export", "--format", "json").output
    assert "erase" not in dump and "Erin" not in dump


def test_export_csv_and_json(newsletter: Newsletter, tmp_path: Path) -> None:
    newsletter("subscribers", "add", "a@example.org", "--name", 'Ann, "the" first', "--tag", "x", "--tag", "y")
    newsletter("subscribers", "add", "b@example.org", "--confirmed")
    rows = list(csv.DictReader(io.StringIO(newsletter("subscribers", "export").output)))
    assert [r["email"] for r in rows] == ["a@example.org", "b@example.org"]
    assert rows[0]["name"] == 'Ann, "the" first' and rows[0]["tags"] == "x y"
    target = tmp_path / "out.json"
    result = newsletter("subscribers", "export", "--format", "json", "--status", "confirmed", "-o", str(target))
    assert result.exit_code == 0
    data = json.loads(target.read_text(encoding="utf-8"))
    assert [r["email"] for r in data] == ["b@example.org"]
    assert {"email", "name", "status", "tags", "created_at"} <= data[0].keys()
    empty = json.loads(newsletter("subscribers", "export", "--format", "json", "--tag", "none").output)
    assert empty == []


def test_stats_text_and_json(newsletter: Newsletter) -> None:
    newsletter("subscribers", "add", "a@example.org", "--tag", "faq-updates", "--confirmed")
    data = json.loads(newsletter("subscribers", "stats", "--json").output)
    assert data["by_status"]["confirmed"] == 1 and data["tags"] == {"faq-updates": 1}
    assert "faq-updates" in newsletter("subscribers", "stats").output


def test_user_errors_are_one_line_without_traceback(newsletter: Newsletter) -> None:
    cases = [
        ("subscribers", "add", "not-an-address"),
        ("subscribers", "add", "a@example.org", "--tag", "bad tag!"),
        ("subscribers", "show", "nobody@example.org"),
        ("subscribers", "unsubscribe", "nobody@example.org"),
    ]
    for args in cases:
        result = newsletter(*args)
        assert result.exit_code == 1, args
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    usage = newsletter("subscribers", "list", "--status", "nonsense")
    assert usage.exit_code == 2 and "Traceback" not in usage.output


def test_rich_markup_and_templates_in_names_print_literally(newsletter: Newsletter) -> None:
    newsletter("subscribers", "add", "m@example.org", "--name", "[bold red]{{7*7}}[/]")
    assert "[bold red]{{7*7}}[/]" in newsletter("subscribers", "list").output


def test_a_bad_database_url_is_one_line(project: Path) -> None:
    result = Newsletter(project, "nosuchdb://x")("subscribers", "stats")
    assert result.exit_code == 2 and result.output.startswith("Error: unusable database URL")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://clinic@db.example/news", "the supported databases are SQLite"),
        ("postgres://clinic:s3cret@db.example/news", "write postgresql+psycopg://clinic:***@db.example/news"),
        ("postgresql+asyncpg://db.example/news", "the supported databases are SQLite"),
    ],
)
def test_unsupported_databases_are_a_usage_error_naming_what_works(project: Path, url: str, says: str) -> None:
    result = Newsletter(project, url)("subscribers", "stats")
    assert result.exit_code == 2 and says in result.output
    assert len(result.output.strip().splitlines()) == 1 and "s3cret" not in result.output


def test_an_sqlite_too_old_for_the_store_is_one_line_naming_what_works(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    # This machine's SQLite is new enough; an old one cannot be installed on demand.
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    result = Newsletter(project, f"sqlite:///{tmp_path / 'old.db'}")("subscribers", "list")
    assert result.exit_code == 1
    assert (
        result.output == "Error: this Python's SQLite is 3.31.1; the store needs 3.35.0 or newer (or use PostgreSQL)\n"
    )
    assert not (tmp_path / "old.db").exists()


def test_python_dash_m_and_the_console_script_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "newsletter",
            "--db",
            f"sqlite:///{tmp_path / 'm.db'}",
            "subscribers",
            "stats",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total"] == 0


def test_a_bug_is_one_line_with_exit_70_and_debug_shows_the_traceback(
    newsletter: Newsletter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.subscribers import queries as subscribers

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(subscribers, "stats", broken)  # a fault no real part produces on demand
    result = newsletter("subscribers", "stats")
    assert result.exit_code == 70
    assert result.output.startswith("Internal error: RuntimeError: simulated bug") and result.output.count("\n") == 1
    with pytest.raises(RuntimeError, match="simulated bug"):
        newsletter("subscribers", "stats", env={"NEWSLETTER_DEBUG": "1"})


def test_lists_never_cut_an_address(newsletter: Newsletter) -> None:
    long_address = "avery.quinn.with.a.rather.long.local.part@clinic-subscribers.example.org"
    newsletter("init")
    newsletter("subscribers", "add", long_address, "--name", "Avery Quinn", "--confirmed")
    piped = newsletter("subscribers", "list").output  # CliRunner's stdout is not a terminal
    assert long_address in piped and "…" not in piped
    assert piped.splitlines()[1].split("\t")[:3] == ["email", "name", "status"]


def test_tables_on_a_narrow_terminal_wrap_addresses_instead_of_cutting_them() -> None:
    import io

    from rich.console import Console

    from newsletter.cli.output import make_table

    address = "avery.quinn.with.a.rather.long.local.part@clinic-subscribers.example.org"
    out = io.StringIO()
    Console(file=out, width=60, force_terminal=True, color_system=None).print(
        make_table("1 subscriber(s)", ["email", "name", "status"], [(address, "Avery Quinn", "confirmed")])
    )
    text = out.getvalue()
    assert "…" not in text
    cells = [line.split("│")[1].strip() for line in text.splitlines() if line.count("│") >= 3]
    assert "".join(cells).startswith(address)
