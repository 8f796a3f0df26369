"""Files that name people are private (0600, folders 0700), and exports are safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path

from newsletter.delivery.transports import OutgoingMessage
from newsletter.delivery.transports.file import FileTransport
from newsletter.store.engine import open_store
from newsletter.store.models import Source
from newsletter.subscribers import service
from newsletter.subscribers.consent import ConsentInfo
from tests.conftest import Newsletter
from tests.support.bounces import Sent, dsn
from tests.support.campaigns import FAQ_CAMPAIGN, write_campaign

FORMULA_NAME = '=HYPERLINK("https://evil.example/","Open record")'


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_csv_exports_neutralise_formulas_and_json_stays_exact(newsletter: Newsletter) -> None:
    newsletter("subscribers", "add", "ana@example.org", "--name", FORMULA_NAME)
    newsletter("subscribers", "add", "--name", "@SUM(A1:A9)", "--", "-plus@example.org")
    newsletter("subscribers", "add", "bo@example.org", "--name", "Bo Ellis")
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(newsletter("subscribers", "export").output))}
    assert rows["ana@example.org"]["name"] == "'" + FORMULA_NAME
    assert rows["'-plus@example.org"]["name"] == "'@SUM(A1:A9)"
    assert rows["bo@example.org"]["name"] == "Bo Ellis"  # ordinary cells untouched
    exact = {r["email"]: r for r in json.loads(newsletter("subscribers", "export", "--format", "json").output)}
    assert exact["ana@example.org"]["name"] == FORMULA_NAME and "-plus@example.org" in exact


def test_an_export_file_is_private_and_a_symlink_or_device_is_written_through(
    newsletter: Newsletter, tmp_path: Path
) -> None:
    newsletter("subscribers", "add", "ana@example.org")
    target = tmp_path / "export.csv"
    assert newsletter("subscribers", "export", "-o", str(target)).exit_code == 0
    assert mode(target) == 0o600 and "ana@example.org" in target.read_text()

    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert newsletter("subscribers", "export", "-o", str(link)).exit_code == 0
    assert link.is_symlink() and "ana@example.org" in real.read_text()

    device = newsletter("subscribers", "export", "-o", "/dev/null")
    assert device.exit_code == 0 and Path("/dev/null").is_char_device()


def test_the_sqlite_store_and_its_wal_are_private(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'subscribers.db'}")
    try:
        with store.session() as session:
            service.add(session, "ana@example.org", consent=ConsentInfo(Source.MANUAL, "v1"))
        with store.engine.connect():  # keeps the WAL open while we look
            files = sorted(tmp_path.glob("subscribers.db*"))
            assert any(p.name.endswith("-wal") for p in files)
            assert {p.name: mode(p) for p in files} == dict.fromkeys((p.name for p in files), 0o600)
    finally:
        store.dispose()


def test_the_file_transport_writes_private_messages_in_a_private_folder(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    with FileTransport(folder) as transport:
        result = transport.send(
            OutgoingMessage(
                "news@harvest.example", "ana@example.org", b"Subject: x\r\n\r\nx\r\n", "<1@harvest.example>"
            )
        )
    assert mode(folder) == 0o700 and mode(Path(result.text)) == 0o600


def test_nothing_the_product_writes_is_readable_by_others(tmp_path: Path) -> None:
    """Every command that writes, under the usual umask 022: each file and folder it leaves is the
    user's alone. A new way of writing files that forgets this fails here."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "newsletter.toml").write_text(
        'organisation = "Harvest Test Clinic"\npostal_address = "1 Example Way, Springfield, ZZ 00000"\n'
        'from_address = "news@harvest.example"\npublic_base_url = "https://news.harvest.example"\n'
        'bounce_address = "bounce@news.harvest.example"\n',
        encoding="utf-8",
    )
    inputs = tmp_path / "inputs"  # what staff hand the commands, outside the project
    inputs.mkdir()
    (inputs / "signups.csv").write_text("Email Address,Name\nana@example.org,Ana\nbo@example.org,Bo\n")
    newsletter = Newsletter(project, f"sqlite:///{project / 'subscribers.db'}")
    env = {"NEWSLETTER_SECRET_KEY": "private-files-secret-0123456789abcdef"}
    before = set(project.rglob("*"))
    old_umask = os.umask(0o022)
    try:
        steps = [
            ("init",),
            ("subscribers", "import", str(inputs / "signups.csv"), "--confirmed", "--tag", "faq-updates"),
            ("subscribers", "export", "-o", str(project / "exports" / "list.csv")),
            ("campaign", "new", "spring-update"),
            ("campaign", "build", "faq", "-o", str(project / "build" / "deep")),
            ("campaign", "send", "faq", "--transport", f"file:{project / 'outbox'}", "--yes"),
        ]
        (project / "exports").mkdir()  # -o writes into a folder that exists; the file is the product's
        before.add(project / "exports")
        write_campaign(project, "faq", FAQ_CAMPAIGN)
        before |= {project / "campaigns", project / "campaigns" / "faq.md"}
        for step in steps:
            result = newsletter(*step, env=env)
            assert result.exit_code == 0, (step, result.output)
        sent = next((project / "outbox").glob("*.eml"))
        (inputs / "bounce.eml").write_bytes(dsn(Sent.from_file(sent)))
        assert newsletter("bounces", "ingest", str(inputs / "bounce.eml"), env=env).exit_code == 0
    finally:
        os.umask(old_umask)
    written = sorted(set(project.rglob("*")) - before)
    kinds = {p.suffix for p in written}
    assert {".db", ".csv", ".md", ".html", ".txt", ".mjml", ".eml"} <= kinds, kinds  # the sweep saw it all
    assert (project / "build").is_dir() and (project / "outbox").is_dir()
    shared = {str(p.relative_to(project)): oct(mode(p)) for p in written if mode(p) & 0o077}
    assert shared == {}, "readable by others"
