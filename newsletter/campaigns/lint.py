"""Campaign lint: the checks that run before every build and every send.

Each issue names its check (``subject.length``, ``html.link``, ``deid.name``...), a message and, where
it can be placed, a line of the campaign file. Errors stop a build or a send; warnings do not, except
under ``--strict``, which treats every warning as an error. A missing or void vignette sign-off is a
warning for lint but always stops a send (see :func:`newsletter.delivery.prepare.prepare`).

Given the message a subscriber would receive (``sample_message``, built by the delivery layer), lint
also asks SpamAssassin for its score (``spam.score``); without SpamAssassin it notes once that the
check was skipped (``spam.skipped``), which is not a warning: ``--strict`` still passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from newsletter.campaigns import faq, spamassassin, vignette
from newsletter.campaigns.content import SUBJECT_MAX, CampaignError, CampaignNotFound, load_campaign
from newsletter.campaigns.images import HOW_TO_EMBED
from newsletter.campaigns.render import RenderedCampaign, render_campaign
from newsletter.campaigns.scaffold import PLACEHOLDERS
from newsletter.config import is_loopback
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.campaigns.content import Campaign
    from newsletter.config import Settings

HTML_MAX_BYTES = 90 * 1024  # Gmail clips messages at about 102 KB
# Every element mjml-python knows; it passes unknown mj- tags through silently.
MJML_ELEMENTS = frozenset(
    [
        "mjml",
        "mj-head",
        "mj-body",
        "mj-attributes",
        "mj-all",
        "mj-class",
        "mj-breakpoint",
        "mj-font",
        "mj-preview",
        "mj-style",
        "mj-title",
        "mj-include",
        "mj-raw",
        "mj-accordion",
        "mj-accordion-element",
        "mj-accordion-title",
        "mj-accordion-text",
        "mj-button",
        "mj-carousel",
        "mj-carousel-image",
        "mj-column",
        "mj-divider",
        "mj-group",
        "mj-hero",
        "mj-image",
        "mj-navbar",
        "mj-navbar-link",
        "mj-section",
        "mj-social",
        "mj-social-element",
        "mj-spacer",
        "mj-table",
        "mj-text",
        "mj-wrapper",
    ]
)
_MJ_TAG = re.compile(r"<(mj-[a-z0-9-]+)")


@dataclass(frozen=True)
class Issue:
    check: str
    message: str
    line: int | None = None


@dataclass
class LintReport:
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    signoff_missing: bool = False
    notes: list[Issue] = field(default_factory=list)  # checks that could not run, and why

    def as_dict(self) -> dict[str, Any]:
        return {
            "errors": [asdict(i) for i in self.errors],
            "warnings": [asdict(i) for i in self.warnings],
            "notes": [asdict(i) for i in self.notes],
        }

    def strict(self) -> LintReport:
        return LintReport(self.errors + self.warnings, [], self.signoff_missing, self.notes)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"] or "")
        elif tag == "img":
            self.images.append(values)


def _line_of(campaign: Campaign, needle: str) -> int | None:
    index = campaign.source.find(needle)
    return None if index < 0 else campaign.source.count("\n", 0, index) + 1


def _subject(campaign: Campaign, report: LintReport) -> None:
    line = _line_of(campaign, "subject:")
    if len(campaign.subject) > SUBJECT_MAX:
        report.errors.append(
            Issue(
                "subject.length", f"the subject is {len(campaign.subject)} characters; keep it to {SUBJECT_MAX}", line
            )
        )
    if not campaign.preheader:
        report.warnings.append(
            Issue(
                "preheader.empty",
                "the preheader is empty, so inboxes show the email's first words after the subject; "
                "write one line that says what the email holds",
                _line_of(campaign, "preheader:") or line,
            )
        )


def _html(campaign: Campaign, rendered: RenderedCampaign, settings: Settings, report: LintReport) -> None:
    for tag in sorted(set(_MJ_TAG.findall(rendered.mjml)) - MJML_ELEMENTS):
        report.errors.append(
            Issue("mjml.unknown-element", f"<{tag}> is not an MJML element; it would pass through as raw HTML")
        )
    html, text = rendered.preview()
    size = len(html.encode("utf-8"))
    if size > HTML_MAX_BYTES:
        report.errors.append(
            Issue(
                "html.size",
                f"the HTML is {size // 1024} KB; Gmail clips emails over about 102 KB (limit {HTML_MAX_BYTES // 1024} KB)",
            )
        )
    for problem in rendered.image_problems:
        report.errors.append(Issue(problem.check, problem.message, _line_of(campaign, problem.src)))
    links = html_links(html)
    found = link_and_image_issues(links, lambda needle: _line_of(campaign, needle), own_base=settings.public_base_url)
    report.errors.extend(found.errors)
    report.warnings.extend(found.warnings)
    unsubscribe = rendered.sample_urls["unsubscribe_url"]
    if unsubscribe not in links.hrefs:
        report.errors.append(Issue("footer.unsubscribe", "the HTML has no unsubscribe link"))
    if unsubscribe not in text:
        report.errors.append(Issue("footer.unsubscribe", "the text version has no unsubscribe link"))
    address = " ".join(settings.postal_address.split())
    shown = [" ".join(unescape(document).split()) for document in (html, text)]  # wrapping is fine
    if not address or not all(address in document for document in shown):
        report.errors.append(Issue("footer.postal-address", "the email does not show the postal address from settings"))


@dataclass
class LinkFindings:
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)


def link_and_image_issues(links: _Links, line_of: Callable[[str], int | None], *, own_base: str = "") -> LinkFindings:
    """What is wrong with an email's links and images; ``line_of`` finds a text's line in the source.

    - An image without alt text, or a link that is neither https nor mailto, is an error; an http link
      to this machine (a local try-out with ``newsletter serve``) is only a warning.
    - An image from another server is a warning that names the host and how to embed the image
      instead: it loads when the email is opened, which tells that server who read it and when.
      Images under ``own_base`` (the clinic's public_base_url) and images embedded in the message
      (cid:, data:) are fine. (Local images are embedded by the render; those it could not embed are
      its ``image_problems``.)
    """
    found = LinkFindings()
    for image in links.images:
        src = (image.get("src") or "").strip()
        if image.get("alt") is None or (not (image.get("alt") or "").strip() and image.get("role") != "presentation"):
            found.errors.append(Issue("html.img-alt", f"image {src!r} has no alt text", line_of(src)))
        host = urlsplit(src).hostname if src.startswith(("http://", "https://", "//")) else None
        if host and not (own_base and src.startswith(own_base.rstrip("/") + "/")):
            found.warnings.append(
                Issue(
                    "html.img-remote",
                    f"image {src!r} loads from {host} whenever the email is opened, which tells that server who "
                    f"read it and when; host it under public_base_url, or {HOW_TO_EMBED}",
                    line_of(src),
                )
            )
    for href in links.hrefs:
        if href.startswith(("https://", "mailto:")):
            continue
        if href.startswith("http://") and is_loopback(urlsplit(href).hostname or ""):
            found.warnings.append(
                Issue(
                    "html.link-local",
                    f"link {href!r} is plain http to this machine: fine to try things out, not for a real send",
                    line_of(href),
                )
            )
        else:
            found.errors.append(Issue("html.link", f"link {href!r} is not https", line_of(href)))
    return found


def html_links(html: str) -> _Links:
    """The links and images of an HTML document."""
    links = _Links()
    links.feed(html)
    return links


def _deid(campaign: Campaign, report: LintReport) -> None:
    try:
        review = vignette.read_review(campaign)
    except NewsletterError as exc:
        report.errors.append(Issue("deid.review", str(exc), _line_of(campaign, "deid:")))
        return
    for item in vignette.scan(campaign, review):
        f = item.finding
        report.errors.append(
            Issue(
                f.check_id,
                f"vignette {item.vignette}: {f.kind} {f.text!r} may identify a client ({f.reason}); "
                "rewrite it, or have a reviewer accept it in the front matter",
                item.line,
            )
        )
    for problem in vignette.signoff_problems(campaign, review):
        report.signoff_missing = True
        report.warnings.append(Issue("deid.signoff", problem.message, problem.line))


SampleMessage = Callable[["RenderedCampaign"], bytes]
"""Builds the complete message a subscriber would get from a rendering (for the spam check)."""


def _spam_score(rendered: RenderedCampaign, sample_message: SampleMessage, report: LintReport) -> None:
    executable = spamassassin.find_spamassassin()
    if executable is None:
        report.notes.append(
            Issue("spam.skipped", "spam score not checked: SpamAssassin is not installed (apt install spamassassin)")
        )
        return
    try:
        verdict = spamassassin.score_message(sample_message(rendered), executable)
    except NewsletterError as exc:
        report.notes.append(Issue("spam.skipped", f"spam score not checked: {exc}"))
        return
    rules = "; ".join(f"{r.name} {r.points:+.1f} ({r.description})" for r in verdict.fired) or "no rules"
    message = f"SpamAssassin scores the message {verdict.score:.1f}"
    if verdict.score >= spamassassin.ERROR_SCORE:
        report.errors.append(
            Issue("spam.score", f"{message}, {spamassassin.ERROR_SCORE:g} or more is spam; rules: {rules}")
        )
    elif verdict.score >= spamassassin.WARNING_SCORE:
        report.warnings.append(
            Issue("spam.score", f"{message}, close to spam ({spamassassin.ERROR_SCORE:g}); rules: {rules}")
        )


def lint_file(
    ref: str | Path, settings: Settings, *, strict: bool = False, sample_message: SampleMessage | None = None
) -> LintReport:
    """Lint a campaign by path or slug; a file that does not even load is reported as a ``campaign`` error.

    (The loader itself refuses, among others, a subject with control characters or an unknown block kind.)
    """
    try:
        campaign = load_campaign(ref, settings)
    except CampaignNotFound:
        raise
    except CampaignError as exc:
        return LintReport(errors=[Issue(exc.check, exc.reason, exc.line)])
    return lint_campaign(campaign, settings, strict=strict, sample_message=sample_message)


def render_or_error(campaign: Campaign, settings: Settings) -> RenderedCampaign | NewsletterError:
    """The campaign rendered once, or why it cannot be: lint reports the error as an issue."""
    try:
        return render_campaign(campaign, settings)
    except NewsletterError as exc:
        return exc


def lint_campaign(
    campaign: Campaign,
    settings: Settings,
    *,
    rendered: RenderedCampaign | NewsletterError | None = None,
    strict: bool = False,
    sample_message: SampleMessage | None = None,
    draft: bool = False,
) -> LintReport:
    """Every check on one campaign and its rendering (rendered here unless the caller has one).

    With ``sample_message``, the message it builds is scored by SpamAssassin too. ``draft``: the
    campaign is only being looked at (a preview), so placeholder text left in it is a warning
    rather than an error; a send never passes it.
    """
    if rendered is None:
        rendered = render_or_error(campaign, settings)
    report = LintReport()
    _subject(campaign, report)
    if isinstance(rendered, NewsletterError):
        message = str(rendered)
        check = "template.undefined" if "is undefined" in message else "mjml.parse" if "MJML" in message else "render"
        report.errors.append(Issue(check, message))
    else:
        _html(campaign, rendered, settings, report)
        if sample_message is not None:
            _spam_score(rendered, sample_message, report)
    _deid(campaign, report)
    _faq_inline(campaign, settings, report)
    _placeholders(campaign, report, draft=draft)
    return report.strict() if strict else report


def _faq_inline(campaign: Campaign, settings: Settings, report: LintReport) -> None:
    """An inline faq block asking a question the FAQ answers drifts from it: propose the reference."""
    inline = [block for block in campaign.faqs if not block.ref]
    if not inline:
        return
    try:
        library = faq.load_faq(settings.faq_path)
    except faq.FaqError:
        return  # `newsletter faq lint` reports a broken FAQ; this check only makes a suggestion
    for block in inline:
        entry = library.matching(block.question)
        if entry is not None:
            report.warnings.append(
                Issue(
                    "faq.inline",
                    f"the FAQ answers {entry.question!r} ({entry.path.name}); write '::: faq ref={entry.id}' "
                    "with an empty body, so the email carries the FAQ's current wording",
                    block.line,
                )
            )


def _placeholders(campaign: Campaign, report: LintReport, *, draft: bool) -> None:
    """Text that a scaffold or a draft put in for staff to replace, still in place."""
    for text in PLACEHOLDERS:
        found = re.search(r"\s+".join(map(re.escape, text.split())), campaign.source)
        if found is not None:
            issue = Issue(
                "scaffold.placeholder",
                f"{text!r} is the scaffold's placeholder: write your own text in its place",
                campaign.source.count("\n", 0, found.start()) + 1,
            )
            (report.warnings if draft else report.errors).append(issue)
