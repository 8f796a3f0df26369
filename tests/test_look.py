"""The look, seen in a real browser: every page and email at 375 and 800 px, light and dark, checked by axe.

Debian's Chromium (driven by Playwright, never a downloaded browser) opens each web page as a
visitor reaches it, served by the real app over a real socket with its Content-Security-Policy, and
each email (both seed campaigns as a subscriber gets them, and the signup emails) as a mail app
shows HTML. For each it keeps screenshots in test-artifacts/look/ for a person to look at, checks that
nothing scrolls sideways on a phone and that the stylesheets loaded under the page's CSP, and runs
axe-core (bundled in axe-playwright-python, nothing fetched) in both colour schemes: a serious or
critical violation fails the test and is listed.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, expect
from werkzeug.serving import make_server

from newsletter.campaigns.content import load_campaign
from newsletter.campaigns.render import render_campaign
from newsletter.config import Settings
from newsletter.delivery import service as delivery
from newsletter.delivery.links import Purpose
from newsletter.delivery.prepare import prepare
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store.engine import Store, open_store
from newsletter.store.models import Status
from newsletter.theme import HARVEST_LIGHT
from newsletter.web import close_app, create_app
from newsletter.web.emails import SignupEmails
from tests.support.web import NO_LIMITS, add_subscriber, confirm_path, find, request_signup, token_path, web_settings

REPO = Path(__file__).resolve().parents[1]
WIDTHS = (375, 800)
SCHEMES = ("light", "dark")
BLOCKING = ("serious", "critical")
AXE = Axe()


@dataclass
class Site:
    base: str
    settings: Settings
    store: Store
    shots: Path
    counter: int = 0

    def subscriber(self, status: Status = Status.CONFIRMED) -> str:
        """A new subscriber's address, for pages that need one of their own (a confirm button changes it)."""
        self.counter += 1
        address = f"visitor{self.counter}@example.org"
        add_subscriber(self.store, address, status, tags=("faq-updates",))
        return address

    def path(self, purpose: Purpose, address: str) -> str:
        subscriber = find(self.store, address)
        assert subscriber is not None
        return self.base + token_path(purpose, subscriber)

    def confirm_link(self) -> str:
        """A pending signup request's own confirmation link, as its email would carry it."""
        self.counter += 1
        address = f"visitor{self.counter}@example.org"
        token = request_signup(self.store, address)
        subscriber = find(self.store, address)
        assert subscriber is not None
        return self.base + confirm_path(token, subscriber)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[Site]:
    """The app on 127.0.0.1 with the clinic's own theme, FAQ and both seed campaigns sent (so archived)."""
    project = tmp_path_factory.mktemp("look")
    for folder in ("campaigns", "faq", "templates"):
        shutil.copytree(REPO / folder, project / folder)
    settings = web_settings(
        project,
        f"sqlite:///{project / 'subscribers.db'}",
        organisation="Harvest",
        postal_address="Harvest Ketamine Therapy, 100 Example Street, Suite 200, Springfield, ZZ 00000",
    )
    store = open_store(settings.resolved_database_url)
    MemoryTransport.reset()
    app = create_app(settings, store=store, transport=lambda: MemoryTransport(), rate_limits=NO_LIMITS)
    add_subscriber(store, "reader@example.org", tags=("faq-updates", "client-stories"))
    for slug in ("faq-addiction", "client-stories"):
        delivery.start(store, prepare(slug, settings))
    shots = artifacts / "look"
    shots.mkdir(exist_ok=True)
    with serving(app) as base:
        yield Site(base, settings, store, shots)
    close_app(app)
    store.dispose()
    MemoryTransport.reset()


@pytest.fixture(scope="module")
def context(browser: Browser) -> Iterator[BrowserContext]:
    opened = browser.new_context(viewport={"width": 800, "height": 900})
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def context_without_csp(browser: Browser) -> Iterator[BrowserContext]:
    opened = browser.new_context(viewport={"width": 800, "height": 900}, bypass_csp=True)
    yield opened
    opened.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    opened = context.new_page()
    yield opened
    opened.close()


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="look-server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


# --- how each page is reached ----------------------------------------------------------------------


def subscribe(page: Page, site: Site) -> None:
    page.goto(f"{site.base}/subscribe")
    expect(page.get_by_role("heading", name="Subscribe for updates")).to_be_visible()


def subscribe_error(page: Page, site: Site) -> None:
    """A mistyped address, sent by a browser that does not check type=email (the server must answer)."""
    subscribe(page, site)
    page.locator("form.signup").evaluate("form => { form.noValidate = true; }")
    page.get_by_label("Email address").fill("ana@")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_text("Please check the form").first).to_be_visible()


def check_inbox(page: Page, site: Site) -> None:
    subscribe(page, site)
    page.get_by_label("Email address").fill("new-visitor@example.org")
    page.get_by_label("FAQ updates").check()
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()


def confirm(page: Page, site: Site) -> None:
    page.goto(site.confirm_link())
    expect(page.get_by_role("button", name="Confirm my subscription")).to_be_visible()


def confirmed(page: Page, site: Site) -> None:
    confirm(page, site)
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("heading", name="You're subscribed")).to_be_visible()


def preferences(page: Page, site: Site) -> None:
    page.goto(site.path("preferences", site.subscriber()))
    expect(page.get_by_role("button", name="Save preferences")).to_be_visible()


def unsubscribe(page: Page, site: Site) -> None:
    page.goto(site.path("unsubscribe", site.subscriber()))
    expect(page.get_by_role("button", name="Unsubscribe")).to_be_visible()


def unsubscribed(page: Page, site: Site) -> None:
    unsubscribe(page, site)
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You're unsubscribed")).to_be_visible()


def archive(page: Page, site: Site) -> None:
    page.goto(f"{site.base}/archive")
    expect(page.get_by_role("link", name="Respond rather than react: three client stories")).to_be_visible()


def archived_campaign(page: Page, site: Site) -> None:
    archive(page, site)
    page.get_by_role("link", name="Respond rather than react: three client stories").click()
    expect(page.get_by_text("A client’s story, shared anonymously").first).to_be_visible()


def faq(page: Page, site: Site) -> None:
    page.goto(f"{site.base}/faq")
    expect(page.get_by_role("heading", name="Frequently asked questions")).to_be_visible()


def link_does_not_work(page: Page, site: Site) -> None:
    page.goto(f"{site.base}/confirm/not-a-real-token")
    expect(page.get_by_role("heading", name="This link does not work")).to_be_visible()


def use_your_link(page: Page, site: Site) -> None:
    page.goto(f"{site.base}/unsubscribe")
    expect(page.get_by_role("heading", name="Use the link in your email")).to_be_visible()


def preferences_link(page: Page, site: Site) -> None:
    page.goto(f"{site.base}/preferences")
    expect(page.get_by_role("heading", name="Change your preferences")).to_be_visible()


def preferences_link_sent(page: Page, site: Site) -> None:
    preferences_link(page, site)
    page.get_by_label("Email address").fill("ana@example.org")
    page.get_by_role("button").last.click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()


def not_found(page: Page, site: Site) -> None:
    page.goto(f"{site.base}/no-such-page")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()


PAGES: dict[str, Callable[[Page, Site], None]] = {
    "subscribe": subscribe,
    "subscribe-error": subscribe_error,
    "check-inbox": check_inbox,
    "confirm": confirm,
    "confirmed": confirmed,
    "preferences": preferences,
    "unsubscribe": unsubscribe,
    "unsubscribed": unsubscribed,
    "archive": archive,
    "archived-campaign": archived_campaign,
    "faq": faq,
    "link-does-not-work": link_does_not_work,
    "use-your-link": use_your_link,
    "preferences-link": preferences_link,
    "preferences-link-sent": preferences_link_sent,
    "not-found": not_found,
}


# --- how each email is shown ------------------------------------------------------------------------


def campaign_email(slug: str) -> Callable[[Site], str]:
    def html(site: Site) -> str:
        rendered = render_campaign(load_campaign(slug, site.settings), site.settings)
        return rendered.personalise({"name": "Ana", **rendered.sample_urls})[0]

    return html


def signup_email(kind: str) -> Callable[[Site], str]:
    def html(site: Site) -> str:
        emails, to, url = SignupEmails(site.settings), "ana@example.org", f"{site.base}/preferences/sample"
        message = {
            "confirm": lambda: emails.confirmation(to, url),
            "already": lambda: emails.already_subscribed(to, url, url),
            "preferences-link": lambda: emails.preferences_link(to, url, url),
        }[kind]()
        parsed = email.message_from_bytes(message.data, policy=email.policy.default)
        part = parsed.get_body(("html",))  # type: ignore[attr-defined]
        assert part is not None
        return str(part.get_content())

    return html


EMAILS: dict[str, Callable[[Site], str]] = {
    "email-faq-addiction": campaign_email("faq-addiction"),
    "email-client-stories": campaign_email("client-stories"),
    "email-confirm": signup_email("confirm"),
    "email-already-subscribed": signup_email("already"),
    "email-preferences-link": signup_email("preferences-link"),
}


# --- the checks -------------------------------------------------------------------------------------


def blocking_violations(page: Page) -> list[str]:
    results = AXE.run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in results.response["violations"]
        if v["impact"] in BLOCKING
    ]


def look_at(page: Page, name: str, shots: Path) -> list[str]:
    """Screenshots in both schemes at both widths, and axe's blocking findings in each scheme."""
    findings = []
    for scheme in SCHEMES:
        page.emulate_media(color_scheme=scheme)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=shots / f"{name}-{width}-{scheme}.png", full_page=True)
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= width, f"{name} scrolls sideways at {width} px in {scheme} mode ({wide} px wide)"
        findings += [f"{scheme}: {finding}" for finding in blocking_violations(page)]
    page.emulate_media(color_scheme="light")
    return findings


@pytest.mark.parametrize("name", PAGES)
def test_every_page_in_both_schemes_at_both_widths_passes_axe(
    context: BrowserContext, context_without_csp: BrowserContext, site: Site, name: str
) -> None:
    # The archived campaign's CSP sandboxes it without scripts, where axe cannot run; its styles are inline.
    with closing((context_without_csp if name == "archived-campaign" else context).new_page()) as page:
        errors: list[str] = []  # a style or a sheet refused by the CSP shows up here
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        PAGES[name](page, site)
        if name != "archived-campaign":  # its HTML is the email's: MJML's inline styles, no theme.css
            accent = page.evaluate("getComputedStyle(document.body).getPropertyValue('--accent').trim()")
            assert accent == HARVEST_LIGHT.accent  # /theme.css loaded under the page's CSP
        assert look_at(page, name, site.shots) == []
        assert [e for e in errors if "status of 4" not in e] == []  # a 400 or 404 page logs its own status


@pytest.mark.parametrize("name", EMAILS)
def test_every_email_in_both_schemes_at_both_widths_passes_axe(page: Page, site: Site, name: str) -> None:
    page.set_content(EMAILS[name](site))
    expect(page.get_by_text("Harvest", exact=True).first).to_be_visible()
    assert look_at(page, name, site.shots) == []


def test_the_greeting_is_followed_by_a_paragraph_gap_not_more(page: Page, site: Site) -> None:
    page.set_content(EMAILS["email-client-stories"](site))
    greeting = page.get_by_text("Hello Ana,").bounding_box()
    first = page.get_by_text("Our experience is that ketamine").bounding_box()
    assert greeting is not None and first is not None
    gap = first["y"] - (greeting["y"] + greeting["height"])
    assert 8 <= gap <= 20, f"{gap} px between the greeting and the first paragraph"


def test_the_axe_check_finds_what_it_is_there_to_find(page: Page) -> None:
    page.set_content(
        '<!doctype html><html lang="en"><body><main><p style="color:#aaaaaa;background:#ffffff">faint</p>'
        '<img src="data:,"><button></button></main></body></html>'
    )
    found = {finding.split(" ")[0] for finding in blocking_violations(page)}
    assert {"color-contrast", "image-alt", "button-name"} <= found


def test_a_mistyped_address_comes_back_in_its_field_with_what_was_typed(page: Page, site: Site) -> None:
    """An address the browser lets through (no dot after the @) that the server refuses: the form comes
    back with everything as typed, the error next to the email field, and nothing else changed."""
    subscribe(page, site)
    page.get_by_label("Email address").fill("ana.lee@example")
    page.get_by_label("Name (optional)").fill("Ana Lee")
    page.get_by_label("Clinic news").check()
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("alert")).to_contain_text("That does not look like an email address")
    field = page.get_by_label("Email address")
    expect(field).to_have_value("ana.lee@example")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description("That does not look like an email address; please check it.")
    expect(page.get_by_label("Name (optional)")).to_have_value("Ana Lee")
    expect(page.get_by_label("Clinic news")).to_be_checked()
    expect(page.get_by_label("FAQ updates")).not_to_be_checked()
    # Next to the field: just under it, above the name.
    field_box, error_box = field.bounding_box(), page.locator("#nl-email-error").bounding_box()
    name_box = page.get_by_label("Name (optional)").bounding_box()
    assert field_box is not None and error_box is not None and name_box is not None
    assert field_box["y"] < error_box["y"] < name_box["y"]
    assert look_at(page, "subscribe-bad-address", site.shots) == []
    # Corrected, it goes through.
    field.fill("ana.lee@example.org")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    assert find(site.store, "ana.lee@example.org") is not None
