"""What staff do with campaign files, callable from Python: list, scaffold (or draft from the FAQ), build
to files, sign off.

Sending is :mod:`newsletter.delivery.service`; this module knows nothing of subscribers or the outbox.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from newsletter.campaigns import faq, vignette
from newsletter.campaigns.content import Campaign, CampaignError, load_campaign
from newsletter.campaigns.render import RenderedCampaign
from newsletter.campaigns.scaffold import draft_from_faq, scaffold_campaign
from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.files import private_folder, write_private

SAMPLE_NAME = "Sample Reader"


@dataclass(frozen=True)
class CampaignFile:
    """One file in the campaigns folder: its campaign, or why it cannot be read."""

    path: Path
    campaign: Campaign | None
    error: str | None = None

    @property
    def slug(self) -> str:
        return self.campaign.slug if self.campaign is not None else self.path.stem


def campaign_files(settings: Settings) -> Iterator[CampaignFile]:
    """Every Markdown file in the campaigns folder, in name order; unreadable ones say why."""
    for path in sorted(settings.campaigns_path.glob("*.md")):
        try:
            yield CampaignFile(path, load_campaign(path, settings))
        except CampaignError as exc:
            yield CampaignFile(path, None, exc.reason)


def create(settings: Settings, slug: str, *, faqs: Sequence[str] = (), vignette: bool = False) -> Path:
    """Write ``campaigns/SLUG.md`` from the scaffold; an existing file is never overwritten."""
    return _write_new(settings, slug, scaffold_campaign(slug, faqs=list(faqs), vignette=vignette))


@dataclass(frozen=True)
class Draft:
    path: Path
    entries: list[faq.FaqEntry]  # the entries it carries, whose ``updated`` is now the draft's date


def create_from_faq(settings: Settings, slug: str, report: faq.ChangeReport, *, when: date | None = None) -> Draft:
    """Write ``campaigns/SLUG.md`` carrying every entry in ``report`` (see ``faq changes``), and set those
    entries' ``updated`` date: the day their new wording was taken up for subscribers."""
    if not report.changes:
        since = f" since {report.since}" if report.since else ""
        raise InputError(f"no FAQ entry is new or changed{since}: there is nothing to draft")
    library = faq.load_faq(settings.faq_path)
    entries = [entry for change in report.changes if (entry := library.get(change.id)) is not None]
    path = _write_new(settings, slug, draft_from_faq(slug, entries, since=report.since))
    for entry in entries:
        faq.stamp_updated(entry, when or date.today())
    return Draft(path, entries)


def _write_new(settings: Settings, slug: str, text: str) -> Path:
    folder = settings.campaigns_path
    path = folder / f"{slug}.md"
    if path.exists():
        raise InputError(f"{path} already exists; choose another slug or edit that file")
    # Private like everything else the product writes: a draft's vignette is a client's story
    # before the de-identification gate has passed it.
    write_private(private_folder(folder) / path.name, [text])
    return path


@dataclass(frozen=True)
class BuiltFiles:
    slug: str
    files: dict[str, Path] = field(default_factory=dict)  # "html", "txt", "mjml" -> path
    html_bytes: int = 0


def sample(rendered: RenderedCampaign) -> tuple[str, str]:
    """HTML and text as a sample recipient sees them, with the sample links, for a browser (the
    embedded images as data: URIs)."""
    html, text = rendered.personalise({"name": SAMPLE_NAME, **rendered.sample_urls})
    return rendered.as_web_page(html), text


def write_files(rendered: RenderedCampaign, folder: Path) -> BuiltFiles:
    """Write SLUG.html, SLUG.txt and SLUG.mjml for a sample recipient into ``folder``."""
    html, text = sample(rendered)
    private_folder(folder)
    files = {}
    for suffix, content in (("html", html), ("txt", text), ("mjml", rendered.mjml)):
        path = folder / f"{rendered.slug}.{suffix}"
        write_private(path, [content])
        files[suffix] = path
    return BuiltFiles(rendered.slug, files, len(html.encode()))


def sign_off(
    ref: str | Path, settings: Settings, reviewer: str, *, numbers: Sequence[int] = (), when: date | None = None
) -> tuple[Campaign, list[int]]:
    """Record a reviewer's sign-off of vignettes (all by default) in the campaign file.

    Refused while the de-identification gate still has findings that no reviewer accepted.
    """
    loaded = load_campaign(ref, settings)
    if not loaded.vignettes:
        raise InputError(f"{loaded.slug} has no vignettes to sign off")
    chosen = list(numbers) or list(range(1, len(loaded.vignettes) + 1))
    findings = [f for f in vignette.scan(loaded, vignette.read_review(loaded)) if f.vignette in chosen]
    if findings:
        first = findings[0]
        raise InputError(
            f"vignette {first.vignette} still has {len(findings)} unaccepted finding(s), e.g. "
            f"{first.finding.kind} {first.finding.text!r} on line {first.line}; fix or accept them first"
        )
    text = vignette.with_signoff(loaded, " ".join(reviewer.split()), when or date.today(), chosen)
    if loaded.path is None:
        raise InputError(f"{loaded.slug} is not a file and cannot be signed off")
    loaded.path.write_text(text, encoding="utf-8")
    return loaded, chosen
