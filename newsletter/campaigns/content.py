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

    ::: vignette
    An anonymised client story.
    :::

The body is parsed once by markdown-it (see :mod:`newsletter.campaigns.blocks`). Line numbers are lines of the
*file* (front matter counted), because lint and the de-identification gate point authors at
positions in the file they edit.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from frontmatter.default_handlers import YAMLHandler

from newsletter.campaigns.blocks import BLOCK_KINDS, PROSE, Block, BodyError, markdown_parser, parse_body
from newsletter.errors import InputError, NotFound

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
    "load_campaign",
    "markdown_parser",
    "parse_campaign",
    "resolve_campaign_path",
    "scaffold_campaign",
]

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# Campaigns the system sends by itself, each to one person when something happens, never as a dated
# send to a list: the leading underscore keeps their names apart from any campaign staff can create.
WELCOME_SLUG = "_welcome"  # to each new subscriber, once, when they confirm
SYSTEM_SLUGS = frozenset({WELCOME_SLUG})
TEMPLATE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

KNOWN_KEYS = ("subject", "preheader", "template", "audience", "send_at", "deid")


class CampaignError(InputError):
    """A campaign file that cannot be used; the message names the file and, where known, the line."""

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.reason = message
        where = "" if path is None else f"{path}:{line}: " if line else f"{path}: "
        super().__init__(where + message)


class CampaignNotFound(CampaignError, NotFound):
    """No campaign file by that slug or path."""


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
            raise CampaignNotFound(f"campaign file not found: {where}")
        return path
    if not SLUG_RE.fullmatch(text) and text not in SYSTEM_SLUGS:
        raise CampaignNotFound(
            f"campaign {text!r} not found: not a slug (lowercase letters, digits and hyphens) or a path"
        )
    path = campaigns_path / f"{text}.md"
    if not path.is_file():
        raise CampaignNotFound(f"campaign {text!r} not found: looked for {path}")
    return path


def load_campaign(ref: str | Path, settings: Settings) -> Campaign:
    """Load ``campaigns/<slug>.md`` (by slug under ``settings.campaigns_path``) or a campaign file by path."""
    path = resolve_campaign_path(ref, settings.campaigns_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CampaignError(f"cannot read: {exc.strerror}", path=path) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CampaignError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8", path=path, line=line
        ) from None
    return parse_campaign(text, slug=path.stem, path=path)


def parse_campaign(text: str, *, slug: str, path: Path | None = None) -> Campaign:
    """Parse the text of a campaign file. ``path`` only labels error messages."""
    label: Path | str = path if path is not None else f"{slug}.md"
    if not SLUG_RE.fullmatch(slug) and slug not in SYSTEM_SLUGS:
        raise CampaignError(
            f"{slug!r} is not a usable campaign name: rename the file to lowercase letters, digits "
            "and hyphens (it becomes part of the archive URL)",
            path=label,
        )
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    meta, body, body_offset = _split_front_matter(text, label)
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


def _split_front_matter(text: str, label: Path | str) -> tuple[dict[str, Any], str, int]:
    """Front matter as a dict, the body, and how many file lines come before the body."""
    handler = YAMLHandler()
    if not handler.detect(text):
        raise CampaignError(
            "no front matter: start the file with a '---' line, 'subject: ...', and another '---' line",
            path=label,
            line=1,
        )
    try:
        raw, body = handler.split(text)
    except ValueError:
        raise CampaignError(
            "the front matter opened here is never closed by a '---' line", path=label, line=1
        ) from None
    try:
        meta = handler.load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        opening = handler.FM_BOUNDARY.match(text)
        yaml_offset = text.count("\n", 0, opening.end()) if opening else 0
        line = yaml_offset + mark.line + 1 if mark is not None else None
        raise CampaignError(f"front matter is not valid YAML: {problem}", path=label, line=line) from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise CampaignError(f"front matter must be 'key: value' lines, not a {_yaml_type(meta)}", path=label, line=2)
    offset = text.count("\n", 0, len(text) - len(body))
    # python-frontmatter's boundary pattern swallows the rest of the closing '---' line and any blank
    # lines after it except the last newline, so the body starts with that newline.
    if body.startswith("\n"):
        body, offset = body[1:], offset + 1
    return meta, body, offset


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

    audience = meta.get("audience") or []
    if isinstance(audience, str) or not isinstance(audience, list):
        raise CampaignError(f"'audience' must be a list of tags, e.g. [faq-updates], got {audience!r}", path=label)
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
        raise CampaignError(f"{key!r} must be text, got {_yaml_type(value)} {value!r}; put it in quotes", path=label)
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


def _yaml_type(value: Any) -> str:
    return {bool: "true/false", int: "number", float: "number", list: "list", dict: "mapping"}.get(
        type(value), type(value).__name__
    )


# --- scaffolding ---------------------------------------------------------------------------------


def scaffold_campaign(slug: str, *, faqs: Sequence[str] = (), vignette: bool = False) -> str:
    """The text of a new campaign file: front matter, an intro, and the requested blocks."""
    if not SLUG_RE.fullmatch(slug):
        raise CampaignError(
            f"{slug!r} is not a valid campaign slug: use 1-64 lowercase letters, digits and hyphens, "
            "starting with a letter or digit"
        )
    questions = [q.strip() for q in faqs]
    for question in questions:
        if not question or "\n" in question or "\r" in question:
            raise CampaignError(f"a faq question must be one non-empty line, got {question!r}")

    front = yaml.safe_dump(
        {"subject": slug.replace("-", " ").capitalize(), "preheader": "", "audience": []},
        sort_keys=False,
        allow_unicode=True,
        width=1000,
    )
    parts = [
        "---\n" + front + "# send_at: 2026-01-05T09:00:00-05:00\n---\n",
        "A short introduction to this update.\n",
    ]
    for question in questions:
        parts.append(f"::: faq {question}\nThe answer, in Markdown.\n:::\n")
    if vignette:
        parts.append(
            "::: vignette\nAn anonymised client story: no names, places, dates, ages or other details "
            "that could identify anyone.\n:::\n"
        )
    return "\n".join(parts)
