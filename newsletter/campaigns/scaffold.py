"""What a new campaign file starts from: the blank scaffold (``campaign new``), the draft made from
the FAQ's changes (``campaign new --from-faq``), and the placeholder texts both leave for staff.

:data:`PLACEHOLDERS` is the one list of those texts. Lint refuses a campaign that still holds any of
them (check ``scaffold.placeholder``), so neither a scaffold nor a draft can go out unedited.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import yaml

from newsletter.campaigns.content import EVERYONE, SLUG_RE, SUBJECT_MAX, CampaignError
from newsletter.campaigns.faq import FaqEntry

INTRO = "A short introduction to this update."
ANSWER = "The answer, in Markdown."
VIGNETTE = "An anonymised client story: no names, places, dates, ages or other details that could identify anyone."
FAQ_INTRO = "A short introduction to these answers: what changed in them, and why it matters to readers."

# Every text a scaffold puts in for staff to replace; lint errs on any left in place.
PLACEHOLDERS: tuple[str, ...] = (INTRO, ANSWER, VIGNETTE, FAQ_INTRO)


def _send_at_hint() -> str:
    """An example send_at a month from now: one in the past would send at once if uncommented."""
    example = (datetime.now(UTC) + timedelta(days=30)).replace(hour=14, minute=0, second=0, microsecond=0)
    return f"# send_at: {example.isoformat(timespec='seconds')}   # when send-due sends it, with a UTC offset\n"


def check_slug(slug: str) -> None:
    if not SLUG_RE.fullmatch(slug):
        raise CampaignError(
            f"{slug!r} is not a valid campaign slug: use 1-64 lowercase letters, digits and hyphens, "
            "starting with a letter or digit"
        )


def scaffold_campaign(slug: str, *, faqs: Sequence[str] = (), vignette: bool = False) -> str:
    """The text of a new campaign file: front matter, an intro, and the requested blocks."""
    check_slug(slug)
    questions = [q.strip() for q in faqs]
    for question in questions:
        if not question or "\n" in question or "\r" in question:
            raise CampaignError(f"a faq question must be one non-empty line, got {question!r}")
    parts = [_front_matter(slug.replace("-", " ").capitalize(), []), INTRO + "\n"]
    for question in questions:
        parts.append(f"::: faq {question}\n{ANSWER}\n:::\n")
    if vignette:
        parts.append(f"::: vignette\n{VIGNETTE}\n:::\n")
    return "\n".join(parts)


def draft_from_faq(slug: str, entries: Sequence[FaqEntry], *, since: str = "") -> str:
    """A campaign carrying ``entries`` by reference: a subject proposed from their questions, an audience
    from their topics, and an introduction for staff to write."""
    check_slug(slug)
    if not entries:
        raise CampaignError("no FAQ entries to draft a campaign from")
    audience = list(dict.fromkeys(topic for entry in entries for topic in entry.topics))
    since = " ".join(since.split())  # it goes into a YAML comment: one line
    origin = f"# Drafted from the FAQ entries new or changed since {since}.\n" if since else ""
    parts = [_front_matter(propose_subject([e.question for e in entries]), audience, comment=origin), FAQ_INTRO + "\n"]
    for entry in entries:
        parts.append(f"::: faq ref={entry.id}\n:::\n")
    return "\n".join(parts)


def propose_subject(questions: Sequence[str]) -> str:
    """The questions themselves when they fit in a subject line, else the first and a count."""
    joined = " ".join(questions)
    if len(joined) <= SUBJECT_MAX:
        return joined
    if len(questions) == 1:
        return "An updated answer from our FAQ"
    first = f"{questions[0]} (and {len(questions) - 1} more from our FAQ)"
    if len(first) <= SUBJECT_MAX:
        return first
    return f"{len(questions)} new and updated answers from our FAQ"


def _front_matter(subject: str, audience: list[str], *, comment: str = "") -> str:
    front = yaml.safe_dump(
        {"subject": subject, "preheader": "", "audience": audience or EVERYONE},
        sort_keys=False,
        allow_unicode=True,
        width=1000,
    )
    hint = (
        "" if audience else "# audience: all sends to every confirmed subscriber; or list topics, e.g. [faq-updates]\n"
    )
    return "---\n" + front + hint + comment + _send_at_hint() + "---\n"
