"""The staff preview: inbox line, both widths, the text part, findings at their place, sign-off state."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser, expect

from newsletter.campaigns.preview import (
    Preview,
    PreviewState,
    build_preview,
    is_loopback_host,
    make_server,
    watched_files,
)
from newsletter.campaigns.scaffold import scaffold_campaign
from newsletter.cli import cli
from newsletter.config import Settings
from tests.support.campaigns import FAQ_CAMPAIGN, write_campaign

NAMED_STORY = """---
subject: A client's story
preheader: How one client found calm.
---
Our clients tell us what helped.

::: vignette
Maria from Millinocket found calm after six months of therapy.
:::
"""


def get(base: str, path: str) -> str:
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return response.read().decode("utf-8")


@contextmanager
def serving(state: PreviewState) -> Iterator[str]:
    server = make_server(state, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_preview_serves_both_widths_and_rerenders_on_save(settings: Settings, project: Path) -> None:
    path = write_campaign(project, "faq", FAQ_CAMPAIGN)
    state = PreviewState(lambda: build_preview("faq", settings), lambda: [path])
    with serving(state) as base:
        page = get(base, "/")
        assert 'id="desktop"' in page and 'id="mobile"' in page and "375px" in page
        assert "Harvest Test Clinic &lt;news@harvest.example&gt;" in page and "What 83 studies found." in page
        assert "83 studies" in get(base, "/email.html")
        version = json.loads(get(base, "/version"))["version"]
        path.write_text(FAQ_CAMPAIGN.replace("83 studies", "84 studies"), encoding="utf-8")
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
        assert json.loads(get(base, "/version"))["version"] == version + 1
        assert "84 studies" in get(base, "/email.html")
        path.write_text(FAQ_CAMPAIGN.replace("::: faq", "::: recipe"), encoding="utf-8")
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 10))
        broken = get(base, "/email.html")
        assert broken.startswith("<!doctype html><meta charset=utf-8><pre") and "recipe" in broken  # the error, shown


def test_saving_the_theme_rerenders(settings: Settings, project: Path) -> None:
    path = write_campaign(project, "faq", FAQ_CAMPAIGN)
    state = PreviewState(lambda: build_preview(path, settings), lambda: watched_files(path, settings))
    state.refresh()
    assert "#2e5a45" in state.html  # the default accent
    (project / "templates").mkdir(exist_ok=True)
    (project / "templates" / "theme.toml").write_text('[light]\naccent = "#1f4f7a"\n', encoding="utf-8")
    state.refresh()
    assert state.version == 2 and "#1f4f7a" in state.html


def test_a_failed_build_is_shown_not_raised() -> None:
    state = PreviewState(lambda: Preview(title="x", error="template.mjml.j2:3: <boom>"), list)
    state.refresh()
    assert "&lt;boom&gt;" in state.html and "<pre" in state.html


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8025", True),
        ("localhost:8025", True),
        ("LOCALHOST", True),
        ("[::1]:8025", True),
        ("evil.example:8025", False),
        ("127.0.0.1.evil.example", False),
        ("localhost.evil.example:8025", False),
        ("", False),
        (None, False),
    ],
)
def test_only_loopback_names_are_answered(host: str | None, allowed: bool) -> None:
    assert is_loopback_host(host) is allowed


def test_a_fresh_scaffold_previews_with_its_placeholders_as_warnings(settings: Settings, project: Path) -> None:
    """The preview looks at a draft: text left for staff to replace is to be seen, not a refusal."""
    write_campaign(project, "winter", scaffold_campaign("winter", faqs=["Does insurance cover therapy?"]))
    placeholders = [f for f in build_preview("winter", settings).findings if f.check == "scaffold.placeholder"]
    assert placeholders and {f.severity for f in placeholders} == {"warning"}


def test_a_rebound_name_gets_no_campaign(settings: Settings, project: Path) -> None:
    path = write_campaign(project, "faq", FAQ_CAMPAIGN)
    state = PreviewState(lambda: build_preview("faq", settings), lambda: [path])
    with serving(state) as base:
        connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=10)
        connection.request("GET", "/email.html", headers={"Host": "rebound.evil.example"})
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 421 and "83 studies" not in body


def test_the_page_shows_findings_in_place_and_the_signoff_state(
    settings: Settings, project: Path, browser: Browser, artifacts: Path
) -> None:
    path = write_campaign(project, "story", NAMED_STORY)
    state = PreviewState(lambda: build_preview("story", settings), lambda: [path])
    with serving(state) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "/")
        inbox = page.get_by_label("Inbox line")
        expect(inbox).to_contain_text("Harvest Test Clinic <news@harvest.example>")
        expect(inbox).to_contain_text("A client's story")
        expect(inbox).to_contain_text("How one client found calm.")
        line = page.locator("ol.source li.flagged", has_text="Maria from Millinocket")  # its own line, marked
        expect(line.locator(".note.error").first).to_contain_text("deid.")
        expect(line).to_contain_text("'Maria'")
        expect(page.locator("ol.source li.flagged", has_text="::: vignette")).to_contain_text("deid.signoff")
        expect(page.locator("ul.signoffs")).to_contain_text("Vignette 1: has no reviewer sign-off")
        expect(page.locator("pre.text")).to_contain_text("Our clients tell us what helped.")
        expect(page.frame_locator("#mobile").locator("body")).to_contain_text("found calm")
        page.screenshot(path=str(artifacts / "preview-findings.png"), full_page=True)
        page.close()


def test_a_port_in_use_is_a_one_line_error(project: Path) -> None:
    """A second preview (or anything else) on the port: the command says so, rather than crash."""
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["--project", str(project), "campaign", "preview", "faq", "--port", str(port)])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "--port" in result.output
