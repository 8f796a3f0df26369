"""Stage one of two: render a campaign ONCE into HTML and text with holes for the personal fields.

Jinja over the MJML layout, the MJML compile and the text alternative are the same for every
recipient, so they run once. The personal fields (``name``, ``unsubscribe_url``, ``preferences_url``)
go into the templates as unguessable placeholder tokens; the results are then cut at those tokens
into constant segments, and :meth:`RenderedCampaign.personalise` (or :class:`newsletter.delivery.mime.MessageFactory`)
only joins segments with escaped values. Nothing per recipient ever reaches Jinja or MJML, so a
name like ``{{7*7}}`` or ``<script>`` stays literal text.
"""

from __future__ import annotations

import dataclasses
import html
import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup
from mjml import mjml2html

from newsletter.campaigns import faq, plaintext
from newsletter.campaigns.content import SYSTEM_SLUGS, Block, Campaign, markdown_parser
from newsletter.campaigns.images import ImageProblem, InlineImage, embed, with_data_uris
from newsletter.campaigns.templating import TemplateRenderError, make_environment, render_template
from newsletter.errors import NewsletterError
from newsletter.theme import load_theme, sender_line

if TYPE_CHECKING:
    from newsletter.config import Settings

PERSONAL_FIELDS = ("name", "unsubscribe_url", "preferences_url")
REQUIRED_FIELDS = ("unsubscribe_url",)  # the law wants a working unsubscribe link in every email
NAME_FALLBACK = "there"  # "Hello there," when a subscriber gave no name
PREHEADER_LENGTH = 140

_URL_RE = re.compile(r"https?://[^\s<>\"'`\\\x00-\x1f\x7f]+")


class RenderError(NewsletterError):
    """A campaign that cannot be rendered as it stands."""


class PersonalFieldError(NewsletterError):
    """A personal value that cannot go into an email (a malformed URL, a missing field)."""


class _Placeholder(str):
    """A personal field's stand-in during the once-per-campaign render."""

    def __html__(self) -> str:
        return str(self)  # plain ASCII: autoescape and MJML leave it as it is

    def __bool__(self) -> bool:
        raise jinja2.TemplateRuntimeError(
            "personal fields (name, unsubscribe_url, preferences_url) are filled in per recipient "
            "after the template renders, so a template cannot test them"
        )


@dataclasses.dataclass(frozen=True)
class Segmented:
    """A document cut at its personal fields: ``parts[0] + value(fields[0]) + parts[1] + ... + parts[-1]``."""

    parts: tuple[str, ...]
    fields: tuple[str, ...]

    def fill(self, values: Mapping[str, str]) -> str:
        out = [self.parts[0]]
        for field, part in zip(self.fields, self.parts[1:], strict=True):
            out.append(values[field])
            out.append(part)
        return "".join(out)


@dataclasses.dataclass(frozen=True)
class BlockView:
    """What a block partial sees as ``block``."""

    kind: str
    question: str
    html: Markup
    text: str
    url: str = ""  # a faq block carrying an FAQ entry: where the full answer is (the faq_url setting)


@dataclasses.dataclass(frozen=True)
class RenderedCampaign:
    """A campaign rendered once. ``html`` and ``text`` hold a placeholder where each personal field
    goes (see ``placeholders``); :meth:`personalise` fills them in."""

    slug: str
    subject: str
    preheader: str
    archive_url: str
    mjml: str = dataclasses.field(repr=False)
    html_segments: Segmented = dataclasses.field(repr=False)
    text_segments: Segmented = dataclasses.field(repr=False)
    placeholders: Mapping[str, str] = dataclasses.field(repr=False)
    sample_urls: Mapping[str, str] = dataclasses.field(repr=False)
    # Images from the project folder that every message carries (the HTML names them cid:...), and
    # those that could not be embedded, left as written for lint to report (see campaigns.images).
    images: tuple[InlineImage, ...] = dataclasses.field(default=(), repr=False)
    image_problems: tuple[ImageProblem, ...] = dataclasses.field(default=(), repr=False)

    @property
    def html(self) -> str:
        return self.html_segments.fill(self.placeholders)

    @property
    def text(self) -> str:
        return self.text_segments.fill(self.placeholders)

    def personalise(self, fields: Mapping[str, str | None]) -> tuple[str, str]:
        """The HTML and text for one recipient; ``fields`` maps each of PERSONAL_FIELDS to its value."""
        values = personal_values(fields)
        escaped = {k: html.escape(v, quote=True) for k, v in values.items()}
        return self.html_segments.fill(escaped), self.text_segments.fill(values)

    def preview(self) -> tuple[str, str]:
        """HTML and text without personal data, for ``campaign build`` files and the web archive."""
        return self.personalise({"name": "", **self.sample_urls})

    def as_web_page(self, document: str) -> str:
        """``document`` (this campaign's HTML) for a browser, where ``cid:`` means nothing: its
        embedded images as ``data:`` URIs."""
        return with_data_uris(document, self.images)


def personal_values(fields: Mapping[str, str | None]) -> dict[str, str]:
    """Check the personal fields of one recipient and apply the name fallback."""
    missing = [f for f in PERSONAL_FIELDS if f != "name" and not fields.get(f)]
    if missing:
        raise PersonalFieldError(f"missing personal field(s): {', '.join(missing)}")
    values = {"name": (fields.get("name") or "").strip() or NAME_FALLBACK}
    for field in PERSONAL_FIELDS[1:]:
        values[field] = check_url(field, str(fields[field]))
    return values


def check_url(field: str, url: str) -> str:
    """An absolute http(s) URL with nothing that could break out of an attribute or a header."""
    # ASCII only: the unsubscribe URL also goes into the List-Unsubscribe header.
    if len(url) > 900 or not url.isascii() or not _URL_RE.fullmatch(url):
        raise PersonalFieldError(f"{field} must be an absolute http(s) URL in ASCII, without spaces or quotes")
    return url


# --- the once-per-campaign render ----------------------------------------------------------------


def layout_names(template: str) -> tuple[str, str]:
    """The MJML and text layouts of a campaign's ``template:``."""
    stem = "layout" if template == "default" else f"layouts/{template}"
    return f"{stem}.mjml.j2", f"{stem}.txt.j2"


def render_campaign(campaign: Campaign, settings: Settings, *, web: bool = False) -> RenderedCampaign:
    """Render ``campaign`` once: Jinja over MJML, ``mjml2html``, and the text alternative.

    ``web=True`` renders the archive's web version: the layout leaves out the greeting and the
    personal links (``web_version`` in the templates), so it holds nothing about any recipient.
    """
    for setting in ("organisation", "postal_address", "public_base_url"):
        if not str(getattr(settings, setting)).strip():
            raise RenderError(
                f"the {setting} setting is empty; every campaign email shows it (set it in newsletter.toml)"
            )
    nonce = secrets.token_hex(8)
    placeholders = {field: f"NLPH{nonce}x{field.replace('_', '')}x" for field in PERSONAL_FIELDS}
    base = settings.public_base_url.rstrip("/")
    # A system campaign (the welcome) is not a newsletter of the archive: no web version to link to.
    archive_url = "" if campaign.slug in SYSTEM_SLUGS else f"{base}/archive/{campaign.slug}"

    md = markdown_parser()
    blocks = [_block_view(md, block, settings) for block in campaign.blocks]
    context: dict[str, Any] = {
        "organisation": settings.organisation,
        "postal_address": settings.postal_address,
        "sender_line": sender_line(settings.organisation, settings.postal_address),
        "theme": load_theme(settings),
        "vignette_caption": settings.vignette_caption.strip(),
        "public_base_url": base,
        "archive_url": archive_url,
        "slug": campaign.slug,
        "subject": campaign.subject,
        "preheader": campaign.preheader or _first_words(blocks),
        "blocks": blocks,
        "web_version": web,
        **{field: _Placeholder(token) for field, token in placeholders.items()},
    }
    env = make_environment(settings.templates_path)
    mjml_name, text_name = layout_names(campaign.template)
    mjml_source = render_template(env, mjml_name, context)
    text = _tidy_text(render_template(env, text_name, context))
    embedded = embed(compile_mjml(mjml_source), settings.project_dir, settings.from_address.rpartition("@")[2])
    html_out = embedded.html

    html_segments = _segment(html_out, placeholders, nonce, "HTML")
    text_segments = _segment(text, placeholders, nonce, "text")
    for field in () if web else REQUIRED_FIELDS:
        for doc, segments in (("HTML", html_segments), ("text", text_segments)):
            if field not in segments.fields:
                raise RenderError(f"the {doc} layout does not show {{{{ {field} }}}}; every email must")
    return RenderedCampaign(
        slug=campaign.slug,
        subject=campaign.subject,
        preheader=context["preheader"],
        archive_url=archive_url,
        mjml=mjml_source,
        html_segments=html_segments,
        text_segments=text_segments,
        placeholders=placeholders,
        sample_urls={"unsubscribe_url": f"{base}/unsubscribe", "preferences_url": f"{base}/preferences"},
        images=embedded.images,
        image_problems=embedded.problems,
    )


def compile_mjml(source: str) -> str:
    """MJML to HTML. ``fonts={}`` because the default links Google Fonts, which tells Google who reads."""
    try:
        return mjml2html(source, disable_comments=True, fonts={})
    except ValueError as exc:
        raise TemplateRenderError(f"the MJML made by the templates does not compile: {exc}") from exc


def _block_view(md: MarkdownIt, block: Block, settings: Settings) -> BlockView:
    width = plaintext.WIDTH - 2 if block.kind == "vignette" else plaintext.WIDTH
    return BlockView(
        kind=block.kind,
        question=block.question,
        # html is off in the parser, so raw HTML in content comes out escaped and this is safe markup.
        html=Markup(md.renderer.render(list(block.tokens), md.options, {})),
        text=plaintext.markdown_to_text(block.tokens, width),
        url=faq.entry_url(settings, block.ref) if block.ref else "",
    )


def _first_words(blocks: list[BlockView]) -> str:
    """A preheader from the start of the body, so inboxes do not preview "View in browser"."""
    words = " ".join(" ".join(f"{b.question} {b.text}".split()) for b in blocks)
    if len(words) <= PREHEADER_LENGTH:
        return words
    return words[:PREHEADER_LENGTH].rsplit(" ", 1)[0] + "…"


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"


def _segment(document: str, placeholders: Mapping[str, str], nonce: str, label: str) -> Segmented:
    by_token = {token: field for field, token in placeholders.items()}
    pieces = re.split("(" + "|".join(map(re.escape, by_token)) + ")", document)
    parts, fields = tuple(pieces[0::2]), tuple(by_token[t] for t in pieces[1::2])
    # A filter applied to a personal field (|upper, |truncate) leaves a mangled token behind.
    if any(nonce.lower() in part.lower() for part in parts):
        raise RenderError(
            f"the {label} layout changes a personal field (name, unsubscribe_url, preferences_url) "
            "with a filter or slice; print personal fields as they are"
        )
    return Segmented(parts, fields)
