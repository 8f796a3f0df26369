"""Files that name people are private (0600, folders 0700), and exports are safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
import stat
from pathlib import Path

from newsletter.delivery.transports import OutgoingMessage
from newsletter.delivery.transports.file import FileTransport
from newsletter.store.engine import open_store
from newsletter.store.models import Source
from newsletter.subscribers import service
from newsletter.subscribers.consent import ConsentInfo
from tests.conftest import Newsletter

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
