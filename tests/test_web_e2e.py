"""Subscribe for Updates end to end, with real parts: Chromium, an HTTPS server, an SMTP server.

A person fills in the form in Chromium, confirms from the email that reached a real aiosmtpd
server, receives a campaign sent by the real send path, and leaves with the RFC 8058 one-click POST
a mailbox provider would make. The server speaks HTTPS (self-signed for 127.0.0.1) because
campaign lint, rightly, refuses http links. Screenshots at 375 and 800 px go to test-artifacts/.
"""

from __future__ import annotations

import email
import email.policy
import re
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from flask import Flask
from playwright.sync_api import Browser, Page, expect
from werkzeug.serving import make_server

from newsletter.config import Settings
from newsletter.delivery import service as delivery
from newsletter.delivery.prepare import prepare
from newsletter.delivery.transports import transport_factory
from newsletter.store.engine import open_store
from newsletter.store.models import EventKind
from newsletter.theme import HARVEST_LIGHT
from newsletter.web import close_app, create_app
from tests.conftest import ARTIFACTS
from tests.support.smtp_servers import Certificate, RecordingHandler, make_certificate, smtp_server
from tests.support.web import SECRET, find

WIDTHS = (375, 800)

CAMPAIGN = """\
---
subject: "Longer evening hours at the clinic"
preheader: "From next month, we are open until 8 pm on Tuesdays and Thursdays."
audience: [clinic-news]
---
From next month, the clinic is open until 8 pm on Tuesdays and Thursdays, so that
sessions fit around a working day.

::: faq Do I need to book the evening slots differently?
No. Book as usual; the evening slots appear in the calendar from the first of the month.
:::
"""


class LateApp:
    """A WSGI app filled in after the server is listening: the app needs the server's URL."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


@contextmanager
def https_server(certificate: Certificate) -> Iterator[tuple[str, LateApp]]:
    late = LateApp()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert, certificate.key)
    server = make_server("127.0.0.1", 0, late, threaded=True, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, name="web-e2e-server")
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_port}", late
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def rgb(colour: str) -> str:
    """``#2e5a45`` as a browser reports a computed colour: ``rgb(46, 90, 69)``."""
    return "rgb({}, {}, {})".format(*(int(colour[i : i + 2], 16) for i in (1, 3, 5)))


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_part(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def screenshots(page: Page, name: str) -> None:
    """The page at phone and desktop widths, whole length; and no sideways scrolling on the phone."""
    ARTIFACTS.mkdir(exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        page.screenshot(path=ARTIFACTS / f"{name}-{width}.png", full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"{name} scrolls sideways at {width} px ({overflow} px wide)"


def test_signup_confirm_campaign_and_one_click_unsubscribe(browser: Browser, tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path)
    project = tmp_path / "project"
    (project / "campaigns").mkdir(parents=True)
    (project / "campaigns" / "evening-hours.md").write_text(CAMPAIGN, encoding="utf-8")
    handler = RecordingHandler()
    with smtp_server(handler) as smtp, https_server(certificate) as (base, late):
        settings = Settings(
            project_dir=project,
            database_url=f"sqlite:///{project / 'subscribers.db'}",
            secret_key=SECRET,
            organisation="Harvest",
            postal_address="Harvest Ketamine Therapy, 100 Example Street, Springfield, ZZ 00000",
            from_address="updates@news.harvest.example",
            public_base_url=base,
            transport=smtp.url(),
        )
        store = open_store(settings.resolved_database_url)
        late.app = app = create_app(settings, store=store)
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 800, "height": 800})
        try:
            page = context.new_page()
            problems: list[str] = []  # a CSP violation or a missing stylesheet shows up here
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

            # 1. The form, in the browser.
            page.goto(f"{base}/subscribe")
            expect(page.get_by_role("heading", name="Subscribe for updates")).to_be_visible()
            button = page.get_by_role("button", name="Subscribe")
            assert button.evaluate("b => getComputedStyle(b).backgroundColor") == rgb(HARVEST_LIGHT.accent)
            assert not page.locator("#nl-website").is_visible() or page.locator("#nl-website").bounding_box()["x"] < 0  # type: ignore[index]
            screenshots(page, "subscribe")
            # No topic is ticked in advance: consent is chosen, not assumed.
            for label in ("FAQ updates", "Client stories", "Clinic news"):
                expect(page.get_by_label(label)).not_to_be_checked()
            page.get_by_label("Email address").fill("ana@example.org")
            page.get_by_label("Name (optional)").fill("Ana")
            button.click()
            # Without a topic the form comes back: the error by the topics, what was typed still there.
            expect(page.get_by_role("alert")).to_contain_text("Please choose at least one topic.")
            topics = page.get_by_role("group", name="Topics")
            expect(topics).to_contain_text("Please choose at least one topic.")
            error_box = page.locator("#nl-topic-error").bounding_box()
            first_topic = page.get_by_label("FAQ updates").bounding_box()
            assert error_box is not None and first_topic is not None and error_box["y"] < first_topic["y"]
            expect(page.get_by_label("Email address")).to_have_value("ana@example.org")
            expect(page.get_by_label("Name (optional)")).to_have_value("Ana")
            assert page.locator("#nl-topic-error").evaluate("e => getComputedStyle(e).color") == "rgb(155, 44, 31)"
            screenshots(page, "subscribe-error")
            # The form came back as a 400 (nothing was done), which the browser notes; nothing else.
            assert problems == ["Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"]
            problems.clear()
            app.extensions["newsletter"].mailer.join()
            assert handler.received == [] and find(store, "ana@example.org") is None
            page.get_by_label("FAQ updates").check()
            page.get_by_label("Clinic news").check()
            page.get_by_role("button", name="Subscribe").click()
            expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
            screenshots(page, "check-inbox")

            # 2. The confirmation email, as the SMTP server received it.
            app.extensions["newsletter"].mailer.join()
            [received] = handler.received
            assert received.recipients == ["ana@example.org"]
            confirmation = parsed(received.data)
            match = re.search(rf"{re.escape(base)}/confirm/\S+", text_part(confirmation))
            assert match, "no confirm link in the confirmation email"
            html_part = confirmation.get_body(("html",))
            assert html_part is not None and match[0] in html_part.get_content()  # type: ignore[attr-defined]
            email_view = context.new_page()
            email_view.set_content(html_part.get_content())  # type: ignore[attr-defined]
            screenshots(email_view, "confirmation-email")
            email_view.close()

            # 3. Opening the link changes nothing; the page says what it confirms; the button confirms.
            page.goto(match[0])
            assert find(store, "ana@example.org").status == "pending"  # type: ignore[union-attr]
            expect(page.get_by_text("FAQ updates, Clinic news")).to_be_visible()
            screenshots(page, "confirm")
            page.get_by_role("button", name="Confirm my subscription").click()
            expect(page.get_by_role("heading", name="You're subscribed")).to_be_visible()
            ana = find(store, "ana@example.org")
            assert ana is not None and ana.status == "confirmed"
            assert ana.tag_names == ["clinic-news", "faq-updates"]
            page.get_by_role("link", name="Choose topics or pause emails").click()
            expect(page.get_by_label("Clinic news")).to_be_checked()
            screenshots(page, "preferences")

            # 4. A campaign, through the real send path and the same SMTP server.
            prepared = prepare("evening-hours", settings)
            result = delivery.send(store, prepared, transport=transport_factory(settings))
            assert (result.counts.sent, result.counts.failed) == (1, 0)
            campaign = parsed(handler.received[-1].data)
            assert campaign["To"] == "Ana <ana@example.org>"
            assert campaign["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            one_click = re.search(r"<(https://[^>]+)>", str(campaign["List-Unsubscribe"]))
            assert one_click and one_click[1].startswith(f"{base}/unsubscribe/")

            page.goto(f"{base}/archive")
            page.get_by_role("link", name="Longer evening hours at the clinic").click()
            expect(page.get_by_text("Do I need to book the evening slots differently?")).to_be_visible()
            screenshots(page, "campaign")
            assert problems == []

            # 5. The mailbox provider's one-click POST: no cookie, no browser.
            request = urllib.request.Request(
                one_click[1],
                data=b"List-Unsubscribe=One-Click",
                method="POST",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            trust = ssl.create_default_context(cafile=str(certificate.cert))
            with urllib.request.urlopen(request, context=trust, timeout=30) as response:
                assert response.status == 200
                assert response.headers.get("Set-Cookie") is None

            # 6. Done before the answer came.
            ana = find(store, "ana@example.org")
            assert ana is not None and ana.status == "unsubscribed"
            # the link in the campaign names it, so the campaign report can count the unsubscribe
            unsubscribed = [e.detail for e in ana.events if e.kind == EventKind.UNSUBSCRIBED]
            assert unsubscribed == [{"via": "one-click", "campaign": "evening-hours"}]
        finally:
            context.close()
            close_app(app)
            store.dispose()
