"""The clinic's look, defined once: the colours (light and dark), the fonts and the wordmark.

One :class:`Theme` drives every surface: the web pages (``/theme.css`` sets the CSS custom properties
that ``site.css`` uses), the web endpoint's own emails and the campaign templates (``theme`` in their
context). The package's defaults are Harvest's; a clinic changes its look in one place,
``theme.toml`` in its templates folder (the ``templates_dir`` setting). Keys left out keep the
defaults::

    wordmark = "Harvest"              # the name set as a logo (default: the organisation setting)
    tagline = "Ketamine Therapy"      # a short line beside it (default: none)
    font_heading = "Georgia, serif"   # system fonts only: nothing is downloaded
    [light]
    accent = "#2e5a45"
    [dark]                            # where readers prefer a dark screen (prefers-color-scheme)
    accent = "#9fd0b3"

Everything is checked when it is read, so a mistake is one line at start-up, not a broken email:
colours are ``#rrggbb``; font lists hold plain family names, which also keeps them from ending a CSS
rule or an HTML attribute; and every pair of colours that carries text meets WCAG AA (4.5:1), in
both schemes. Nothing loads from elsewhere: no web fonts and no remote logo (the wordmark is text in
the heading font), so opening an email or a page tells no third party who reads.

May import: ``newsletter.config``, ``newsletter.errors``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import re
import tomllib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from newsletter.errors import ConfigError

if TYPE_CHECKING:
    from newsletter.config import Settings

THEME_FILENAME = "theme.toml"
AA_TEXT = 4.5  # WCAG 2.x 1.4.3, text of normal size
AA_NON_TEXT = 3.0  # WCAG 2.x 1.4.11, focus rings and other parts of controls
TEXT_MAX = 60

_COLOUR_RE = re.compile(r"#(?:[0-9a-f]{6}|[0-9a-f]{3})")
_FONT_NAME_RE = re.compile(r"-?[A-Za-z][A-Za-z0-9-]*(?: [A-Za-z0-9][A-Za-z0-9-]*)*")


@dataclasses.dataclass(frozen=True)
class Palette:
    """The colours of one scheme. Field names are also the CSS custom properties (``--accent-hover``)."""

    ground: str  # behind everything: the page, the email's margins
    paper: str  # the card that holds the content
    ink: str  # body text
    muted: str  # secondary text: hints, captions, footers
    accent: str  # links, headings, the wordmark, buttons
    accent_hover: str  # links and buttons under the pointer
    on_accent: str  # text on a button
    line: str  # rules and borders (decorative)
    story: str  # behind a client's story
    story_edge: str  # the bar beside a client's story (decorative)
    focus: str  # the keyboard focus ring
    error: str  # a form's error messages
    notice: str  # behind a "saved" message

    def items(self) -> Iterator[tuple[str, str]]:
        for field in dataclasses.fields(self):
            yield field.name, getattr(self, field.name)


# (foreground, background, minimum ratio): every pair that site.css and the templates put together.
CONTRAST_PAIRS: tuple[tuple[str, str, float], ...] = (
    *(("ink", bg, AA_TEXT) for bg in ("ground", "paper", "story", "notice")),
    *(("muted", bg, AA_TEXT) for bg in ("ground", "paper", "story")),
    *(("accent", bg, AA_TEXT) for bg in ("ground", "paper", "story", "notice")),
    ("accent_hover", "paper", AA_TEXT),
    ("accent_hover", "ground", AA_TEXT),
    ("on_accent", "accent", AA_TEXT),
    ("on_accent", "accent_hover", AA_TEXT),
    ("error", "paper", AA_TEXT),
    ("focus", "paper", AA_NON_TEXT),
    ("focus", "ground", AA_NON_TEXT),
)

# Harvest: a deep sage green for what can be read and pressed, on warm oat and wheat, with a band of
# harvest gold beside each client story. Calm and warm, never clinical; every text pair is AA or better.
HARVEST_LIGHT = Palette(
    ground="#f4efe4",
    paper="#fffdf8",
    ink="#1f2620",
    muted="#545b51",
    accent="#2e5a45",
    accent_hover="#1f4332",
    on_accent="#ffffff",
    line="#e0d6c2",
    story="#f6eedd",
    story_edge="#b7853a",
    focus="#a65b17",
    error="#9b2c1f",
    notice="#e6efe6",
)
HARVEST_DARK = Palette(
    ground="#141a16",
    paper="#1c241f",
    ink="#ebe7dd",
    muted="#b5b9ae",
    accent="#9fd0b3",
    accent_hover="#c2e4cf",
    on_accent="#10241a",
    line="#3a453d",
    story="#282a20",
    story_edge="#c99a4f",
    focus="#e0a458",
    error="#f2a193",
    notice="#22382b",
)
SYSTEM_SANS = "-apple-system, BlinkMacSystemFont, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif"
SYSTEM_SERIF = "Iowan Old Style, Palatino Linotype, Palatino, Georgia, serif"


@dataclasses.dataclass(frozen=True)
class Theme:
    """The look of every page and email. Build one with :func:`load_theme`."""

    wordmark: str
    tagline: str = ""
    font_body: str = SYSTEM_SANS
    font_heading: str = SYSTEM_SERIF
    light: Palette = HARVEST_LIGHT
    dark: Palette = HARVEST_DARK

    @functools.cached_property  # every page links the sheet by it; a theme never changes
    def fingerprint(self) -> str:
        """Changes whenever the theme does: a cache-busting version for ``/theme.css``."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:12]

    def css_variables(self) -> Markup:
        """The theme as CSS custom properties, light first and dark where the reader prefers it."""
        fonts = f"  --font-body: {self.font_body};\n  --font-heading: {self.font_heading};\n"
        return Markup(
            f":root {{\n  color-scheme: light dark;\n{fonts}{_declarations(self.light)}}}\n"
            f"@media (prefers-color-scheme: dark) {{\n  :root {{\n{_declarations(self.dark, '    ')}  }}\n}}\n"
        )

    def email_dark_css(self) -> Markup:
        """Dark-mode overrides for emails, for the clients that honour ``prefers-color-scheme``
        (Apple Mail, iOS Mail, Outlook for Mac, Thunderbird...). Emails are coloured inline for the
        clients that ignore ``<style>``, so these rules need ``!important`` to win. The classes are
        the ones the email templates put on their parts; the child selectors reach the element that
        MJML actually paints, and ``.nl-button`` comes last so that a button keeps its own colours."""
        d = self.dark
        rules = [
            f"body, .nl-ground {{ background-color: {d.ground} !important; }}",
            f".nl-card, .nl-card > table {{ background-color: {d.paper} !important; }}",
            f".nl-text, .nl-text > div {{ color: {d.ink} !important; }}",
            f".nl-muted, .nl-muted > div, .nl-muted a {{ color: {d.muted} !important; }}",
            f".nl-accent, .nl-accent > div, a {{ color: {d.accent} !important; }}",
            f".nl-rule, .nl-rule > p {{ border-color: {d.line} !important; }}",
            f".nl-story, .nl-story > table > tbody > tr > td {{ background-color: {d.story} !important; "
            f"border-left-color: {d.story_edge} !important; }}",
            f"blockquote {{ border-left-color: {d.line} !important; }}",
            f"a.nl-button {{ background-color: {d.accent} !important; color: {d.on_accent} !important; }}",
        ]
        # Markup: built only from checked colours, and its "> div" must reach the CSS unescaped.
        return Markup("@media (prefers-color-scheme: dark) {\n  " + "\n  ".join(rules) + "\n}")


def _declarations(palette: Palette, indent: str = "  ") -> str:
    return "".join(f"{indent}--{name.replace('_', '-')}: {value};\n" for name, value in palette.items())


def contrast(foreground: str, background: str) -> float:
    """The WCAG 2.x contrast ratio of two ``#rrggbb`` colours, from 1 to 21."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(colour: str) -> float:
    channels = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def sender_line(organisation: str, postal_address: str) -> str:
    """Who sends, for a footer: the postal address, after the organisation's name unless the address
    already names it ("Harvest Ketamine Therapy, 100 Example Street..." needs no "Harvest ·" before it)."""
    organisation, postal_address = organisation.strip(), postal_address.strip()
    if not postal_address:
        return organisation
    if not organisation or re.search(rf"\b{re.escape(organisation)}\b", postal_address, re.IGNORECASE):
        return postal_address
    return f"{organisation} · {postal_address}"


# --- reading theme.toml --------------------------------------------------------------------------------


def load_theme(settings: Settings) -> Theme:
    """The clinic's theme: the defaults, with what ``theme.toml`` in the templates folder changes."""
    path = settings.templates_path / THEME_FILENAME
    data: Mapping[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return theme_from_mapping(data, default_wordmark=settings.organisation, source=str(path))


def theme_from_mapping(data: Mapping[str, Any], *, default_wordmark: str, source: str = THEME_FILENAME) -> Theme:
    """A checked :class:`Theme` from ``theme.toml``'s contents; any mistake is a one-line ConfigError."""
    fields = {f.name for f in dataclasses.fields(Theme)}
    _refuse_unknown(data, fields, source, "")
    values: dict[str, Any] = {"wordmark": default_wordmark.strip() or "Newsletter"}
    for name in ("wordmark", "tagline"):
        if name in data:
            values[name] = _text(data[name], name, source)
    for name in ("font_body", "font_heading"):
        if name in data:
            values[name] = _fonts(data[name], name, source)
    for scheme, default in (("light", HARVEST_LIGHT), ("dark", HARVEST_DARK)):
        table = data.get(scheme, {})
        if not isinstance(table, Mapping):
            raise ConfigError(f'{source}: [{scheme}] must be a table of colours, such as accent = "#2e5a45"')
        _refuse_unknown(table, {f.name for f in dataclasses.fields(Palette)}, source, f"{scheme}.")
        colours = {name: _colour(table[name], f"{scheme}.{name}", source) for name in table}
        palette = dataclasses.replace(default, **colours)
        _check_contrast(palette, scheme, source)
        values[scheme] = palette
    return Theme(**values)


def _refuse_unknown(data: Mapping[str, Any], known: set[str], source: str, prefix: str) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
            hint = f" (did you mean {prefix}{close[0]!r}?)" if close else f"; known: {', '.join(sorted(known))}"
            raise ConfigError(f"{source}: unknown theme key {prefix}{key!r}{hint}")


def _text(value: Any, name: str, source: str) -> str:
    if not isinstance(value, str) or len(value) > TEXT_MAX or not value.isprintable():
        raise ConfigError(f"{source}: {name} must be a line of text of at most {TEXT_MAX} characters")
    return value.strip()


def _colour(value: Any, name: str, source: str) -> str:
    colour = value.strip().lower() if isinstance(value, str) else ""
    if not _COLOUR_RE.fullmatch(colour):
        raise ConfigError(f"{source}: {name} must be a colour written #rrggbb, got {value!r}")
    if len(colour) == 4:
        colour = "#" + "".join(c * 2 for c in colour[1:])
    return colour


def _fonts(value: Any, name: str, source: str) -> str:
    """A font-family list of plain names. Quotes are dropped: names of letters, digits, hyphens and
    single spaces need none in CSS, and without them the list is safe in any attribute or style."""
    families = [f.strip().strip("'\"").strip() for f in value.split(",")] if isinstance(value, str) else []
    if not families or not all(_FONT_NAME_RE.fullmatch(f) for f in families) or len(value) > 300:
        raise ConfigError(
            f"{source}: {name} must be a list of installed font names separated by commas, "
            f'such as "Georgia, serif", got {value!r}'
        )
    return ", ".join(families)


def _check_contrast(palette: Palette, scheme: str, source: str) -> None:
    for foreground, background, minimum in CONTRAST_PAIRS:
        fg, bg = getattr(palette, foreground), getattr(palette, background)
        ratio = contrast(fg, bg)
        if ratio < minimum:
            raise ConfigError(
                f"{source}: [{scheme}] {foreground} {fg} on {background} {bg} has a contrast of {ratio:.2f}:1; "
                f"it needs at least {minimum:g}:1 (WCAG AA) to be readable"
            )
