"""One theme for every page and email: read once from templates/theme.toml, checked, and used by the
campaign templates, the web pages (/theme.css) and the signup emails alike; with it, the vignette
caption, typographic quotes, the footer that names the organisation once and the greeting's spacing."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from newsletter.campaigns import vignette
from newsletter.campaigns.content import load_campaign, parse_campaign
from newsletter.campaigns.render import render_campaign
from newsletter.config import Settings, load_settings
from newsletter.errors import ConfigError
from newsletter.store.engine import Store, open_store
from newsletter.theme import (
    AA_NON_TEXT,
    AA_TEXT,
    CONTRAST_PAIRS,
    HARVEST_DARK,
    HARVEST_LIGHT,
    Theme,
    contrast,
    load_theme,
    sender_line,
    theme_from_mapping,
)
from newsletter.web import close_app
from newsletter.web.emails import SignupEmails
from tests.conftest import Newsletter
from tests.support.campaigns import clinic_settings, write_campaign
from tests.support.web import make_app, parse, web_settings

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "newsletter"
FIELDS = {
    "name": "Ana",
    "unsubscribe_url": "https://news.harvest.example/unsubscribe/t",
    "preferences_url": "https://news.harvest.example/preferences/t",
}
PURPLE = "#5b2a86"  # a clinic's own accent in the tests below: AA on the default backgrounds

STORIES = """\
---
subject: Two stories
---
We said "hello" and it's fine.

::: vignette
She said "I don't like it when you talk to me like that." {{ 7*7 }}
:::
"""


def write_theme(folder: Path, text: str) -> None:
    (folder / "templates").mkdir(exist_ok=True)
    (folder / "templates" / "theme.toml").write_text(text, encoding="utf-8")


def theme_of(text: str, tmp_path: Path) -> Theme:
    write_theme(tmp_path, text)
    return load_theme(clinic_settings(tmp_path))


def html_and_text(settings: Settings, slug: str) -> tuple[str, str]:
    return render_campaign(load_campaign(slug, settings), settings).personalise(FIELDS)


# --- the palette -------------------------------------------------------------------------------------


def test_contrast_follows_wcag() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#777777") == pytest.approx(1)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the lightest AA grey on white


@pytest.mark.parametrize("palette", [HARVEST_LIGHT, HARVEST_DARK], ids=["light", "dark"])
def test_harvests_palette_meets_aa_for_every_pair_that_carries_text(palette: object) -> None:
    ratios = {(fg, bg): contrast(getattr(palette, fg), getattr(palette, bg)) for fg, bg, _ in CONTRAST_PAIRS}
    assert all(ratio >= AA_TEXT for (fg, _), ratio in ratios.items() if fg != "focus"), ratios
    assert all(ratio >= AA_NON_TEXT for (fg, _), ratio in ratios.items() if fg == "focus"), ratios


def test_without_a_theme_file_the_defaults_apply_and_the_wordmark_is_the_organisation(tmp_path: Path) -> None:
    theme = load_theme(clinic_settings(tmp_path))
    assert theme == Theme(wordmark="Harvest Test Clinic")
    assert theme.light == HARVEST_LIGHT and theme.dark == HARVEST_DARK


def test_the_clinics_file_changes_only_what_it_names(tmp_path: Path) -> None:
    theme = theme_of(
        f'wordmark = "Harvest"\ntagline = "Ketamine Therapy"\nfont_heading = "\'Iowan Old Style\', serif"\n'
        f'[light]\naccent = "{PURPLE.upper()}"\n[dark]\nstory = "#333"\n',
        tmp_path,
    )
    assert (theme.wordmark, theme.tagline) == ("Harvest", "Ketamine Therapy")
    assert theme.font_heading == "Iowan Old Style, serif"  # quotes dropped: plain names need none
    assert theme.light.accent == PURPLE and theme.light.paper == HARVEST_LIGHT.paper
    assert theme.dark.story == "#333333" and theme.dark.accent == HARVEST_DARK.accent


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[light]\nmuted = "#aaaaaa"\n', r"\[light\] muted #aaaaaa on ground #f4efe4 has a contrast of 2\.\d\d:1"),
        ('[dark]\nink = "#333333"\n', r"\[dark\] ink #333333 on ground .* needs at least 4\.5:1"),
        ('[light]\naccent = "green"\n', r"light\.accent must be a colour written #rrggbb"),
        ('[light]\naccnet = "#2e5a45"\n', r"unknown theme key light\.'accnet' \(did you mean light\.'accent'\?\)"),
        ('colour = "#2e5a45"\n', r"unknown theme key 'colour'"),
        ('light = "#2e5a45"\n', r"\[light\] must be a table"),
        ('font_body = "Arial; } body { background: url(https://evil.example/x.png)"\n', "font_body must be a list"),
        ('font_body = "Arial\\" onload=\\"x"\n', "font_body must be a list"),
        ('wordmark = "' + "x" * 61 + '"\n', "wordmark must be a line of text"),
        ("wordmark = [1]\n", "wordmark must be a line of text"),
        ("wordmark = \n", "not valid TOML"),
    ],
)
def test_a_mistake_in_the_theme_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        theme_of(text, tmp_path)
    assert "\n" not in str(info.value) and "theme.toml" in str(info.value)


def test_the_clinics_own_theme_file_is_valid_and_sets_its_masthead() -> None:
    theme = load_theme(load_settings(REPO, environ={}).settings)
    assert (theme.wordmark, theme.tagline) == ("Harvest", "Ketamine Therapy")


def test_the_css_variables_hold_both_schemes_and_nothing_else(tmp_path: Path) -> None:
    css = str(theme_from_mapping({}, default_wordmark="Harvest").css_variables())
    light, dark = css.split("@media (prefers-color-scheme: dark)")
    assert f"--accent: {HARVEST_LIGHT.accent};" in light and f"--accent-hover: {HARVEST_LIGHT.accent_hover};" in light
    assert f"--accent: {HARVEST_DARK.accent};" in dark and "--font-body" not in dark
    assert "url(" not in css and "@import" not in css


# --- one source for every surface ----------------------------------------------------------------------


def test_no_template_or_stylesheet_writes_a_colour_of_its_own() -> None:
    """Colours come from the theme only; a page or email added later has to take them from it too."""
    files = [
        *PACKAGE.glob("web/templates/*.html"),
        PACKAGE / "web/static/site.css",
        *PACKAGE.glob("campaigns/templates/**/*.j2"),
        *(REPO / "templates").glob("**/*.j2"),
    ]
    colour = re.compile(r"#[0-9a-fA-F]{3,8}\b|\brgba?\(|\bhsla?\(")
    written = {f.relative_to(REPO).as_posix(): colour.findall(f.read_text(encoding="utf-8")) for f in files}
    assert len(written) > 20
    assert {name: found for name, found in written.items() if found} == {}


def test_every_page_extends_the_base_and_every_email_the_email_base() -> None:
    for template in PACKAGE.glob("web/templates/*.html"):
        text, name = template.read_text(encoding="utf-8"), template.name
        if name.startswith("email_"):
            assert '{% extends "_email_base.html" %}' in text, name
        elif not name.startswith("_") and name not in ("base.html", "snippet.html"):  # snippet: for the clinic's site
            assert '{% extends "base.html" %}' in text, name


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """The pages' look does not depend on the database: SQLite alone."""
    opened = open_store(f"sqlite:///{tmp_path / 'subscribers.db'}")
    yield opened
    opened.dispose()


def test_the_clinics_theme_colours_the_campaign_the_pages_and_the_signup_email(
    tmp_path: Path, sqlite_store: Store
) -> None:
    write_theme(tmp_path, f'wordmark = "Harvest Clinic"\n[light]\naccent = "{PURPLE}"\n[dark]\naccent = "#d9c2f0"\n')
    settings = clinic_settings(tmp_path, templates_dir=str(tmp_path / "templates"))
    write_campaign(tmp_path, "stories", STORIES)
    campaign_html, _ = html_and_text(settings, "stories")
    assert PURPLE in campaign_html and "#d9c2f0" in campaign_html and HARVEST_LIGHT.accent not in campaign_html
    assert "Harvest Clinic" in campaign_html

    app = make_app(sqlite_store, tmp_path)
    try:
        client: FlaskClient = app.test_client()
        page = client.get("/subscribe").get_data(as_text=True)
        [sheet] = re.findall(r'href="(/theme\.css\?v=[0-9a-f]{12})"', page)
        css = client.get(sheet)
        assert css.mimetype == "text/css" and PURPLE in css.get_data(as_text=True)
        assert "immutable" in css.headers["Cache-Control"]
        assert "Harvest Clinic" in page

        message = SignupEmails(web_settings(tmp_path)).confirmation("ana@example.org", "https://x.example/confirm/t")
        html_part = parse(message).get_body(("html",))
        email_html = html_part.get_content()  # type: ignore[union-attr]
        assert f"background-color:{PURPLE}" in email_html and "#d9c2f0" in email_html
        assert "prefers-color-scheme: dark" in email_html
    finally:
        close_app(app)


def test_a_bad_theme_stops_the_web_app_at_start(tmp_path: Path, sqlite_store: Store) -> None:
    write_theme(tmp_path, '[light]\nink = "#f0f0f0"\n')
    with pytest.raises(ConfigError, match="ink #f0f0f0"):
        make_app(sqlite_store, tmp_path)


# --- what the emails say ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("organisation", "postal", "line"),
    [
        ("Harvest", "Harvest Ketamine Therapy, 100 Example Street", "Harvest Ketamine Therapy, 100 Example Street"),
        ("Harvest", "100 Example Street, Springfield", "Harvest · 100 Example Street, Springfield"),
        ("Harvest", "c/o HARVEST clinic, 1 Way", "c/o HARVEST clinic, 1 Way"),
        ("Harvest", "Harvester Lane 1", "Harvest · Harvester Lane 1"),  # a word of its own, not a prefix
        ("Harvest", "", "Harvest"),
    ],
)
def test_the_footer_names_the_organisation_once(organisation: str, postal: str, line: str) -> None:
    assert sender_line(organisation, postal) == line


def test_a_campaign_footer_does_not_repeat_the_name(tmp_path: Path) -> None:
    settings = dataclasses.replace(
        clinic_settings(tmp_path), organisation="Harvest", postal_address="Harvest Ketamine Therapy, 100 Example Street"
    )
    write_campaign(tmp_path, "stories", STORIES)
    html, text = html_and_text(settings, "stories")
    assert "Harvest Ketamine Therapy, 100 Example Street" in html and "Harvest &middot; Harvest" not in html
    assert "Harvest · Harvest" not in html and "Harvest, Harvest" not in text
    assert text.rstrip().endswith("Harvest Ketamine Therapy, 100 Example Street")


def test_every_vignette_carries_the_caption_in_html_and_text(tmp_path: Path) -> None:
    settings = clinic_settings(tmp_path)
    write_campaign(tmp_path, "stories", STORIES)
    html, text = html_and_text(settings, "stories")
    caption = settings.vignette_caption
    assert caption.startswith("A client’s story, shared anonymously; details changed")
    assert html.count("A client’s story, shared anonymously") == 1
    assert "  [A client’s story, shared anonymously; details changed." in text  # indented with the story
    assert text.index("A client’s story") < text.index("I don’t like it")


def test_the_caption_is_a_setting_shown_as_text_and_may_be_left_out(tmp_path: Path) -> None:
    write_campaign(tmp_path, "stories", STORIES)
    own = clinic_settings(tmp_path, vignette_caption='<b>Shared with consent</b> {{ 7*7 }} "typical"?')
    html, text = html_and_text(own, "stories")
    assert "&lt;b&gt;Shared with consent&lt;/b&gt; {{ 7*7 }}" in html and "<b>Shared" not in html
    assert '<b>Shared with consent</b> {{ 7*7 }} "typical"?' in text and "49" not in text
    html, text = html_and_text(clinic_settings(tmp_path, vignette_caption=""), "stories")
    assert "A client’s story" not in html and "A client’s story" not in text


def test_the_caption_setting_is_documented() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "| `vignette_caption` |" in readme


# --- typographic quotes ----------------------------------------------------------------------------------


def test_quotes_become_typographic_in_html_and_text_and_nothing_becomes_template_code(tmp_path: Path) -> None:
    settings = clinic_settings(tmp_path)
    write_campaign(tmp_path, "stories", STORIES)
    html, text = html_and_text(settings, "stories")
    for part in (html, text):
        assert "We said “hello” and it’s fine." in part
        assert "She said “I don’t like it when you talk to me like that.” {{ 7*7 }}" in part
        assert "49" not in part


def test_sign_off_hashes_and_the_gate_read_the_source_as_typed(tmp_path: Path) -> None:
    campaign = parse_campaign(STORIES.replace("---\nWe", "deid:\n  deny: [Kowalski]\n---\nWe").replace(
        "{{ 7*7 }}", '"Kowalski" said so.'), slug="stories")  # fmt: skip
    [story] = campaign.vignettes
    assert "\"I don't like it" in story.source  # the typographer changed the rendering only
    typed = "\n".join(line.rstrip() for line in story.source.strip().splitlines())
    assert vignette.text_hash(story) == "sha256:" + hashlib.sha256(typed.encode()).hexdigest()
    findings = vignette.scan(campaign, vignette.read_review(campaign))
    assert [f.finding.text for f in findings] == ["Kowalski"]


def test_the_seed_vignettes_keep_their_sign_offs() -> None:
    settings = load_settings(REPO, environ={}).settings
    campaign = load_campaign("client-stories", settings)
    assert vignette.signoff_problems(campaign, vignette.read_review(campaign)) == []


def test_lint_names_a_theme_colour_that_is_too_faint(project: Path, tmp_path: Path) -> None:
    write_campaign(project, "stories", STORIES)
    write_theme(project, '[light]\nmuted = "#aaaaaa"\n')
    result = Newsletter(project, f"sqlite:///{tmp_path / 'subscribers.db'}")("campaign", "lint", "stories")
    assert result.exit_code == 1
    assert "theme.toml: [light] muted #aaaaaa on ground #f4efe4 has a contrast of 2.03:1" in result.output
    assert "Traceback" not in result.output
