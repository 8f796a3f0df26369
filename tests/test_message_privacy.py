"""What a campaign email carries, and what it does not: DKIM, no tracking, one recipient."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import dkim
import pytest

from newsletter.config import Settings
from newsletter.delivery.ledger import Claim
from newsletter.delivery.prepare import prepare
from newsletter.errors import NewsletterError
from newsletter.store.models import new_public_id
from tests.support.campaigns import FAQ_CAMPAIGN, clinic_settings, write_campaign


def make_settings(project: Path, **extra: str) -> Settings:
    return clinic_settings(project, secret_key="test-secret-key-0123456789abcdef-long", **extra)


def one_message(settings: Settings) -> bytes:
    prepared = prepare("faq", settings)
    claim = Claim(7, 42, new_public_id(), "reader@example.org", "reader@example.org", "Reader", False)
    return prepared.message_for(claim, campaign_id=3).data


@pytest.fixture
def dkim_key(tmp_path: Path) -> tuple[Path, bytes]:
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return key, base64.b64encode(public)


def test_dkim_signature_verifies_and_covers_the_unsubscribe_headers(
    project: Path, dkim_key: tuple[Path, bytes]
) -> None:
    key, public = dkim_key
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    data = one_message(make_settings(project, dkim_key_path=str(key), dkim_selector="news2026"))
    assert data.startswith(b"DKIM-Signature:")
    record = b"v=DKIM1; k=rsa; p=" + public

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news2026._domainkey.harvest.example."
        return record

    assert dkim.verify(data, dnsfunc=dns)
    signature = email.message_from_bytes(data, policy=email.policy.default)["DKIM-Signature"]
    signed = {
        h.strip().lower()
        for h in re.search(r"h=([^;]+)", signature.replace("\r\n", "").replace(" ", "")).group(1).split(":")
    }  # type: ignore[union-attr]
    assert {"from", "subject", "list-unsubscribe", "list-unsubscribe-post"} <= signed
    tampered = data.replace(b"Subject: Can I get", b"Subject: Can we get")
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_no_dkim_without_a_key_and_a_bad_key_is_a_clear_error(project: Path, tmp_path: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    assert b"DKIM-Signature" not in one_message(make_settings(project))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key", encoding="utf-8")
    with pytest.raises(NewsletterError, match="cannot sign with the DKIM key"):
        one_message(make_settings(project, dkim_key_path=str(bad), dkim_selector="s"))


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")
        if tag == "img":
            self.images.append(values.get("src") or "")


def test_no_tracking_pixel_no_click_redirects_one_recipient(project: Path) -> None:
    write_campaign(
        project, "faq", FAQ_CAMPAIGN + "\nRead the [review](https://www.cambridge.example/ketamine-review).\n"
    )
    message = email.message_from_bytes(one_message(make_settings(project)), policy=email.policy.default)
    assert message["To"] == "Reader <reader@example.org>"
    assert message["Cc"] is None and message["Bcc"] is None
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    refs = _Refs()
    refs.feed(html)
    assert refs.images == []  # no pixel, no remote image of any kind
    assert "https://www.cambridge.example/ketamine-review" in refs.links  # linked directly, not via us
    ours = [link for link in refs.links if link.startswith("https://news.harvest.example/")]
    assert {link.split("/")[3] for link in ours} <= {"unsubscribe", "preferences", "archive"}
    assert "fonts.googleapis" not in html


def test_the_archive_web_version_holds_nothing_personal(project: Path) -> None:
    write_campaign(project, "faq", FAQ_CAMPAIGN)
    prepared = prepare("faq", make_settings(project))
    web = prepared.web_html
    assert "83 studies" in web
    for personal in ("Hello", "View this email in your browser", "/unsubscribe", "/preferences", "NLPH"):
        assert personal not in web, personal
    assert "https://news.harvest.example/subscribe" in web
    email_html = prepared.rendered.html
    assert "View this email in your browser" in email_html  # the email itself keeps them
