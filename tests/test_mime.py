"""Per-recipient MIME bytes: correct, parseable, one recipient, and closed to header injection."""

from __future__ import annotations

import email
import email.message
import email.policy
import re
import unicodedata
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import newsletter.campaigns.render as render_module
from newsletter.campaigns.content import parse_campaign
from newsletter.campaigns.render import PersonalFieldError, RenderedCampaign, render_campaign
from newsletter.config import Settings
from newsletter.delivery.mime import HeaderError, MessageFactory, clean_header_value, format_address
from newsletter.errors import NewsletterError
from tests.support.calls import CallCounter

BASE = "https://news.harvest.example"
UNSUBSCRIBE = f"{BASE}/unsubscribe/tok-123?c=stories&x=1"
PREFERENCES = f"{BASE}/preferences/tok-123"
CAMPAIGN = """\
---
subject: "Respond rather than react: three client stories — and a note"
audience: [client-stories]
---
Our experience is that ketamine helps interrupt the automatic, default patterns. Ünïcödé, “quotes”,
a line with = signs = and a very long line that goes on and on and on and on and on and on and on.

::: vignette
A client wanted to decrease drinking so that he was able to go to bars socially with his buddies.
:::
"""


def settings_for(project_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "organisation": "Harvest",
        "postal_address": "100 Example Street, Springfield, ZZ 00000",
        "from_address": "news@harvest.example",
        "reply_to": "care@harvest.example",
        "public_base_url": BASE,
    }
    values.update(overrides)
    return Settings(project_dir=project_dir, **values)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return settings_for(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def rendered(settings: Settings) -> RenderedCampaign:
    return render_campaign(parse_campaign(CAMPAIGN, slug="client-stories"), settings)


@pytest.fixture(scope="module")
def factory(rendered: RenderedCampaign, settings: Settings) -> MessageFactory:
    return MessageFactory(rendered, settings)


def build(factory: MessageFactory, name: str | None = "Ana Example", **kwargs: Any) -> bytes:
    args: dict[str, Any] = {
        "recipient_email": "ana@example.org",
        "recipient_name": name,
        "unsubscribe_url": UNSUBSCRIBE,
        "preferences_url": PREFERENCES,
    }
    args.update(kwargs)
    return factory.build(**args)


def parse(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def bodies(message: email.message.EmailMessage) -> tuple[str, str]:
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    # Text parts travel with CRLF line ends; personalise() returns LF.
    return (
        html_part.get_content().replace("\r\n", "\n"),
        text_part.get_content().replace("\r\n", "\n"),
    )


def personalised(rendered: RenderedCampaign, name: str | None) -> tuple[str, str]:
    cleaned = clean_header_value(name or "")
    return rendered.personalise({"name": cleaned, "unsubscribe_url": UNSUBSCRIBE, "preferences_url": PREFERENCES})


# --- structure ------------------------------------------------------------------------------------


def test_parses_back_to_exactly_the_personalised_parts(factory: MessageFactory, rendered: RenderedCampaign) -> None:
    message = parse(build(factory))
    assert bodies(message) == personalised(rendered, "Ana Example")
    assert message.defects == []
    assert all(part.defects == [] for part in message.walk())


def test_multipart_alternative_text_first(factory: MessageFactory) -> None:
    message = parse(build(factory))
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"


def test_line_ends_and_lengths(factory: MessageFactory) -> None:
    data = build(factory, name="Zoë " + "Ünïcödé " * 40)
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    _, _, body = data.partition(b"\r\n\r\n")
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert data.isascii()


def test_headers(factory: MessageFactory, settings: Settings) -> None:
    message = parse(build(factory))
    assert message["From"] == "Harvest <news@harvest.example>"
    assert message["Subject"] == "Respond rather than react: three client stories — and a note"
    assert message["MIME-Version"] == "1.0"
    assert message["Reply-To"] == "care@harvest.example"
    assert message["Date"].datetime.tzinfo is not None
    assert re.fullmatch(r"<[^<>@\s]+@harvest\.example>", message["Message-ID"])
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>, <mailto:news@harvest.example?subject=unsubscribe>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Harvest <newsletter.harvest.example>"
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe"):
        assert len(message.get_all(name) or []) == 1, name


def test_exactly_one_recipient_and_no_cc_or_bcc(factory: MessageFactory) -> None:
    message = parse(build(factory))
    assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [("Ana Example", "ana@example.org")]
    assert message["Cc"] is None and message["Bcc"] is None


def test_no_reply_to_when_not_set(rendered: RenderedCampaign, tmp_path: Path) -> None:
    factory = MessageFactory(rendered, settings_for(tmp_path, reply_to=""))
    assert parse(build(factory))["Reply-To"] is None


def test_without_a_name_the_address_stands_alone(factory: MessageFactory, rendered: RenderedCampaign) -> None:
    for name in (None, "", "  \r\n "):
        message = parse(build(factory, name=name))
        assert str(message["To"]) == "ana@example.org"
        assert bodies(message) == personalised(rendered, "")
        assert "Hello there," in bodies(message)[1]


def test_message_ids_are_unique_and_can_be_given(factory: MessageFactory) -> None:
    ids = {parse(build(factory))["Message-ID"] for _ in range(50)}
    assert len(ids) == 50
    assert parse(build(factory, message_id="row-17.c3@harvest.example"))["Message-ID"] == "<row-17.c3@harvest.example>"
    assert parse(build(factory, message_id="<row-18@harvest.example>"))["Message-ID"] == "<row-18@harvest.example>"


def test_date_can_be_given(factory: MessageFactory) -> None:
    when = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
    assert parse(build(factory, date=when))["Date"].datetime == when
    with pytest.raises(HeaderError, match="time zone"):
        build(factory, date=datetime(2026, 1, 5, 14, 0))


def test_non_ascii_subject_and_name_are_encoded(factory: MessageFactory) -> None:
    data = build(factory, name="Zoë Ångström")
    head = data.partition(b"\r\n\r\n")[0]
    assert head.isascii() and b"=?utf-8?" in head
    assert parse(data)["To"].addresses[0].display_name == "Zoë Ångström"


def test_no_tracking(factory: MessageFactory) -> None:
    html, _ = bodies(parse(build(factory)))
    assert "<img" not in html
    assert re.findall(r'href="([^"]+)"', html) == [
        f"{BASE}/archive/client-stories",
        UNSUBSCRIBE.replace("&", "&amp;"),
        PREFERENCES,
    ]


# --- header injection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Ana\r\nBcc: evil@example.com",
        "Ana\nBcc: evil@example.com",
        "Ana\rBcc: evil@example.com",
        "Ana\x00\x0b\x1b[31m",
        "Ana\u2028Bcc: evil@example.com",
        "Ana\u2029Bcc: evil@example.com",
        "Ana\u0085Bcc: evil@example.com",
        "=?UTF-8?Q?=0A?=Bcc: evil@example.com",
        "=?utf-8?b?QW5hCkJjYzogZXZpbEBleGFtcGxlLmNvbQ==?=",
        '"Ana" <evil@example.com>, other@example.com',
    ],
)
def test_names_cannot_inject_headers(factory: MessageFactory, name: str) -> None:
    message = parse(build(factory, name=name))
    assert message["Bcc"] is None and message["Cc"] is None
    (address,) = message["To"].addresses
    assert address.addr_spec == "ana@example.org"
    assert "\n" not in address.display_name and "\r" not in address.display_name
    assert "=?" not in address.display_name
    assert len(message.get_all("To") or []) == 1


@pytest.mark.parametrize(
    "address",
    [
        "ana@example.org\r\nBcc: evil@example.com",
        "ana@example.org\n",
        "Ana <ana@example.org>",
        "ana@example.org, evil@example.com",
        "ana@@example.org",
        "ana",
        "ana@example",
        "zoë@example.org",
        "=?utf-8?q?x?=@example.org",
        "",
    ],
)
def test_bad_addresses_are_refused(factory: MessageFactory, address: str) -> None:
    with pytest.raises(HeaderError) as info:
        build(factory, recipient_email=address)
    assert isinstance(info.value, NewsletterError)


@pytest.mark.parametrize(
    "url",
    [
        f"{BASE}/u\r\nBcc: evil@example.com",
        f"{BASE}/u>, <https://evil.example/",
        "mailto:x@example.org",
        f"{BASE}/ü",
    ],
)
def test_bad_unsubscribe_urls_are_refused(factory: MessageFactory, url: str) -> None:
    with pytest.raises(PersonalFieldError):
        build(factory, unsubscribe_url=url)


def test_bad_message_id_is_refused(factory: MessageFactory) -> None:
    with pytest.raises(HeaderError):
        build(factory, message_id="<a@b>\r\nBcc: evil@example.com")


def test_subject_with_encoded_word_lookalike_is_neutralised(rendered: RenderedCampaign, settings: Settings) -> None:
    import dataclasses

    tricky = dataclasses.replace(rendered, subject="Hello =?UTF-8?Q?=0A?=Bcc: evil@example.com")
    message = parse(build(MessageFactory(tricky, settings)))
    assert "\n" not in str(message["Subject"])
    assert message["Bcc"] is None


def test_missing_from_address_is_refused(rendered: RenderedCampaign, tmp_path: Path) -> None:
    with pytest.raises(HeaderError, match="from_address"):
        MessageFactory(rendered, settings_for(tmp_path, from_address=""))


# --- clean_header_value ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Ana Example", "Ana Example"),
        ("  Ana \t Example  ", "Ana Example"),
        ("Ana\r\nBcc: x", "Ana Bcc: x"),
        ("Ana\x00Bo", "Ana Bo"),
        ("A\u2028B\u2029C\u0085D", "A B C D"),
        ("evil\u202egnp.exe", "evil gnp.exe"),
        ("=?UTF-8?Q?=0A?=", "= ?UTF-8?Q?=0A?="),
        ("==??", "== ??"),
        ("Zoë 👩‍👩‍👧", "Zoë 👩‍👩‍👧"),  # zero-width joiners in emoji stay
        ("", ""),
    ],
)
def test_clean_header_value(value: str, expected: str) -> None:
    assert clean_header_value(value) == expected


@hypothesis_settings(database=None, max_examples=300)
@given(st.text())
def test_clean_header_value_properties(value: str) -> None:
    cleaned = clean_header_value(value)
    assert "=?" not in cleaned
    assert cleaned == cleaned.strip()
    assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in cleaned)
    assert clean_header_value(cleaned) == cleaned


@hypothesis_settings(database=None, max_examples=200)
@given(st.text())
def test_format_address_is_one_clean_header_value(name: str) -> None:
    header = format_address(name, "ana@example.org")
    assert "\r\n" not in header.replace("\r\n ", "")  # only folding, never a new header line
    assert header.isascii()
    assert header.endswith(("ana@example.org", "<ana@example.org>"))


# --- round trips on arbitrary names ---------------------------------------------------------------


@hypothesis_settings(database=None, max_examples=300, deadline=None)
@given(name=st.text(max_size=120))
def test_any_name_round_trips(factory: MessageFactory, rendered: RenderedCampaign, name: str) -> None:
    data = build(factory, name=name)
    assert data.isascii()
    message = parse(data)
    assert bodies(message) == personalised(rendered, name)
    assert message["Bcc"] is None and message["Cc"] is None
    (address,) = message["To"].addresses
    assert address.addr_spec == "ana@example.org"
    cleaned = clean_header_value(name)
    raw_to = re.search(rb"\r\nTo: (.*?)\r\n(?! )", data, re.S)
    assert raw_to is not None
    if raw_to.group(1).count(b"=?utf-8?b?") <= 1:
        assert address.display_name == cleaned
    else:
        # Python 3.11 keeps the folding space between adjacent encoded words in a display name
        # (CPython gh-128110); an RFC 2047 decoder gives the name back exactly.
        decoded = str(make_header(decode_header(raw_to.group(1).decode("ascii"))))
        assert decoded == f"{cleaned} <ana@example.org>"
        assert "".join(address.display_name.split()) == "".join(cleaned.split())


# --- stage two never goes back to stage one -------------------------------------------------------


def test_build_does_not_render_or_construct_messages(
    rendered: RenderedCampaign, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    mjml = CallCounter(render_module.mjml2html)
    generate = CallCounter(jinja2.Template.generate)
    message_init = CallCounter(email.message.Message.__init__)
    monkeypatch.setattr(render_module, "mjml2html", mjml)
    monkeypatch.setattr(jinja2.Template, "generate", lambda self, *a, **k: generate(self, *a, **k))
    monkeypatch.setattr(email.message.Message, "__init__", lambda self, *a, **k: message_init(self, *a, **k))
    factory = MessageFactory(rendered, settings)
    outputs = [build(factory, name=f"Reader {n}", recipient_email=f"r{n}@example.org") for n in range(100)]
    assert (mjml.calls, generate.calls, message_init.calls) == (0, 0, 0)
    monkeypatch.undo()
    assert parse(outputs[42])["To"].addresses[0].addr_spec == "r42@example.org"


@hypothesis_settings(database=None, max_examples=300, deadline=None)
@given(name=st.one_of(st.text(max_size=120), st.text(alphabet=".\r\n =a", max_size=40)))
def test_the_wire_form_is_the_message_dot_stuffed_and_terminated(factory: MessageFactory, name: str) -> None:
    """Stuffing the pieces once per campaign gives the same bytes as stuffing each whole message."""
    from newsletter.delivery.transports.smtp_common import wire_form

    when = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    args = ("ana@example.org", name, UNSUBSCRIBE, PREFERENCES, "<1@harvest.example>", when)
    data, wire = factory.build_with_wire(*args)
    assert data == factory.build(*args)
    assert wire == wire_form(data)
