"""SPF (RFC 7208) for the envelope domain: exactly one record, that parses, within 10 DNS lookups.

Receivers evaluate SPF against the Return-Path domain. Two records, a syntax error, or more than
10 DNS-querying terms (``include``, ``a``, ``mx``, ``ptr``, ``exists`` and ``redirect``, counted
through every ``include:`` and ``redirect=`` they lead to) are each a *permanent error*: SPF fails
for every message, whoever sent it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from newsletter.doctor.report import Check, fail, ok, warn
from newsletter.doctor.resolver import Resolver

MAX_LOOKUPS = 10
CHECK_IDS = ("spf.count", "spf.syntax", "spf.lookups")
_LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists"})
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)")
_MECHANISM = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9_.-]*)(.*)")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}\.?")
_CIDR = re.compile(r"(?:/(\d{1,2}))?(?://(\d{1,3}))?")


class SPFSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Term:
    qualifier: str  # "+", "-", "~" or "?"
    mechanism: str
    target: str = ""  # the domain-spec of include/a/mx/ptr/exists, the network of ip4/ip6


@dataclass
class SPFRecord:
    terms: list[Term] = field(default_factory=list)
    redirect: str | None = None

    @property
    def all_qualifier(self) -> str | None:
        return next((t.qualifier for t in self.terms if t.mechanism == "all"), None)


def spf_records(txt_records: list[str]) -> list[str]:
    """The SPF records among a name's TXT records (RFC 7208 4.5: exactly "v=spf1", then a space or the end)."""
    return [r for r in txt_records if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]


def _domain_spec(value: str, word: str) -> str:
    if "%" in value:
        return value  # a macro: expanded per message, so it cannot be followed here
    if not _DOMAIN.fullmatch(value):
        raise SPFSyntaxError(f"{word!r}: {value!r} is not a domain name")
    return value.rstrip(".").lower()


def _target(mechanism: str, rest: str, word: str) -> str:
    """Check what follows a mechanism's name; return its domain or network ("" for none)."""
    if mechanism == "all":
        if rest:
            raise SPFSyntaxError(f"{word!r}: 'all' takes no argument")
        return ""
    if mechanism in ("ip4", "ip6"):
        if not rest.startswith(":"):
            raise SPFSyntaxError(f"{word!r}: {mechanism} needs an address, e.g. {mechanism}:192.0.2.0/24")
        try:
            network = ipaddress.ip_network(rest[1:], strict=False)
        except ValueError:
            raise SPFSyntaxError(f"{word!r}: {rest[1:]!r} is not an IP network") from None
        if network.version != int(mechanism[-1]):
            raise SPFSyntaxError(f"{word!r}: not an IPv{mechanism[-1]} network")
        return str(network)
    domain, _, cidr = rest.partition("/")
    if cidr and mechanism in ("a", "mx"):
        match = _CIDR.fullmatch("/" + cidr)
        if not match or int(match[1] or 0) > 32 or int(match[2] or 0) > 128:
            raise SPFSyntaxError(f"{word!r}: bad prefix length")
    elif cidr:
        raise SPFSyntaxError(f"{word!r}: {mechanism} takes no prefix length")
    if domain.startswith(":"):
        return _domain_spec(domain[1:], word)
    if domain or mechanism in ("include", "exists"):
        raise SPFSyntaxError(f"{word!r}: {mechanism} needs a domain, e.g. {mechanism}:_spf.example.net")
    return ""


def parse(record: str) -> SPFRecord:
    """Parse one SPF record; :class:`SPFSyntaxError` names the first term that is wrong."""
    words = record.split()
    if not words or words[0].lower() != "v=spf1":
        raise SPFSyntaxError("an SPF record starts with v=spf1")
    parsed = SPFRecord()
    for word in words[1:]:
        modifier = _MODIFIER.fullmatch(word)
        if modifier:
            name = modifier[1].lower()
            if name == "redirect":
                if parsed.redirect is not None:
                    raise SPFSyntaxError("redirect= appears twice")
                parsed.redirect = _domain_spec(modifier[2], word)
            elif name == "exp" and not modifier[2]:
                raise SPFSyntaxError("exp= needs a domain")
            continue  # exp= and unknown modifiers are allowed and ignored (RFC 7208 6)
        mechanism = _MECHANISM.fullmatch(word)
        name = mechanism[2].lower() if mechanism else ""
        if mechanism is None or name not in _LOOKUP_TERMS | {"all", "ip4", "ip6"}:
            raise SPFSyntaxError(f"{word!r} is not an SPF mechanism")
        parsed.terms.append(Term(mechanism[1] or "+", name, _target(name, mechanism[3], word)))
    return parsed


@dataclass
class LookupCount:
    count: int = 0
    problems: list[str] = field(default_factory=list)  # permanent errors on the way
    uncounted: list[str] = field(default_factory=list)  # domains built from macros, known per message only


def count_lookups(record: SPFRecord, resolver: Resolver, *, seen: frozenset[str] = frozenset()) -> LookupCount:
    """DNS lookups a receiver makes to evaluate ``record``, through every include and redirect."""
    total = LookupCount()
    followed = [t.target for t in record.terms if t.mechanism == "include"]
    total.count = sum(t.mechanism in _LOOKUP_TERMS for t in record.terms)
    if record.redirect is not None and record.all_qualifier is None:  # with "all", redirect= is ignored
        total.count += 1
        followed.append(record.redirect)
    for domain in followed:
        if total.count > MAX_LOOKUPS:
            break  # over the limit already: no need to ask about the rest
        if "%" in domain:
            total.uncounted.append(domain)
            continue
        if domain in seen:
            total.problems.append(f"{domain} includes itself (a loop)")
            continue
        found = spf_records(resolver.txt(domain))
        if len(found) != 1:
            total.problems.append(f"{domain} has {'no' if not found else len(found)} SPF record(s), a permanent error")
            continue
        try:
            nested = count_lookups(parse(found[0]), resolver, seen=seen | {domain})
        except SPFSyntaxError as exc:
            total.problems.append(f"{domain}'s record does not parse: {exc}")
            continue
        total.count += nested.count
        total.problems += nested.problems
        total.uncounted += nested.uncounted
    return total


def spf_checks(resolver: Resolver, domain: str) -> Iterator[Check]:
    records = spf_records(resolver.txt(domain))
    publish = (
        f'Publish one TXT record at {domain}, e.g. "v=spf1 include:<your mail relay\'s SPF domain> -all" '
        "(your relay's documentation names it)."
    )
    if not records:
        yield fail("spf.count", f"{domain} has no SPF record, so receivers cannot tell who may send for it.", publish)
        return
    if len(records) > 1:
        yield fail(
            "spf.count",
            f"{domain} has {len(records)} SPF records; receivers treat that as a permanent error and SPF fails.",
            f"Merge them into one TXT record at {domain} that lists every service that sends for you.",
        )
        return
    yield ok("spf.count", f"One SPF record at {domain}: {records[0]}")
    try:
        record = parse(records[0])
    except SPFSyntaxError as exc:
        yield fail(
            "spf.syntax", f"The SPF record does not parse: {exc}.", "Correct the record; see RFC 7208 section 5."
        )
        return
    qualifier = record.all_qualifier
    if qualifier == "+":
        yield fail(
            "spf.syntax",
            "The SPF record ends in +all: every server on the internet may send as you.",
            "End it with -all (or ~all while you are testing).",
        )
    elif (qualifier is None and record.redirect is None) or qualifier == "?":
        yield warn(
            "spf.syntax",
            "The SPF record parses but ends without -all or ~all, so it says nothing about other servers.",
            "End it with -all (or ~all while you are testing).",
        )
    else:
        yield ok("spf.syntax", "The SPF record parses.")
    counted = count_lookups(record, resolver, seen=frozenset({domain}))
    if counted.problems:
        yield fail(
            "spf.lookups",
            "Following its include:/redirect= terms: " + "; ".join(counted.problems) + ".",
            "Fix or remove those terms: receivers give SPF a permanent error when one is broken.",
        )
    elif counted.count > MAX_LOOKUPS:
        yield fail(
            "spf.lookups",
            f"The SPF record needs more than {MAX_LOOKUPS} DNS lookups (at least {counted.count}, counted through "
            "include: and redirect=); receivers give it a permanent error and SPF fails.",
            "Remove includes of services that no longer send for you, or replace some by their ip4:/ip6: ranges.",
        )
    elif counted.uncounted:
        yield warn(
            "spf.lookups",
            f"The SPF record needs {counted.count} DNS lookups, plus those of {', '.join(counted.uncounted)}, "
            f"which depend on each message (macros); the limit is {MAX_LOOKUPS}.",
            "Make sure those stay within the limit, or replace the macros by fixed includes.",
        )
    else:
        yield ok("spf.lookups", f"The SPF record needs {counted.count} of at most {MAX_LOOKUPS} DNS lookups.")
