"""``newsletter faq lint``: the checks campaigns get (links, images, size), run over the FAQ files.

The de-identification detectors run over the answers too, but only as warnings: FAQ answers are
public already, and a study's university is not a client's city. Nor does an entry ever need a
vignette sign-off: it is not a client's story.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from newsletter.campaigns.blocks import markdown_parser
from newsletter.campaigns.content import parse_campaign, with_faq_answers
from newsletter.campaigns.deid import find_identifiers
from newsletter.campaigns.faq import Faq, FaqEntry, FaqError, faq_files, load_entry, question_key
from newsletter.campaigns.lint import HTML_MAX_BYTES, html_links, link_and_image_issues
from newsletter.campaigns.render import render_campaign
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.config import Settings


@dataclass(frozen=True)
class FaqIssue:
    file: str  # the entry's file name in the FAQ folder
    check: str
    message: str
    line: int | None = None


@dataclass
class FaqLintReport:
    entries: int = 0
    errors: list[FaqIssue] = field(default_factory=list)
    warnings: list[FaqIssue] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "errors": [asdict(i) for i in self.errors],
            "warnings": [asdict(i) for i in self.warnings],
        }


def lint_faq(settings: Settings) -> FaqLintReport:
    """Every check on every file of the FAQ folder; a file that does not load is an error of its own."""
    folder = settings.faq_path
    report = FaqLintReport()
    if folder.exists() and not folder.is_dir():
        report.errors.append(FaqIssue(folder.name, "faq.file", "faq_dir names a file, not a folder"))
        return report
    entries = []
    for path in faq_files(folder) if folder.is_dir() else []:
        try:
            entries.append(load_entry(path))
        except FaqError as exc:
            report.errors.append(FaqIssue(path.name, "faq.file", exc.reason, exc.line))
    report.entries = len(entries)
    _ids_and_questions(entries, report)
    _topics(entries, settings, report)
    md = markdown_parser()
    for entry in entries:
        html = md.renderer.render(list(entry.tokens), md.options, {})
        found = link_and_image_issues(html_links(html), entry.line_of, own_base=settings.public_base_url)
        for issue in found.errors:
            report.errors.append(FaqIssue(entry.path.name, issue.check, issue.message, issue.line))
        for issue in found.warnings:
            report.warnings.append(FaqIssue(entry.path.name, issue.check, issue.message, issue.line))
        _deid(entry, report)
    _sizes(Faq(folder, tuple(entries)), settings, report)
    return report


def _ids_and_questions(entries: list[FaqEntry], report: FaqLintReport) -> None:
    by_id: dict[str, FaqEntry] = {}
    by_question: dict[str, FaqEntry] = {}
    for entry in entries:
        first = by_id.setdefault(entry.id, entry)
        if first is not entry:
            report.errors.append(
                FaqIssue(entry.path.name, "faq.id", f"the id {entry.id!r} is also the id of {first.path.name}")
            )
        key = question_key(entry.question)
        twin = by_question.setdefault(key, entry)
        if twin is not entry:
            report.warnings.append(
                FaqIssue(entry.path.name, "faq.question", f"{twin.path.name} asks the same question")
            )


def _topics(entries: list[FaqEntry], settings: Settings, report: FaqLintReport) -> None:
    known = settings.topic_choices
    for entry in entries:
        if not entry.topics:
            report.warnings.append(
                FaqIssue(
                    entry.path.name,
                    "faq.topics",
                    "no topics: a campaign drafted from this entry would go to every confirmed subscriber",
                )
            )
        for topic in entry.topics:
            if topic not in known:
                report.errors.append(
                    FaqIssue(
                        entry.path.name,
                        "faq.topics",
                        f"topic {topic!r} is none of the topics subscribers can choose ({', '.join(known)})",
                    )
                )


def _deid(entry: FaqEntry, report: FaqLintReport) -> None:
    for finding in find_identifiers(entry.answer):
        report.warnings.append(
            FaqIssue(
                entry.path.name,
                finding.check_id,
                f"{finding.kind} {finding.text!r} ({finding.reason}): the FAQ is public, so only check that "
                "it is not about a client",
                entry.answer_line + entry.answer.count("\n", 0, finding.start),
            )
        )


def _sizes(library: Faq, settings: Settings, report: FaqLintReport) -> None:
    """Each answer in an email of its own, through the clinic's templates: too big to send alone is too big."""
    for entry in library.entries:
        text = f"---\nsubject: {json.dumps(entry.question)}\n---\n::: faq ref={entry.id}\n:::\n"
        campaign = with_faq_answers(parse_campaign(text, slug="faq-entry"), library)
        try:
            rendered = render_campaign(campaign, settings)
        except NewsletterError as exc:
            report.errors.append(FaqIssue(entry.path.name, "render", f"cannot render an email with this answer: {exc}"))
            return  # the templates or settings are at fault, and would be for every entry
        html, _ = rendered.preview()
        for problem in rendered.image_problems:
            report.errors.append(FaqIssue(entry.path.name, problem.check, problem.message, entry.line_of(problem.src)))
        size = len(html.encode("utf-8"))
        if size > HTML_MAX_BYTES:
            report.errors.append(
                FaqIssue(
                    entry.path.name,
                    "html.size",
                    f"an email carrying only this answer is {size // 1024} KB; Gmail clips emails over about "
                    f"102 KB (limit {HTML_MAX_BYTES // 1024} KB)",
                )
            )
