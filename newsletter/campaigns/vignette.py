"""Reviewing client vignettes: the de-identification gate, accepted findings and sign-offs.

The gate (:mod:`newsletter.campaigns.deid`) flags anything that may identify a client. Only a reviewer can
let a finding through, in the campaign's front matter, and each vignette also needs a sign-off that
names the reviewer and the date and holds a hash of the vignette's text, so any later edit voids it::

    deid:
      deny: [Kowalski]              # names that must always be flagged, whatever their case
      accept:
        - text: Serenity Prayer     # the exact text of the finding
          reviewer: A. Reviewer
          reason: A public prayer, not a person
      signoff:
        - vignette: 1               # 1-based, in file order
          reviewer: A. Reviewer
          date: 2026-11-20
          hash: sha256:...          # written by `newsletter campaign signoff`
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from newsletter.campaigns.content import Block, Campaign, CampaignError
from newsletter.campaigns.deid import Finding, find_identifiers
from newsletter.campaigns.markdown_file import FENCE


@dataclass(frozen=True)
class Acceptance:
    text: str
    reviewer: str
    reason: str


@dataclass(frozen=True)
class Signoff:
    vignette: int
    reviewer: str
    date: date
    hash: str


@dataclass(frozen=True)
class Review:
    deny: tuple[str, ...] = ()
    accept: tuple[Acceptance, ...] = ()
    signoffs: tuple[Signoff, ...] = ()


@dataclass(frozen=True)
class VignetteFinding:
    vignette: int  # 1-based
    line: int  # in the campaign file
    finding: Finding


@dataclass(frozen=True)
class SignoffProblem:
    vignette: int
    line: int
    message: str


def text_hash(block: Block) -> str:
    """What a sign-off is bound to: the vignette's words, ignoring only line ends and outer blank space."""
    normalised = "\n".join(line.rstrip() for line in block.source.strip().splitlines())
    return "sha256:" + hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CampaignError(f"{where} needs a non-empty '{key}'")
    return value.strip()


def read_review(campaign: Campaign) -> Review:
    """The ``deid:`` section of the front matter; malformed entries are errors, never ignored."""
    section = campaign.front_matter.get("deid") or {}
    label = campaign.path or campaign.slug
    if not isinstance(section, Mapping):
        raise CampaignError("'deid' must be a mapping with deny, accept and signoff", path=label)
    unknown = set(section) - {"deny", "accept", "signoff"}
    if unknown:
        raise CampaignError(f"unknown key(s) under 'deid': {', '.join(sorted(map(str, unknown)))}", path=label)
    deny = section.get("deny") or []
    if not isinstance(deny, list) or not all(isinstance(d, str) for d in deny):
        raise CampaignError("'deid.deny' must be a list of names", path=label)
    accept, signoffs = [], []
    for index, entry in enumerate(section.get("accept") or [], 1):
        where = f"deid.accept entry {index}"
        if not isinstance(entry, Mapping):
            raise CampaignError(f"{where} must have text, reviewer and reason", path=label)
        try:
            accept.append(
                Acceptance(_text(entry, "text", where), _text(entry, "reviewer", where), _text(entry, "reason", where))
            )
        except CampaignError as exc:
            raise CampaignError(exc.reason, path=label) from None
    for index, entry in enumerate(section.get("signoff") or [], 1):
        where = f"deid.signoff entry {index}"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("vignette"), int):
            raise CampaignError(f"{where} must name its vignette by number", path=label)
        when = entry.get("date")
        if not isinstance(when, date):
            raise CampaignError(f"{where} needs a date (YYYY-MM-DD)", path=label)
        try:
            signoffs.append(
                Signoff(entry["vignette"], _text(entry, "reviewer", where), when, _text(entry, "hash", where))
            )
        except CampaignError as exc:
            raise CampaignError(exc.reason, path=label) from None
    return Review(tuple(deny), tuple(accept), tuple(signoffs))


def scan(campaign: Campaign, review: Review) -> list[VignetteFinding]:
    """Findings in every vignette that no reviewer has accepted, with their file lines."""
    accepted = {a.text for a in review.accept}
    results = []
    for number, block in enumerate(campaign.vignettes, 1):
        for finding in find_identifiers(block.source, deny=review.deny):
            if finding.text in accepted:
                continue
            line = block.source_line + block.source.count("\n", 0, finding.start)
            results.append(VignetteFinding(number, line, finding))
    return results


def signoff_problems(campaign: Campaign, review: Review) -> list[SignoffProblem]:
    """Vignettes without a sign-off, or whose text changed since it was signed."""
    latest: dict[int, Signoff] = {}
    for signoff in review.signoffs:
        latest[signoff.vignette] = signoff
    problems = []
    for number, block in enumerate(campaign.vignettes, 1):
        current = latest.get(number)
        if current is None:
            problems.append(SignoffProblem(number, block.line, f"vignette {number} has no reviewer sign-off"))
        elif current.hash != text_hash(block):
            problems.append(
                SignoffProblem(
                    number,
                    block.line,
                    f"vignette {number} changed after {current.reviewer} signed it off on {current.date}; "
                    "it needs a new sign-off",
                )
            )
    return problems


def _sequence_offset(front: str) -> int:
    """How far this file indents a block list's dashes under its key (0 or 2), to write it the same way."""
    lines = front.split("\n")
    for key_line, item_line in itertools.pairwise(lines):
        key = re.match(r"^( *)[^\s#-][^:]*:\s*(#.*)?$", key_line)
        item = re.match(r"^( *)- ", item_line)
        if key and item:
            return max(0, len(item[1]) - len(key[1]))
    return 0


def with_signoff(campaign: Campaign, reviewer: str, when: date, numbers: Sequence[int]) -> str:
    """The campaign file's text with sign-offs for the given vignettes; nothing else changes.

    The front matter is edited round-trip (ruamel.yaml), so quotes, flow lists, comments and the
    order of keys stay as the author wrote them; only the ``deid.signoff`` list is rewritten.
    """
    if campaign.path is None:
        raise CampaignError("only a campaign file can be signed off")
    vignettes = campaign.vignettes
    for number in numbers:
        if not 1 <= number <= len(vignettes):
            raise CampaignError(
                f"there is no vignette {number} (the campaign has {len(vignettes)})", path=campaign.path
            )
    lines = campaign.source.split("\n")
    closing = next(i for i in range(1, len(lines)) if FENCE.match(lines[i]))  # where the parser closed it
    front = "\n".join(lines[1:closing]) + "\n"
    editor = YAML()  # round-trip
    editor.preserve_quotes = True
    editor.width = 4096  # never re-wrap a long line
    offset = _sequence_offset(front)
    editor.indent(mapping=2, sequence=2 + offset, offset=offset)
    meta = editor.load(front) or CommentedMap()
    section = meta.get("deid")
    if section is None:
        section = meta["deid"] = CommentedMap()
    kept = [s for s in section.get("signoff") or [] if isinstance(s, Mapping) and s.get("vignette") not in numbers]
    section["signoff"] = kept + [
        CommentedMap(vignette=n, reviewer=reviewer, date=when, hash=text_hash(vignettes[n - 1])) for n in numbers
    ]
    out = io.StringIO()
    editor.dump(meta, out)
    return "\n".join(["---", out.getvalue().rstrip("\n"), *lines[closing:]])
