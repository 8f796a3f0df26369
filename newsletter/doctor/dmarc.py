"""DMARC: the From domain's policy, and whether our messages can pass it (identifier alignment).

DMARC passes when SPF passes for an envelope domain *aligned* with the From domain, or DKIM passes
for a ``d=`` aligned with it. Relaxed alignment (the default) compares organisational domains;
``aspf=s`` or ``adkim=s`` in the record ask for the exact domain. The record is looked up at
``_dmarc.FROM-DOMAIN``, then at the organisational domain (RFC 7489 6.6.3), where ``sp=`` is the
policy for subdomains.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from newsletter.config import Settings
from newsletter.doctor.domains import aligned, organisational_domain
from newsletter.doctor.report import Check, fail, ok, warn
from newsletter.doctor.resolver import Resolver

POLICIES = ("none", "quarantine", "reject")


@dataclass
class DMARCLookup:
    """What the lookup found: the name asked, the DMARC records there, and the first one's tags."""

    name: str
    records: list[str]
    subdomain: bool  # found at the organisational domain, for a From domain below it
    tags: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def policy(self) -> str:
        return self.tags.get("sp", self.tags.get("p", "")) if self.subdomain else self.tags.get("p", "")

    def strict(self, tag: str) -> bool:
        return self.tags.get(tag, "r") == "s"


def parse_dmarc(record: str) -> dict[str, str]:
    """A DMARC record's tags; ValueError says what is wrong."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        if not part.strip():
            continue
        name, equals, value = part.partition("=")
        name = name.strip().lower()
        if not equals or not name:
            raise ValueError(f"{part.strip()!r} is not tag=value")
        tags.setdefault(name, value.strip())
    if record.split(";")[0].replace(" ", "") != "v=DMARC1":
        raise ValueError("a DMARC record starts with v=DMARC1")
    for name in ("p", "sp"):
        if name in tags and tags[name].lower() not in POLICIES:
            raise ValueError(f"{name}={tags[name]} is not one of {', '.join(POLICIES)}")
        if name in tags:
            tags[name] = tags[name].lower()
    if "p" not in tags:
        raise ValueError("it has no p= policy")
    for name in ("adkim", "aspf"):
        if name in tags and tags[name].lower() not in ("r", "s"):
            raise ValueError(f"{name}={tags[name]} is not r or s")
        if name in tags:
            tags[name] = tags[name].lower()  # aspf=S is strict too
    return tags


def _dmarc_records(resolver: Resolver, name: str) -> list[str]:
    return [r for r in resolver.txt(name) if r.replace(" ", "").startswith("v=DMARC1")]


def lookup_dmarc(resolver: Resolver, from_domain: str) -> DMARCLookup:
    name = f"_dmarc.{from_domain}"
    found = DMARCLookup(name, _dmarc_records(resolver, name), subdomain=False)
    organisational = organisational_domain(from_domain)
    if not found.records and organisational != from_domain:
        name = f"_dmarc.{organisational}"
        found = DMARCLookup(name, _dmarc_records(resolver, name), subdomain=True)
    if len(found.records) == 1:
        try:
            found.tags = parse_dmarc(found.records[0])
        except ValueError as exc:
            found.error = str(exc)
    return found


def dmarc_checks(found: DMARCLookup, from_domain: str) -> Iterator[Check]:
    example = f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{organisational_domain(from_domain)}"
    if not found.records:
        yield fail(
            "dmarc.record",
            f"No DMARC record for {from_domain}; Gmail, Yahoo and Outlook require one from bulk senders.",
            f'Publish a TXT record at _dmarc.{from_domain}, e.g. "{example}".',
        )
        return
    if len(found.records) > 1:
        yield fail(
            "dmarc.record",
            f"{len(found.records)} DMARC records at {found.name}; receivers then apply none of them.",
            "Keep exactly one.",
        )
        return
    if found.error:
        yield fail(
            "dmarc.record",
            f"The DMARC record at {found.name} is not valid: {found.error}.",
            f'Write it as "{example}".',
        )
        return
    yield ok("dmarc.record", f"DMARC record at {found.name}: {found.records[0]}")
    rua = found.tags.get("rua", "")
    if found.policy == "none" and not rua:
        yield warn(
            "dmarc.policy",
            "The DMARC policy is p=none without rua=: it neither protects the domain nor reports who sends as it.",
            f"Add rua=mailto:dmarc-reports@{organisational_domain(from_domain)} to receive reports; once they show "
            "only your own mail, move to p=quarantine.",
        )
    elif found.policy == "none":
        yield ok("dmarc.policy", f"p=none (monitoring), reports to {rua}; move to p=quarantine once they look clean.")
    else:
        yield ok("dmarc.policy", f"p={found.policy}" + (f", reports to {rua}." if rua else "."))


def alignment_checks(
    settings: Settings, from_domain: str, envelope_domain: str, found: DMARCLookup | None
) -> Iterator[Check]:
    """Whether DMARC can pass through SPF, through DKIM, or neither. Needs no network."""
    strict_spf = found is not None and found.strict("aspf")
    spf_aligned = aligned(envelope_domain, from_domain, strict=strict_spf)
    # We sign with d= the From domain (newsletter.delivery.dkim), which aligns even with adkim=s.
    dkim_aligned = bool(settings.dkim_key_path)
    mode = "strict" if strict_spf else "relaxed"
    if spf_aligned:
        yield ok("alignment.spf", f"The envelope domain {envelope_domain} aligns with From {from_domain} ({mode}).")
    else:
        status = warn if dkim_aligned else fail
        yield status(
            "alignment.spf",
            f"The envelope domain {envelope_domain} does not align with From {from_domain} ({mode} alignment): "
            "SPF cannot make DMARC pass"
            + ("." if dkim_aligned else ", and neither can DKIM: DMARC fails for every message."),
            f"Use a bounce_address under {from_domain if strict_spf else organisational_domain(from_domain)}, "
            f"e.g. bounces@{from_domain}.",
        )
    if dkim_aligned:
        yield ok("alignment.dkim", f"DKIM signs as d={from_domain}, the From domain.")
    else:
        status = warn if spf_aligned else fail
        yield status(
            "alignment.dkim",
            "No DKIM signature, so DMARC rests on SPF alone"
            + ("." if spf_aligned else ", which does not align either: DMARC fails for every message."),
            "Set dkim_key_path and dkim_selector to sign as the From domain.",
        )
