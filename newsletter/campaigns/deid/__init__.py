"""The de-identification gate for client vignettes.

It only finds: each finding names a class modelled on HIPAA Safe Harbor, the exact text and where it
is. It never rewrites text. A reviewer either fixes the vignette or accepts a finding by its exact text
(see `unaccepted`). It runs offline: its word lists are small files shipped in newsletter/campaigns/deid/data, built
by tools/build_deid_data.py, and read once on first use.

    >>> [(f.kind, f.text) for f in find_identifiers("Maria moved to Millinocket in May.")]
    [('name', 'Maria'), ('place', 'Millinocket'), ('date', 'May')]
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from newsletter.campaigns.deid._lexicon import ALLOWED_PHRASES, lexicon
from newsletter.campaigns.deid._names import NameFinder
from newsletter.campaigns.deid._patterns import RULES, Candidate, codes

__all__ = ["KINDS", "Finding", "find_identifiers", "unaccepted"]

KINDS: tuple[str, ...] = (
    "name",
    "place",
    "address",
    "zip",
    "date",
    "age",
    "phone",
    "email",
    "ssn",
    "record",
    "vehicle",
    "device",
    "url",
    "ip",
    "code",
)


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    text: str  # exactly text[start:end] of the scanned text
    start: int
    end: int
    reason: str = ""  # why it was flagged, for the reviewer

    @property
    def check_id(self) -> str:
        return f"deid.{self.kind}"


def find_identifiers(text: str, *, deny: Iterable[str] = (), allow: Iterable[str] = ()) -> list[Finding]:
    """Every likely identifier in `text`, sorted by position, no two overlapping.

    `deny`: names that must always be flagged (case-insensitive, whole words), for the lower-case and
    ALL-CAPS names that capitalisation rules cannot see. `allow`: words or phrases that are never
    names or places (case-insensitive); an entry equal to a code-like token also exempts that token.
    A deny entry wins over an allow entry.
    """
    allow_words, allow_phrases = _split_allow(frozenset(a.strip().lower() for a in allow if a.strip()))
    deny_pattern = _deny_pattern(frozenset(d.strip().lower() for d in deny if d.strip()))
    claimed: list[tuple[int, int]] = []
    findings: list[Finding] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in claimed)

    def take(candidates: Iterable[Candidate]) -> None:
        for start, end, kind, reason in candidates:
            if start < end and free(start, end):
                claimed.append((start, end))
                findings.append(Finding(kind, text[start:end], start, end, reason))

    for rule in RULES:
        take(rule(text))
    finder = NameFinder(lexicon(), allow_words)
    take(finder.denied(text, deny_pattern))
    take(finder.titled_names(text))
    take(finder.named(text))
    masked = [m.span() for p in (_phrase_pattern(), allow_phrases) if p for m in p.finditer(text)]

    def free_for_names(start: int, end: int) -> bool:
        return free(start, end) and all(end <= s or start >= e for s, e in masked)

    take(c for c in finder.city_state(text) if free_for_names(c[0], c[1]))
    take(finder.runs(text, free_for_names))
    take(codes(text, allow_words))
    return sorted(findings, key=lambda f: (f.start, f.end))


def unaccepted(findings: Iterable[Finding], accepted: Iterable[str]) -> list[Finding]:
    """The findings a reviewer has not accepted; an acceptance is the finding's exact text."""
    ok = set(accepted)
    return [f for f in findings if f.text not in ok]


def _words_pattern(entries: Iterable[str]) -> re.Pattern[str] | None:
    alts = sorted({e for e in entries if e}, key=len, reverse=True)
    if not alts:
        return None
    body = "|".join(r"\s+".join(re.escape(part) for part in alt.split()) for alt in alts)
    return re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])", re.IGNORECASE)


@functools.cache
def _phrase_pattern() -> re.Pattern[str] | None:
    return _words_pattern(ALLOWED_PHRASES)


@functools.lru_cache(maxsize=64)
def _deny_pattern(deny: frozenset[str]) -> re.Pattern[str] | None:
    return _words_pattern(deny)


@functools.lru_cache(maxsize=64)
def _split_allow(allow: frozenset[str]) -> tuple[frozenset[str], re.Pattern[str] | None]:
    return frozenset(a for a in allow if " " not in a), _words_pattern(a for a in allow if " " in a)
