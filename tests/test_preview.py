from __future__ import annotations

import json
import os
import threading
import urllib.request
from pathlib import Path

from newsletter.campaigns.content import load_campaign
from newsletter.campaigns.preview import PreviewState, make_server
from newsletter.campaigns.render import render_campaign
from newsletter.errors import NewsletterError
from tests.support.campaigns import FAQ_CAMPAIGN, write_campaign


def get(base: str, path: str) -> str:
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return response.read().decode("utf-8")


def test_preview_serves_both_widths_and_rerenders_on_save(settings, project: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_campaign(project, "faq", FAQ_CAMPAIGN)

    def render() -> str:
        rendered = render_campaign(load_campaign("faq", settings), settings)
        return rendered.personalise({"name": "Sample Reader", **rendered.sample_urls})[0]

    state = PreviewState(render, lambda: [path])
    server = make_server(state, "Preview test", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        page = get(base, "/")
        assert 'id="desktop"' in page and 'id="mobile"' in page and "375px" in page
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
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_render_error_is_shown_not_raised(project: Path) -> None:
    def broken() -> str:
        raise NewsletterError("template.mjml.j2:3: boom")

    state = PreviewState(broken, list)
    state.refresh()
    assert "boom" in state.html and "<pre" in state.html
