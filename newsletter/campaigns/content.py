"""Campaign content: one Markdown file with YAML front matter and typed ``:::`` blocks.

A campaign file looks like this::

    ---
    subject: Can I get addicted to ketamine?
    preheader: What 83 studies found.
    audience: [faq-updates]
    ---
    Free Markdown ...

    ::: faq Can I get addicted to ketamine?
    The answer, in Markdown.
    :::

    ::: faq ref=can-ketamine-cure-me
    :::

    ::: vignette
    An anonymised client story.
    :::

A ``::: faq ref=ID`` block has an empty body: its question and answer come from the FAQ entry ID in
``faq/`` (see :mod:`newsletter.campaigns.faq`), so the email carries the FAQ's current wording.

The body is parsed once by markdown-it (see :mod:`newsletter.campaigns.blocks`). Line numbers are lines of the
*file* (front matter counted), because lint and the de-identification gate point authors at
positions in the file they edit.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.campaigns import faq
from newsletter.campaigns.blocks import BLOCK_KINDS, PROSE, Block, BodyError, markdown_parser, parse_body
from newsletter.campaigns.markdown_file import FileError, normalise, read_text, split_front_matter, yaml_type
from newsletter.errors import NotFound

if TYPE_CHECKING:
    from newsletter.config import Settings

__all__ = [
    "BLOCK_KINDS",
    "PROSE",
    "SYSTEM_SLUGS",
    "WELCOME_SLUG",
    "Block",
    "Campaign",
    "CampaignError",
    "CampaignNotFound",
    "UnknownFaqRef",
    "load_campaign",
    "markdown_parser",
    "parse_campaign",
    "resolve_campaign_path",
    "with_faq_answers",
]

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# Campaigns the system sends by itself, each to one person when something happens, never as a dated
# send to a list: the leading underscore keeps their names apart from any campaign staff can create.
WELCOME_SLUG = "_welcome"  # to each new subscriber, once, when they confirm
SYSTEM_SLUGS = frozenset({WELCOME_SLUG})
TEMPLATE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

EVERYONE = "all"  # `audience: all`, or no audience at all: every confirmed subscriber
KNOWN_KEYS = ("subject", "preheader", "template", "audience", "send_at", "deid")
SUBJECT_MAX = 78  # characters; longer subjects are cut off in most inboxes


class CampaignError(FileError):
    """A campaign file that cannot be used; the message names the file and, where known, the line."""

    check = "campaign"  # how lint names the problem when the file does not even load


class CampaignNotFound(CampaignError, NotFound):
    """No campaign file by that slug or path."""


class EmptyAudience(CampaignError):
    """``audience: []``: it reads as nobody, yet an empty list of tags would mean everyone."""

    check = "audience.empty"


class UnknownFaqRef(CampaignError):
    """A ``::: faq ref=ID`` block whose ID is no entry of the FAQ."""

    check = "faq.ref"


@dataclasses.dataclass(frozen=True)
class Campaign:
    slug: str
    path: Path | None
    subject: str
    preheader: str
    template: str
    audience: tuple[str, ...]
    send_at: datetime | None
    blocks: tuple[Block, ...]
    front_matter: Mapping[str, Any] = dataclasses.field(repr=False, compare=False)
    source: str = dataclasses.field(repr=False, compare=False)  # the whole file, newlines normalised
    body_line: int = 1  # file line where the Markdown body starts

    @property
    def vignettes(self) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.kind == "vignette")

    @property
    def faqs(self) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.kind == "faq")


# --- loading -------------------------------------------------------------------------------------


def resolve_campaign_path(ref: str | Path, campaigns_path: Path) -> Path:
    """A path as given (``campaigns/x.md``, ``./x.md``) or a slug looked up in the campaigns folder."""
    text = str(ref)
    if isinstance(ref, Path) or "/" in text or "\\" in text or text.endswith(".md"):
        path = Path(text).expanduser()
        if not path.is_file():
            where = path.resolve() if not path.is_absolute() else path
            with_suffix = path.with_name(path.name + ".md")
            hint = f"; did you mean {text}.md?" if path.suffix != ".md" and with_suffix.is_file() else ""
            raise CampaignNotFound(f"campaign file not found: {where}{hint}")
        return path
    if not SLUG_RE.fullmatch(text) and text not in SYSTEM_SLUGS:
        raise CampaignNotFound(
            f"campaign {text!r} not found: not a slug (lowercase letters, digits and hyphens) or a path"
        )
    path = campaigns_path / f"{text}.md"
    if not path.is_file():
        known = sorted(p.stem for p in campaigns_path.glob("*.md")) if campaigns_path.is_dir() else []
        close = difflib.get_close_matches(text, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise CampaignNotFound(f"campaign {text!r} not found: looked for {path}{hint}")
    return path


def load_campaign(ref: str | Path, settings: Settings) -> Campaign:
    """Load ``campaigns/<slug>.md`` (by slug under ``settings.campaigns_path``) or a campaign file by path,
    with its ``::: faq ref=ID`` blocks filled in from the FAQ (``settings.faq_path``)."""
    path = resolve_campaign_path(ref, settings.campaigns_path)
    campaign = parse_campaign(read_text(path, CampaignError), slug=path.stem, path=path)
    if not any(block.ref for block in campaign.blocks):
        return campaign
    try:
        library = faq.load_faq(settings.faq_path)
    except faq.FaqError as exc:
        raise CampaignError(exc.reason, path=exc.path, line=exc.line) from None
    return with_faq_answers(campaign, library)


def with_faq_answers(campaign: Campaign, library: faq.Faq) -> Campaign:
    """The campaign with each ``::: faq ref=ID`` block holding the question and answer of FAQ entry ID,
    so that everything after loading (render, lint, the outbox) sees the FAQ's current wording."""
    blocks = []
    for block in campaign.blocks:
        if block.ref:
            entry = library.get(block.ref)
            if entry is None:
                close = difflib.get_close_matches(block.ref, library.ids, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UnknownFaqRef(
                    f"no FAQ entry has the id {block.ref!r}{hint}; the ids are in the 'id:' lines of "
                    f"{library.folder}/*.md",
                    path=campaign.path or f"{campaign.slug}.md",
                    line=block.line,
                )
            block = dataclasses.replace(block, argument=entry.question, source=entry.answer, tokens=entry.tokens)
        blocks.append(block)
    return dataclasses.replace(campaign, blocks=tuple(blocks))


def parse_campaign(text: str, *, slug: str, path: Path | None = None) -> Campaign:
    """Parse the text of a campaign file. ``path`` only labels error messages.

    ``::: faq ref=ID`` blocks stay empty here; :func:`load_campaign` fills them in from the FAQ.
    """
    label: Path | str = path if path is not None else f"{slug}.md"
    if not SLUG_RE.fullmatch(slug) and slug not in SYSTEM_SLUGS:
        raise CampaignError(
            f"{slug!r} is not a usable campaign name: rename the file to lowercase letters, digits "
            "and hyphens (it becomes part of the archive URL)",
            path=label,
        )
    text = normalise(text)
    meta, body, body_offset = split_front_matter(text, label, CampaignError, example="subject: ...")
    fields = _check_front_matter(meta, label)
    try:
        blocks = parse_body(body, body_offset)
    except BodyError as exc:
        raise CampaignError(exc.message, path=label, line=exc.line) from None
    if not blocks:
        raise CampaignError("the campaign has no content below the front matter", path=label)
    return Campaign(
        slug=slug,
        path=path,
        blocks=blocks,
        front_matter=meta,
        source=text,
        body_line=body_offset + 1,
        **fields,
    )


def _check_front_matter(meta: Mapping[Any, Any], label: Path | str) -> dict[str, Any]:
    for key in meta:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(str(key), KNOWN_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CampaignError(
                f"unknown front-matter key {key!r}{hint}; known keys: {', '.join(KNOWN_KEYS)}", path=label
            )

    subject = meta.get("subject")
    if subject is None or (isinstance(subject, str) and not subject.strip()):
        raise CampaignError("front matter needs a non-empty 'subject'", path=label)
    subject = _one_line_text("subject", subject, label)
    preheader = _one_line_text("preheader", meta.get("preheader") or "", label)

    template = meta.get("template", "default")
    if not isinstance(template, str) or not TEMPLATE_NAME_RE.fullmatch(template):
        raise CampaignError(f"'template' must be a template name such as 'default', got {template!r}", path=label)

    audience = meta.get("audience", EVERYONE)
    if audience == []:
        # Reads as "nobody", but an empty list of tags would mean everyone: make the author say which.
        raise EmptyAudience(
            "'audience: []' names nobody; list the topics, e.g. [faq-updates], or write 'audience: all' "
            "(or leave it out) for every confirmed subscriber",
            path=label,
        )
    if audience in (EVERYONE, None):
        audience = []
    if isinstance(audience, str) or not isinstance(audience, list):
        raise CampaignError(
            f"'audience' must be a list of tags, e.g. [faq-updates], or 'all', got {audience!r}", path=label
        )
    tags: list[str] = []
    for tag in audience:
        if not isinstance(tag, str) or not tag.strip():
            raise CampaignError(f"'audience' tags must be non-empty text, got {tag!r}", path=label)
        if tag.strip() not in tags:
            tags.append(tag.strip())

    return {
        "subject": subject,
        "preheader": preheader,
        "template": template,
        "audience": tuple(tags),
        "send_at": _send_at(meta.get("send_at"), label),
    }


def _one_line_text(key: str, value: Any, label: Path | str) -> str:
    if not isinstance(value, str):
        raise CampaignError(f"{key!r} must be text, got {yaml_type(value)} {value!r}; put it in quotes", path=label)
    value = value.strip()
    # Subject and preheader end up in a mail header and a hidden preview line: one line only.
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in value):
        raise CampaignError(f"{key!r} must be one line without control characters", path=label)
    return str(value)


def _send_at(value: Any, label: Path | str) -> datetime | None:
    if value is None:
        return None
    example = "e.g. 2026-01-05T09:00:00-05:00"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise CampaignError(f"'send_at' is not an ISO 8601 time ({example})", path=label) from None
    if isinstance(value, date) and not isinstance(value, datetime):
        raise CampaignError(f"'send_at' needs a time and a UTC offset, not just a date ({example})", path=label)
    if not isinstance(value, datetime):
        raise CampaignError(f"'send_at' must be an ISO 8601 time ({example}), got {value!r}", path=label)
    if value.tzinfo is None or value.utcoffset() is None:
        raise CampaignError(
            f"'send_at' {value.isoformat()} has no UTC offset, so it is ambiguous; add one ({example})",
            path=label,
        )
    return value
