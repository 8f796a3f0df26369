"""Images from the project folder, carried inside each message (CID) instead of loaded from a server.

End to end, as staff use it: `campaign lint` (a missing, too large, outside or unusual image is an
error; a remote one a warning saying how to embed it instead), `campaign build` (the files show the
image), `campaign send` through the file transport (each .eml parsed back with the email package:
multipart/related with the image under its Content-ID, the HTML naming it, the text part its alt
text, DKIM verifying over all of it), and the archive's web version (data: URIs) in Chromium.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import struct
import subprocess
import threading
import zlib
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner, Result
from playwright.sync_api import Browser
from werkzeug.serving import make_server

from newsletter.campaigns.content import load_campaign
from newsletter.campaigns.images import MAX_IMAGE_BYTES, embed, with_data_uris
from newsletter.campaigns.render import render_campaign
from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery.ledger import Claim
from newsletter.delivery.mime import END_OF_DATA, stuffed
from newsletter.delivery.prepare import prepare
from newsletter.store.models import new_public_id
from newsletter.web import close_app, create_app
from tests.support.campaigns import SECRET_ENV, add_subscribers

SETTINGS = (
    'organisation = "Harvest"\n'
    'postal_address = "100 Example Street, Springfield, ZZ 00000"\n'
    'from_address = "updates@news.harvest.example"\n'
    'public_base_url = "https://news.harvest.example"\n'
)
GARDEN = """---
subject: Our new garden
preheader: A quiet place to sit before and after sessions.
---
The garden behind the clinic is open to clients from Monday.

![Our garden in spring, with a bench under the apple tree](images/garden.png)

Sit there before or after a session.
"""


def png(width: int = 3, height: int = 2, colour: tuple[int, int, int] = (46, 90, 69), *, pad: int = 0) -> bytes:
    """A real PNG (plain RGB), padded with a private chunk to a wanted size."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + bytes(colour) * width for _ in range(height))
    extra = chunk(b"prVt", bytes(pad)) if pad else b""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "newsletter.toml").write_text(SETTINGS, encoding="utf-8")
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "garden.png").write_bytes(png())
    (tmp_path / "campaigns" / "garden.md").write_text(GARDEN, encoding="utf-8")
    return tmp_path


def run(project: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        cli,
        ["--project", str(project), "--db", f"sqlite:///{project / 'subscribers.db'}", *args],
        env=env,
        catch_exceptions=False,
    )


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


# --- lint ------------------------------------------------------------------------------------------


def test_a_local_image_passes_lint_and_its_problems_are_errors_at_their_line(project: Path) -> None:
    assert run(project, "campaign", "lint", "--strict", "garden").exit_code == 0
    campaign = project / "campaigns" / "garden.md"
    (project / "images" / "big.png").write_bytes(png(pad=MAX_IMAGE_BYTES))
    (project / "images" / "drawing.png").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>', encoding="utf-8")
    (project.parent / "elsewhere.png").write_bytes(png())
    (project / "images" / "link.png").symlink_to(project.parent / "elsewhere.png")
    campaign.write_text(
        GARDEN
        + "\n![Missing](images/missing.png)\n\n![Too big](images/big.png)\n\n![Drawing](images/drawing.png)\n"
        + "\n![Out](../elsewhere.png)\n\n![Linked out](images/link.png)\n",
        encoding="utf-8",
    )
    result = run(project, "campaign", "lint", "garden", "--json")
    assert result.exit_code == 1
    errors = {(e["check"], e["line"]): e["message"] for e in json.loads(result.output)["errors"]}
    assert set(errors) == {
        ("image.missing", 11),
        ("image.too-large", 13),
        ("image.type", 15),
        ("image.outside", 17),
        ("image.outside", 19),
    }
    assert "there is no file images/missing.png" in errors["image.missing", 11]
    assert f"{MAX_IMAGE_BYTES // 1024} KB at most" in errors["image.too-large", 13]
    assert "not a PNG, JPEG or GIF" in errors["image.type", 15]
    # And a send refuses the campaign, as for every lint error.
    send = run(project, "campaign", "send", "garden", "--yes", env=SECRET_ENV)
    assert send.exit_code == 1 and "lint error" in send.output


def test_the_images_together_have_a_limit(project: Path) -> None:
    for name in "abcd":
        (project / "images" / f"{name}.png").write_bytes(png(colour=(ord(name), 0, 0), pad=90 * 1024))
    body = "".join(f"![Photo {name}](images/{name}.png)\n\n" for name in "abcd")
    (project / "campaigns" / "garden.md").write_text(GARDEN + body, encoding="utf-8")
    report = json.loads(run(project, "campaign", "lint", "garden", "--json").output)
    assert [e["check"] for e in report["errors"]] == ["image.total"]
    assert "images/d.png" in report["errors"][0]["message"] and "300 KB together" in report["errors"][0]["message"]


def test_a_remote_image_is_a_warning_that_says_how_to_embed_it(project: Path) -> None:
    (project / "campaigns" / "garden.md").write_text(
        GARDEN + "\n![Pixel](https://evil.example/pixel.gif)\n", encoding="utf-8"
    )
    report = json.loads(run(project, "campaign", "lint", "garden", "--json").output)
    [warning] = [w for w in report["warnings"] if w["check"] == "html.img-remote"]
    assert "evil.example" in warning["message"] and "![alt text](images/name.png)" in warning["message"]
    assert warning["line"] == 11


def test_only_src_attributes_of_img_elements_with_paths_are_embedded(project: Path) -> None:
    html = (
        '<img src="images/garden.png" alt="a"><img alt="b" src="images/garden.png">'
        '<img src="https://news.harvest.example/x.png" alt="c"><img src="cid:x@y" alt="d">'
        '<a href="images/garden.png">a link</a><p>src="images/garden.png"</p>'
    )
    done = embed(html, project, "news.harvest.example")
    [image] = done.images  # the same file twice: one part
    assert image.subtype == "png" and image.content_id.endswith(".garden@news.harvest.example")
    assert done.html.count(f'src="cid:{image.content_id}"') == 2 and not done.problems
    assert 'href="images/garden.png"' in done.html and '<p>src="images/garden.png"</p>' in done.html
    assert 'src="https://news.harvest.example/x.png"' in done.html and 'src="cid:x@y"' in done.html
    page = with_data_uris(done.html, done.images)
    assert page.count(f'src="data:image/png;base64,{base64.b64encode(png()).decode()}"') == 2


# --- the message ------------------------------------------------------------------------------------


def test_each_message_carries_the_image_once_encoded_for_the_campaign(project: Path, tmp_path: Path) -> None:
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    overrides = {"secret_key": SECRET_ENV["NEWSLETTER_SECRET_KEY"], "dkim_key_path": str(key), "dkim_selector": "s1"}
    settings = load_settings(project, overrides=overrides).settings
    prepared = prepare("garden", settings)
    messages = [
        prepared.message_for(
            Claim(n, n, new_public_id(), f"r{n}@example.org", f"r{n}@example.org", f"Reader {n}", False), campaign_id=1
        )
        for n in (1, 2)
    ]
    for outgoing in messages:
        assert dkim.verify(
            outgoing.data, dnsfunc=lambda name, timeout=5: b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
        )
        # The wire form, built from pieces stuffed once, is the message dot-stuffed as a whole.
        assert outgoing.wire == stuffed(outgoing.data) + END_OF_DATA
        message = parsed(outgoing.data)
        assert message.get_content_type() == "multipart/alternative"
        text, related = message.get_payload()  # type: ignore[misc]
        assert text.get_content_type() == "text/plain" and related.get_content_type() == "multipart/related"
        assert related.get_param("type") == "text/html"
        html_part, image_part = related.get_payload()
        assert image_part.get_content_type() == "image/png" and image_part.get_content() == png()
        assert image_part.get_content_disposition() == "inline" and image_part.get_filename() == "garden.png"
        content_id = image_part["Content-ID"].strip("<>")
        html = html_part.get_content()
        assert f'src="cid:{content_id}"' in html and "images/garden.png" not in html
        assert 'alt="Our garden in spring, with a bench under the apple tree"' in html
        assert "Our garden in spring, with a bench under the apple tree" in " ".join(text.get_content().split())
    first, second = (parsed(m.data) for m in messages)
    assert first["To"] != second["To"]


def test_lint_build_send_and_the_archive_show_the_image(project: Path, browser: Browser) -> None:
    assert run(project, "init").exit_code == 0
    add_subscribers(f"sqlite:///{project / 'subscribers.db'}", 2, tags=())
    built = run(project, "campaign", "build", "garden", "-o", "build")
    assert built.exit_code == 0, built.output
    page = (project / "build" / "garden.html").read_text(encoding="utf-8")
    data_uri = f"data:image/png;base64,{base64.b64encode(png()).decode()}"
    assert data_uri in page and "cid:" not in page  # a file opened in a browser shows the image
    sent = run(project, "campaign", "send", "garden", "--transport", "file:outbox/", "--yes", env=SECRET_ENV)
    assert sent.exit_code == 0, sent.output
    emls = sorted((project / "outbox").glob("*.eml"))
    assert len(emls) == 2
    for eml in emls:
        message = parsed(eml.read_bytes())
        [image] = [part for part in message.walk() if part.get_content_type() == "image/png"]
        assert image.get_content() == png()  # type: ignore[attr-defined]

    settings = load_settings(project, overrides={"secret_key": SECRET_ENV["NEWSLETTER_SECRET_KEY"]}).settings
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    context = browser.new_context()
    try:
        archived = app.test_client().get("/archive/garden").get_data(as_text=True)
        assert data_uri in archived and "cid:" not in archived and "images/garden.png" not in archived
        # In Chromium, under the archive's Content-Security-Policy: the image is drawn, 3 by 2 pixels.
        view = context.new_page()
        view.goto(f"http://127.0.0.1:{server.port}/archive/garden")
        image = view.get_by_role("img", name="Our garden in spring, with a bench under the apple tree")
        assert image.evaluate("i => [i.complete, i.naturalWidth, i.naturalHeight]") == [True, 3, 2]
    finally:
        context.close()
        server.shutdown()
        thread.join()
        server.server_close()
        close_app(app)


def test_without_images_the_message_is_as_before(project: Path) -> None:
    (project / "campaigns" / "garden.md").write_text(
        GARDEN.replace("![", "[").replace("(images", "(https://harvest.example/images"), encoding="utf-8"
    )
    settings = load_settings(project).settings
    rendered = render_campaign(load_campaign("garden", settings), settings)
    assert rendered.images == () and rendered.image_problems == ()
    message = parsed(
        prepare("garden", settings, for_send=False).factory.build(
            "r@example.org", None, "https://x.example/u", "https://x.example/p"
        )
    )
    assert [part.get_content_type() for part in message.walk()] == ["multipart/alternative", "text/plain", "text/html"]


def test_the_faq_page_shows_a_local_image_by_its_alt_text_and_faq_lint_checks_it(tmp_path: Path, project: Path) -> None:
    faq = project / "faq"
    faq.mkdir()
    (faq / "01-garden.md").write_text(
        "---\nquestion: Is there a garden?\nid: garden\ntopics: [faq-updates]\n---\n"
        "Yes: ![The garden](images/garden.png) and ![A pond](images/pond.png).\n",
        encoding="utf-8",
    )
    result = run(project, "faq", "lint", "--json")
    errors = json.loads(result.output)["errors"]
    assert [(e["check"], e["line"]) for e in errors] == [("image.missing", 6)]
    settings = load_settings(project, overrides={"secret_key": SECRET_ENV["NEWSLETTER_SECRET_KEY"]}).settings
    run(project, "init")
    app = create_app(settings)
    try:
        page = app.test_client().get("/faq").get_data(as_text=True)
    finally:
        close_app(app)
    assert "The garden" in page and "images/garden.png" not in page
