"""Rules for identifiers with a recognisable shape: contact details, numbers, codes, dates and ages.

Each rule yields candidates (start, end, kind, reason); the caller keeps the first candidate that
claims a span, so the order of RULES is the order of precedence.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterator

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from newsletter.campaigns.deid._lexicon import CODE_CONTEXT, HOLIDAYS, UNITS

Candidate = tuple[int, int, str, str]

_TRAILING_PUNCT = ".,;:!?'\"*_)]}’”"


def _alts(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


# --- e-mail, web and network addresses -------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def emails(text: str) -> Iterator[Candidate]:
    for m in _EMAIL.finditer(text):
        address = m.group().rstrip(".-")
        try:
            # check_deliverability=False: the gate runs offline, and the default does DNS look-ups.
            validate_email(address, check_deliverability=False)
            reason = "e-mail address"
        except EmailNotValidError:
            reason = "e-mail-shaped text (not a valid address, flagged anyway)"
        yield m.start(), m.start() + len(address), "email", reason


_TLDS = [
    "com",
    "org",
    "net",
    "edu",
    "gov",
    "mil",
    "int",
    "io",
    "co",
    "us",
    "me",
    "info",
    "biz",
    "app",
    "dev",
    "health",
    "care",
    "life",
    "blog",
    "site",
    "online",
    "xyz",
    "ly",
    "tv",
    "ai",
    "ca",
    "uk",
    "au",
    "de",
    "fr",
    "nz",
    "ie",
    "ee",
    "gg",
    "fm",
    "cc",
    "ws",
    "nl",
    "se",
    "es",
    "jp",
    "ch",
    "dk",
    "fi",
    "pl",
    "eu",
    "page",
    "link",
    "news",
    "club",
    "store",
    "shop",
    "live",
    "social",
]
_URL = re.compile(
    r"\b(?:https?|ftp)://[^\s<>()\[\]{}\"'`]+"
    r"|\bwww\.[^\s<>()\[\]{}\"'`]+"
    r"|(?<![\w@./-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    rf"(?:{_alts(_TLDS)})(?![\w-])(?:/[^\s<>()\[\]{{}}\"'`]*)?",
    re.IGNORECASE,
)


def urls(text: str) -> Iterator[Candidate]:
    for m in _URL.finditer(text):
        url = m.group().rstrip(_TRAILING_PUNCT)
        yield m.start(), m.start() + len(url), "url", "web address"


_MAC = re.compile(
    r"(?<![\w:-])[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}(?![\w:-])"
    r"|(?<![\w.])[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}(?![\w.])"
)


def macs(text: str) -> Iterator[Candidate]:
    for m in _MAC.finditer(text):
        yield m.start(), m.end(), "device", "MAC address"


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:\.\d{1,3}){0,3}(?![\w:])")


def ips(text: str) -> Iterator[Candidate]:
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            try:
                ipaddress.ip_address(m.group())
            except ValueError:
                continue
            yield m.start(), m.end(), "ip", "IP address"


# --- numbers with a known shape ------------------------------------------------------------------

_SSN = re.compile(
    r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}(?![\w-])"
    r"|(?i:(?<![\w-])(?:x{3}|\*{3})-(?:x{2}|\*{2})-\d{4}(?![\w-]))"
    r"|(?i:\b(?:ssn|social security(?: number)?)\b[^\w\n]{0,3}(?:(?:number|no\.?|is|was|#)\s*){0,2})(\d{9})\b"
)


def ssns(text: str) -> Iterator[Candidate]:
    # The shape is flagged, never validated: an invalid-looking SSN in a story is still a leak.
    for m in _SSN.finditer(text):
        if m.group(2):
            yield m.start(2), m.end(2), "ssn", "nine digits after 'SSN'"
        else:
            yield m.start(), m.end(), "ssn", "SSN-shaped number"


_VIN = re.compile(
    r"(?<![A-Za-z0-9])(?=[A-HJ-NPR-Z0-9]{0,16}\d)(?=[A-HJ-NPR-Z0-9]{0,16}[A-HJ-NPR-Z])"
    r"[A-HJ-NPR-Z0-9]{17}(?![A-Za-z0-9])"
)
_PLATE = re.compile(
    r"(?i:\b(?:licen[cs]e plate|plate number|plates?|tag number)\b)"
    r"(?:\s*(?:number|no\.?|#|reading|reads|read|of|that said|that read|is|was|:|,))*\s*"
    r"(?<![\w])([A-Z0-9]{1,4}(?:[ -]?[A-Z0-9]{1,4}){0,2})(?![\w-])"
)


def vehicles(text: str) -> Iterator[Candidate]:
    for m in _VIN.finditer(text):
        yield m.start(), m.end(), "vehicle", "17-character vehicle identification number"
    for m in _PLATE.finditer(text):
        if len(m.group(1).replace(" ", "").replace("-", "")) >= 2:
            yield m.start(1), m.end(1), "vehicle", "licence plate"


_PHONE_WORDS = re.compile(r"(?i)\b(?:phone|call|called|cell|mobile|fax|faxed|text|texted|tel|dial|reach)\b")
_LOCAL_PHONE = re.compile(r"(?<![\w-])\d{3}[-.]\d{4}(?![\w-])")


def phones(text: str) -> Iterator[Candidate]:
    if sum(c.isdigit() for c in text) >= 7:
        for m in phonenumbers.PhoneNumberMatcher(text, "US"):
            kind = context_kind(text, m.start, default="phone")
            if kind != "phone" and _PHONE_WORDS.search(_left_context(text, m.start)):
                kind = "phone"
            yield m.start, m.end, kind, _reason(kind, "phone", "phone or fax number")
    for local in _LOCAL_PHONE.finditer(text):
        kind = context_kind(text, local.start(), default="phone")
        yield local.start(), local.end(), kind, _reason(kind, "phone", "seven-digit phone number")


# --- addresses and ZIP codes ---------------------------------------------------------------------

_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Place|Pl|Way|Terrace|Ter"
    r"|Circle|Cir|Highway|Hwy|Parkway|Pkwy|Trail|Trl|Square|Sq|Alley|Loop|Row|Pike|Turnpike|Path"
    r"|Crossing|Extension|Ext|Ridge|Run)"
)
_UNIT = r"(?:,?\s+(?:Apt|Apartment|Unit|Suite|Ste|Rm|Room|Fl|Floor|#)\.?\s*#?\s*[A-Za-z0-9-]*\d[A-Za-z0-9-]*)?"
_ADDRESS = re.compile(
    r"(?<![\w-])\d{1,6}[A-Z]?(?:-\d{1,4})?\s+(?:[NSEW]\.?\s+)?"
    rf"(?:(?:[A-Z][A-Za-z'’.-]*|\d{{1,3}}(?:st|nd|rd|th))\s+){{1,3}}{_STREET_SUFFIX}\b\.?"
    rf"(?:\s+(?:N|S|E|W|NE|NW|SE|SW)\b)?{_UNIT}"
    r"|(?<![\w-])\d{1,6}\s+(?:US\s+|State\s+)?(?:Route|Rte|Rt|Highway|Hwy|County Road)\.?\s+\d{1,4}[A-Z]?\b"
    rf"{_UNIT}"
    r"|\b(?:P\.?\s?O\.?\s*Box|Post Office Box)\s*#?\s*\d+"
    r"|\b(?:Apt|Apartment)\.?\s*#?\s*\d+[A-Za-z]?\b"
)


def addresses(text: str) -> Iterator[Candidate]:
    for m in _ADDRESS.finditer(text):
        end = m.end()
        if text[end - 1] == "." and (end == len(text) or text[end : end + 1].isspace()):
            end -= 1  # "12 Oak Dr." at a sentence end: keep the full stop out of the finding
        yield m.start(), end, "address", "street address"


_ZIP = re.compile(r"(?<![\w$.,/-])\d{5}(?:-\d{4})?(?![\w/-]|[.,]\d)")


def zips(text: str) -> Iterator[Candidate]:
    for m in _ZIP.finditer(text):
        if _quantity(text, m.start(), m.end()):
            continue
        kind = context_kind(text, m.start(), default="zip")
        yield m.start(), m.end(), kind, _reason(kind, "zip", "five-digit ZIP code")


# --- dates and ages ------------------------------------------------------------------------------

_MONTH_FULL = "January|February|March|April|May|June|July|August|September|October|November|December"
_MONTH = rf"(?:{_MONTH_FULL}|(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?)"
_ORDINAL_WORD = (
    r"(?:(?:twenty|thirty)-)?(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|tenth"
    r"|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth"
    r"|twentieth|thirtieth"
)
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR_TAIL = r"(?:,?\s+(?:19|20)\d\d\b)?"
_DATE_WORDS = re.compile(
    rf"\b{_MONTH}\s+(?:the\s+)?(?:{_DAY}|{_ORDINAL_WORD})(?![\w:]){_YEAR_TAIL}"
    rf"|\b(?:the\s+)?(?:{_DAY}|{_ORDINAL_WORD})\s+(?:of\s+)?{_MONTH}(?!\w){_YEAR_TAIL}"
    rf"|\b{_MONTH},?\s+(?:of\s+)?(?:19|20)\d\d\b"
    rf"|\bmid-(?:{_MONTH_FULL})\b"
)
# A month on its own only after a date preposition, so that "May we suggest" stays clean.
_MONTH_ALONE = re.compile(
    r"\b(?i:in|on|since|last|until|till|through|during|by|this|next|early|late|of|before|after)\s+"
    rf"((?:early |late |mid-)?(?:{_MONTH_FULL}|Sept))\b"
)
# "the 14th" is a date, "the 4th session" is not.
_DAY_OF_MONTH = re.compile(r"\b(?i:on )?(?i:the) ((?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th))\b(?!\s+(?!of\b)[a-z])")
_NUMERIC_DATE = re.compile(
    r"(?<![\w/.-])(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?![\w/-]|\.\d)"
    r"|(?<![\w-])(?:19|20)\d\d-(?:0?[1-9]|1[0-2])-(?:0?[1-9]|[12]\d|3[01])(?![\w-])"
    r"|(?<![\w/])(?:0?[1-9]|1[0-2])/(?:19|20)\d\d(?![\w/])"
)
_MONTH_DAY_NUMERIC = re.compile(r"(?<![\w/.$-])(0?[1-9]|1[0-2])/(0?[1-9]|[12]\d|3[01])(?![\w/]|\.\d)")
_DATE_PREPOSITION = re.compile(r"(?i)\b(?:on|since|by|until|till|from|before|after|dated)\s+$")


def _holiday_pattern() -> re.Pattern[str]:
    alts = [re.escape(h).replace("'", "['’]?").replace("\\.", "\\.?") for h in sorted(HOLIDAYS, key=len, reverse=True)]
    return re.compile(rf"\b(?:{'|'.join(alts)})(?!\w)")


_HOLIDAY = _holiday_pattern()


def dates(text: str) -> Iterator[Candidate]:
    for m in _HOLIDAY.finditer(text):
        yield m.start(), m.end(), "date", "holiday (a date element)"
    for m in _DATE_WORDS.finditer(text):
        yield m.start(), m.end(), "date", "month with a day, a year or a date preposition"
    for m in _MONTH_ALONE.finditer(text):
        yield m.start(1), m.end(1), "date", "month after a date preposition"
    for m in _DAY_OF_MONTH.finditer(text):
        yield m.start(1), m.end(1), "date", "day of the month"
    for m in _NUMERIC_DATE.finditer(text):
        if m.group(1):
            a, b = int(m.group(1)), int(m.group(3))
            if not ((1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)):
                continue
        yield m.start(), m.end(), "date", "numeric date"
    for m in _MONTH_DAY_NUMERIC.finditer(text):
        a, b = int(m.group(1)), int(m.group(2))
        # "7/10" is usually a rating and "3/4" a fraction; count them as dates only after "on", "since"...
        after_preposition = _DATE_PREPOSITION.search(text[max(0, m.start() - 8) : m.start()])
        if b in (2, 3, 4, 5, 8, 10) and a <= b and not after_preposition:
            continue
        yield m.start(), m.end(), "date", "numeric month/day"


_AGE_NUM = r"(?:9\d|1[01]\d)"
_AGE_WORDS = r"(?:ninety|(?:one |a )?hundred)(?:[- ](?:and[- ])?(?:one|two|three|four|five|six|seven|eight|nine|ten))?"
_AGE = re.compile(
    rf"(?<![\w.-])(?:{_AGE_NUM}|{_AGE_WORDS})"
    r"(?:[- ]years?[- ](?:olds?|young)|\s+yrs?\.?\s+old|[- ]y/?o\b)"
    rf"|\b(?:aged?:?|at the age of|turned|turning|turns)\s+(?:{_AGE_NUM}|{_AGE_WORDS})\b"
    rf"|\b(?:is|was|now)\s+(?:{_AGE_NUM}|{_AGE_WORDS})(?=\s*(?:[,.;!?)]|$|\s(?:when|and|but)\b))"
    rf"|\bat\s+(?:{_AGE_NUM}|{_AGE_WORDS})(?=\s*,)"
    r"|\bin\s+(?:his|her|their)\s+(?:early\s+|mid-?|late\s+)?(?:nineties|90s|90's|hundreds)(?!\w)"
    r"|\b(?:super)?centenarians?\b|\bnonagenarians?\b",
    re.IGNORECASE,
)


def ages(text: str) -> Iterator[Candidate]:
    for m in _AGE.finditer(text):
        yield m.start(), m.end(), "age", "age over 89"


# --- other numbers and codes ---------------------------------------------------------------------

_CODE_TOKEN = re.compile(r"(?<![\w@/.$#-])[A-Za-z0-9]+(?:[-./#][A-Za-z0-9]+)*(?![\w@-])")
_HANDLE = re.compile(r"(?<![\w@/.])@[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_NOT_A_CODE = re.compile(
    r"(?:19|20)\d\d(?:s|'?s)?"  # a bare year or decade
    r"|(?:19|20)\d\d[-/](?:19|20)?\d\d"  # a range of years
    r"|\d+(?:st|nd|rd|th)"  # an ordinal
    r"|\d+(?:\.\d+)+"  # a decimal
    r"|1-?8(?:00|33|44|55|66|77|88)"  # a toll-free prefix, as in "the 1-800 number"
    r"|\d+(?:\.\d+)?(?:mg|mcg|ml|kg|g|lbs?|oz|k|x|am|pm|hrs?|mins?|s|yo|mph|km|mi|ft|cm|mm|hz|mb|gb)"
    r"(?:/(?:kg|ml|l|dl|day|d|h|hr|min|wk|week|dose|m2))*",  # a dose or a measure: "0.5mg/kg", "10mg"
    re.IGNORECASE,
)
_CLINICAL_CODES = frozenset(
    [
        "covid-19",
        "sars-cov-2",
        "phq-9",
        "phq-2",
        "gad-7",
        "gad-2",
        "icd-10",
        "icd-11",
        "dsm-5",
        "dsm-iv",
        "5-ht2a",
        "5-ht1a",
        "cyp2b6",
        "cyp3a4",
        "cyp2d6",
        "h1n1",
        "n95",
        "kn95",
        "ptsd-5",
        "pcl-5",
        "ace-10",
        "b12",
        "vitamin-d3",
        "mp3",
        "mp4",
        "4k",
        "1080p",
        "hba1c",
        "covid19",
        "5ht2a",
        "5-meo-dmt",
        "4-aco-dmt",
        "2c-b",
        "lsd-25",
        "nmda-r",
    ]
)


def codes(text: str, allow: frozenset[str]) -> Iterator[Candidate]:
    for m in _CODE_TOKEN.finditer(text):
        token = m.group()
        if token.lower() in _CLINICAL_CODES or token.lower() in allow:
            continue
        # "12-step", "mid-2019" and "90-minute" are words built on a number, not codes.
        core = "".join(p for p in token.split("-") if not (p.isalpha() and p.islower() and len(p) > 1))
        if not core or _NOT_A_CODE.fullmatch(core):
            continue
        digits = sum(c.isdigit() for c in core)
        letters = sum(c.isalpha() for c in core)
        if not (digits >= 4 or (digits and letters and digits + letters >= 5)):
            continue
        if _quantity(text, m.start(), m.end()):
            continue
        kind = context_kind(text, m.start(), default="code")
        yield m.start(), m.end(), kind, _reason(kind, "code", "code-like token")
    for m in _HANDLE.finditer(text):
        yield m.start(), m.end(), "code", "social-media handle"


def _quantity(text: str, start: int, end: int) -> bool:
    """A number that measures something ("1200 mg", "$4500", "15000 steps") is no identifier."""
    if text[max(0, start - 1) : start] == "$" or text[end : end + 1] == "%":
        return True
    nxt = re.match(r"\s*([A-Za-z]+)", text[end : end + 20])
    return bool(nxt and nxt.group(1).lower() in UNITS)


# --- context: which kind of number is this? ------------------------------------------------------


_CONTEXT_NOUN = {
    "record": "a record, account or licence number",
    "vehicle": "a vehicle",
    "device": "a device",
    "code": "an ID or code",
    "phone": "a phone",
}


def _reason(kind: str, default: str, shape: str) -> str:
    return shape if kind == default else f"number after a word naming {_CONTEXT_NOUN[kind]}"


_GENERIC_CONTEXT = {"number", "no.", "#", "id", "code", "pin"}


@functools.cache
def _context_pattern() -> tuple[re.Pattern[str], dict[str, str]]:
    kinds = {kw: kind for kind, kws in CODE_CONTEXT for kw in kws}
    pattern = re.compile(rf"(?<!\w)(?:{_alts(list(kinds))})(?![A-Za-z])")
    return pattern, kinds


def _left_context(text: str, start: int) -> str:
    window = text[max(0, start - 48) : start]
    cut = max(window.rfind(". "), window.rfind("\n"), window.rfind("! "), window.rfind("? "))
    return window[cut + 1 :] if cut >= 0 and not window[:cut].lower().endswith(("no", "s/n")) else window


def context_kind(text: str, start: int, *, default: str) -> str:
    """The kind named by the nearest specific word before a number ("MRN", "plate", "serial")."""
    pattern, kinds = _context_pattern()
    specific = generic = None
    for m in pattern.finditer(_left_context(text, start).lower()):
        if m.group() in _GENERIC_CONTEXT:
            generic = m.group()
        else:
            specific = m.group()
    if specific:
        return kinds[specific]
    if generic and default in ("code", "zip"):
        return "code"
    return default


Rule = Callable[[str], Iterator[Candidate]]

# Precedence: the most specific shapes first, so that "12 Oak Dr" is an address rather than a title,
# "04/12/2022" a date rather than a code, and an e-mail address is not also a web address.
RULES: tuple[Rule, ...] = (emails, urls, macs, ips, ssns, vehicles, phones, addresses, dates, ages, zips)
