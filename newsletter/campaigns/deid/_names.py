"""Rules for names of people, employers and places, which have no shape but their capital letters.

A capitalised word that does not open a sentence is suspect unless it is on an allow-list. At a
sentence start, capitals mean nothing, so only words that are likely names there are flagged: common
first names that are not also common words, places rare as words, and words too rare to be ordinary
English. Neighbouring capitalised words are reported together ("Maria Delgado", "Bath Iron Works").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from newsletter.campaigns.deid._lexicon import (
    ABBREVIATIONS,
    ALLOWED,
    GEO_WORDS,
    INSTITUTION_WORDS,
    LOCATIVES,
    MONTHS,
    STOPWORDS,
    STREET_SUFFIXES,
    TITLES,
    WEEKDAYS,
    Lexicon,
)
from newsletter.campaigns.deid._patterns import Candidate

_LETTERS = r"[^\W\d_]"
# O'Brien, Mary-Kate and Maria's are one token each; the possessive is stripped later.
_TOKEN = re.compile(rf"{_LETTERS}+(?:['’]{_LETTERS}+|-{_LETTERS}+)*")
_POSSESSIVE = re.compile(r"['’]s$")
_PLURAL_ACRONYM = re.compile(r"[A-Z]{2,}s")
_GLUED_TO_DIGITS = re.compile(r"\d-?$")
# A word-like first name at a sentence start is a person when a person's verb follows ("Grace called").
_PERSON_VERB = re.compile(
    r"[ \t]+(?:said|says|called|calls|told|tells|asked|asks|wrote|texted|emailed|came|comes|started|"
    r"began|drove|cried|laughed|smiled|decided|wanted|explained|shared|described|arrived|booked|"
    r"noticed|realized|realised|admitted|agreed)\b"
)
# "a client named kowalski": whatever follows "named" is a name, whatever its case.
_NAMED = re.compile(rf"\bnamed[ \t]+({_LETTERS}+(?:['’-]{_LETTERS}+)*)")
_CONTRACTION = re.compile(r"['’](?:m|ll|d|ve|re|s)$", re.IGNORECASE)
_PARTICLES = frozenset(["de", "da", "del", "della", "di", "du", "van", "von", "der", "den", "la", "le", "bin", "ibn"])
_SAINT_LIKE = ("st", "mt", "ft")  # "St. Louis", "Mt. Desert": the full stop does not break the name
_RUN_GAP = re.compile(r"[ \t]+|[ \t]*[*_]+[ \t]*|[ \t]+[*_]+|[*_]+[ \t]+")
_LIST_PREFIX = re.compile(r"[ \t]*(?:(?:[-+*]|\d{1,3}[.)]|#{1,6}|>)[ \t]+)+[*_\"“‘'(\[]*")
_SKIP_BACK = frozenset(" \t\r*_~`>#[")
_CLOSERS = frozenset("”’\"')]*_")
_OPENERS = frozenset("“‘\"'")
_SUFFIX_WORDS = (
    "ly",
    "ing",
    "ed",
    "tion",
    "sion",
    "ness",
    "ment",
    "ity",
    "ism",
    "ist",
    "ful",
    "less",
    "ous",
    "ive",
    "able",
    "ible",
    "ance",
    "ence",
    "ize",
    "ise",
    "ical",
    "logy",
    "ship",
    "hood",
)
_TITLE_NAME = re.compile(
    rf"(?<!\w)(?:{'|'.join(sorted((t.title() for t in TITLES), key=len, reverse=True))})\.?[ \t]+"
    rf"((?:[A-Z]{_LETTERS}*(?:['’-]{_LETTERS}+)*)(?:[ \t]+[A-Z]{_LETTERS}*(?:['’-]{_LETTERS}+)*){{0,2}})"
)
_STATE_CODES = [
    "AL",
    "AK",
    "AZ",
    "AR",
    "CA",
    "CO",
    "CT",
    "DE",
    "FL",
    "GA",
    "HI",
    "ID",
    "IL",
    "IN",
    "IA",
    "KS",
    "KY",
    "LA",
    "ME",
    "MD",
    "MA",
    "MI",
    "MN",
    "MS",
    "MO",
    "MT",
    "NE",
    "NV",
    "NH",
    "NJ",
    "NM",
    "NY",
    "NC",
    "ND",
    "OH",
    "OK",
    "OR",
    "PA",
    "RI",
    "SC",
    "SD",
    "TN",
    "TX",
    "UT",
    "VT",
    "VA",
    "WA",
    "WV",
    "WI",
    "WY",
    "DC",
]
_CITY_STATE = re.compile(
    rf"((?:[A-Z]{_LETTERS}+[ \t-]){{0,2}}[A-Z]{_LETTERS}+),[ \t]+(?:{'|'.join(_STATE_CODES)}|D\.C\.)(?![\w])"
)


@dataclass
class _Token:
    start: int
    end: int  # possessive and contraction stripped
    text: str
    possessive: bool

    @property
    def low(self) -> str:
        return self.text.lower()


def starts_sentence(text: str, i: int) -> bool:
    """Whether the word at offset i opens a sentence, a list item, a heading or a quotation."""
    line_start = text.rfind("\n", 0, i) + 1
    if _LIST_PREFIX.fullmatch(text, line_start, i):
        return True
    j, newlines = i - 1, 0
    while j >= 0 and (text[j] in _SKIP_BACK or text[j] == "\n"):
        newlines += text[j] == "\n"
        j -= 1
    if j < 0 or newlines >= 2:
        return True
    c = text[j]
    if c in _OPENERS and (j == 0 or text[j - 1].isspace() or text[j - 1] in "([{:—–-"):
        return True
    while j > 0 and c in _CLOSERS:
        j -= 1
        c = text[j]
    if c in "!?:":
        return True
    if c != ".":
        return False
    k = j
    while k > 0 and (text[k - 1].isalpha() or text[k - 1] == "."):
        k -= 1
    word = text[k:j]
    # "Dr. Patel" and "J. Smith" do not start a sentence; sentence splitters get this wrong.
    return not (word.lower() in ABBREVIATIONS or (len(word) == 1 and word.isupper()))


def _in_heading(text: str, i: int) -> bool:
    line_start = text.rfind("\n", 0, i) + 1
    return text.startswith("#", line_start)


def _tokens(text: str, free: Callable[[int, int], bool]) -> Iterator[_Token]:
    for m in _TOKEN.finditer(text):
        word, end = m.group(), m.end()
        if _GLUED_TO_DIGITS.search(text, max(0, m.start() - 2), m.start()) or text[end : end + 1].isdigit():
            continue  # the letters of a code ("HbA1c", "5-MeO-DMT"): the code rules judge those
        possessive = bool(_POSSESSIVE.search(word))
        if _CONTRACTION.search(word):
            cut = word.rfind("'") if "'" in word else word.rfind("’")
            word, end = word[:cut], m.start() + cut
        if free(m.start(), end):
            yield _Token(m.start(), end, word, possessive)


def _capitalised(word: str) -> bool:
    # "SSRIs" and "MDs" are plural acronyms, not names.
    return word[0].isupper() and any(c.islower() for c in word) and not _PLURAL_ACRONYM.fullmatch(word)


_LAST_WORD = re.compile(rf"({_LETTERS}+)[^\w\n]*$")
_WORD = re.compile(rf"{_LETTERS}+(?:['’-]{_LETTERS}+)*")
_RUN_JOINER = re.compile(rf"[ \t]+({_LETTERS}+)[ \t]+|\.[ \t]+")
_CALENDAR = MONTHS | WEEKDAYS


def _previous_word(text: str, start: int) -> str:
    m = _LAST_WORD.search(text[max(0, start - 30) : start])
    return m.group(1).lower() if m else ""


class NameFinder:
    def __init__(self, lex: Lexicon, allow_words: frozenset[str]) -> None:
        self.lex = lex
        self.allow = allow_words

    def _allowed(self, low: str) -> bool:
        return low in ALLOWED or low in self.allow or low in _CALENDAR

    def _generic(self, low: str) -> bool:
        return low in STOPWORDS or self._allowed(low)

    def _rare_word(self, low: str) -> bool:
        return self.lex.score(low) < 3.0 and not low.endswith(_SUFFIX_WORDS)

    def _suspicious_at_start(self, tok: _Token, text: str) -> bool:
        low = tok.low
        if self._generic(low) or low in self.lex.large_areas:
            return False
        names, wordlike = self.lex.first_names, self.lex.wordlike_names
        if low in names and (tok.possessive or _PERSON_VERB.match(text, tok.end)):
            return True  # "Hope's husband", "Grace called": a person, though the name is also a word
        if "-" in low:
            parts = low.split("-")
            return any(p in names and p not in wordlike for p in parts) or all(
                self._rare_word(p) and not self._generic(p) for p in parts
            )
        if low in names and low not in wordlike:
            return True
        if low in self.lex.places and self.lex.score(low) < 4.0:
            return True
        return self._rare_word(low)

    def _suspicious_inside(self, tok: _Token, text: str) -> bool:
        low = tok.low
        if low in self.lex.large_areas and low in self.lex.first_names and low not in self.lex.wordlike_names:
            # "her daughter Georgia" is a person; "from Georgia" and "Georgia, USA" are the state.
            return _previous_word(text, tok.start) not in LOCATIVES and text[tok.end : tok.end + 1] != ","
        return not (self._generic(low) or low in self.lex.large_areas)

    def titled_names(self, text: str) -> Iterator[Candidate]:
        # Found before any sentence logic: "Dr." ends a sentence for every splitter.
        for m in _TITLE_NAME.finditer(text):
            words = list(_WORD.finditer(m.group(1)))
            while words and self._generic(_POSSESSIVE.sub("", words[0].group()).lower()):
                words.pop(0)
            while words and self._generic(_POSSESSIVE.sub("", words[-1].group()).lower()):
                words.pop()
            if words:
                start = m.start(1) + words[0].start()
                end = m.start(1) + words[-1].end()
                if _POSSESSIVE.search(text[start:end]):
                    end -= 2
                yield start, end, "name", "capitalised word after a title"

    def named(self, text: str) -> Iterator[Candidate]:
        for m in _NAMED.finditer(text):
            word = _POSSESSIVE.sub("", m.group(1))
            if not self._generic(word.lower()):
                yield m.start(1), m.start(1) + len(word), "name", "word after 'named'"

    def city_state(self, text: str) -> Iterator[Candidate]:
        for m in _CITY_STATE.finditer(text):
            words = list(_WORD.finditer(m.group(1)))
            while words and self._generic(words[0].group().lower()):
                words.pop(0)
            if words:
                yield m.start(1) + words[0].start(), m.end(1), "place", "'City, ST' pattern"

    def runs(self, text: str, free: Callable[[int, int], bool]) -> Iterator[Candidate]:
        run: list[_Token] = []
        for tok in _tokens(text, free):
            if run and self._joins(text, run[-1], tok):
                run.append(tok)
                continue
            if run:
                yield from self._judge_run(text, run)
            run = [tok] if _capitalised(tok.text) else []
        if run:
            yield from self._judge_run(text, run)

    def _joins(self, text: str, prev: _Token, tok: _Token) -> bool:
        if prev.possessive or not _capitalised(tok.text):
            return False
        gap = text[prev.end : tok.start]
        if _RUN_GAP.fullmatch(gap):
            return True
        # "Ludwig van Beethoven", "University of Maine", "St. Joseph"
        m = _RUN_JOINER.fullmatch(gap)
        if not m:
            return False
        if m.group(1) is None:
            return prev.low in _SAINT_LIKE
        particle = m.group(1).lower()
        return particle in _PARTICLES or (particle == "of" and prev.low in INSTITUTION_WORDS)

    def _judge_run(self, text: str, run: list[_Token]) -> Iterator[Candidate]:
        lex = self.lex
        at_start = starts_sentence(text, run[0].start) or _in_heading(text, run[0].start)
        flags = [
            self._suspicious_at_start(t, text)
            if (i == 0 and at_start) or _in_heading(text, t.start)
            else self._suspicious_inside(t, text)
            for i, t in enumerate(run)
        ]
        # Multi-word places ("Bar Harbor", "South Portland") count even when they open a sentence, and
        # multi-word states ("New Hampshire") are allowed as a whole; the words either side of one are
        # judged as runs of their own.
        segment_start = i = 0
        while i < len(run):
            for n in range(min(lex.max_place_words, len(run) - i), 1, -1):
                span = text[run[i].start : run[i + n - 1].end].lower()
                if span in lex.places or span in lex.large_areas:
                    yield from self._judge_segment(
                        text, run[segment_start:i], flags[segment_start:i], at_start and segment_start == 0
                    )
                    if span not in lex.large_areas:  # "New Hampshire" is a state: allowed
                        yield run[i].start, run[i + n - 1].end, "place", "place name"
                    segment_start = i = i + n
                    break
            else:
                i += 1
        yield from self._judge_segment(
            text, run[segment_start:], flags[segment_start:], at_start and segment_start == 0
        )

    def _judge_segment(self, text: str, run: list[_Token], flags: list[bool], at_start: bool) -> Iterator[Candidate]:
        lex = self.lex
        first = 0
        while first < len(run) and (run[first].low in STOPWORDS or run[first].low in _CALENDAR):
            first += 1
        body = run[first:]
        if not body:
            return
        last = body[-1].low
        distinctive = any(flags[first:]) or any(t.low in lex.large_areas or t.low in lex.places for t in body)
        if len(body) >= 2 and (last in STREET_SUFFIXES or last in GEO_WORDS):
            # "Water Street" and "Long Lake" name a place even when built of ordinary words.
            kind = "address" if last in STREET_SUFFIXES else "place"
            yield body[0].start, body[-1].end, kind, f"capitalised name ending in '{body[-1].text}'"
        elif len(body) >= 2 and any(t.low in INSTITUTION_WORDS for t in body) and distinctive:
            yield body[0].start, body[-1].end, "name", "organisation name (possible employer)"
        elif any(flags):
            lo = flags.index(True)
            hi = len(flags) - 1 - flags[::-1].index(True)
            while hi + 1 < len(run) and run[hi + 1].low in INSTITUTION_WORDS | GEO_WORDS:
                hi += 1
            yield run[lo].start, run[hi].end, *self._classify(text, run[lo : hi + 1], lo == 0 and at_start)

    def _classify(self, text: str, toks: list[_Token], at_start: bool) -> tuple[str, str]:
        lex = self.lex
        span = text[toks[0].start : toks[-1].end].lower()
        last = toks[-1].low
        prev = _previous_word(text, toks[0].start)
        first_name = toks[0].low in lex.first_names
        if last in STREET_SUFFIXES and len(toks) > 1:
            return "address", "street name"
        if last in GEO_WORDS:
            return "place", "place name"
        if span in lex.places and not (len(toks) == 1 and first_name and prev not in LOCATIVES):
            return "place", "US place name"
        if prev in ("in", "from", "near", "outside", "around") and not first_name:
            return "place", f"capitalised word after '{prev}'"
        if at_start:
            return "name", "likely name at a sentence start"
        return "name", "capitalised word not on the allow-list"

    def denied(self, text: str, pattern: re.Pattern[str] | None) -> Iterator[Candidate]:
        if pattern is not None:
            for m in pattern.finditer(text):
                yield m.start(), m.end(), "name", "on the campaign's deny-list"
