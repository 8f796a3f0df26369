"""What receivers see in the messages themselves: the one-click unsubscribe pair, and the From domain.

The unsubscribe check looks at messages actually built by :class:`~newsletter.delivery.mime.MessageFactory`
for every campaign in the campaigns folder (with the sample links; nothing is sent), DKIM-signed when
signing is configured, because RFC 8058 wants both headers covered by the signature.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field

import dkim.util

from newsletter.campaigns.render import render_campaign
from newsletter.campaigns.service import campaign_files
from newsletter.config import Settings
from newsletter.delivery.dkim import dkim_signer
from newsletter.delivery.prepare import sample_message
from newsletter.doctor.domains import domain_of, is_free_mail, organisational_domain
from newsletter.doctor.report import Check, fail, ok, warn
from newsletter.errors import NewsletterError

ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass
class BuiltMessages:
    """Each campaign's message as a subscriber would get it, and the campaigns that would not build."""

    messages: dict[str, bytes] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def largest(self) -> int:
        return max(map(len, self.messages.values()), default=0)


def build_messages(settings: Settings) -> BuiltMessages:
    built = BuiltMessages()
    try:
        signer = dkim_signer(settings, domain_of(settings.from_address))
    except NewsletterError:
        signer = None  # the dkim checks report an unusable key; the headers can still be checked
    for file in campaign_files(settings):
        if file.campaign is None:
            built.problems.append(f"{file.slug}: {file.error}")
            continue
        try:
            data = sample_message(render_campaign(file.campaign, settings), settings)
        except NewsletterError as exc:
            built.problems.append(f"{file.slug}: {exc}")
            continue
        built.messages[file.slug] = signer(data) if signer is not None else data
    return built


def _header_problems(data: bytes) -> list[str]:
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    problems = []
    targets = re.findall(r"<([^>]*)>", " ".join(str(message.get("List-Unsubscribe", "")).split()))
    if not targets:
        problems.append("no List-Unsubscribe")
    elif not any(t.startswith("https://") for t in targets):
        problems.append(f"List-Unsubscribe has no https:// link ({', '.join(targets)})")
    if str(message.get("List-Unsubscribe-Post", "")).strip() != ONE_CLICK:
        problems.append(f"no List-Unsubscribe-Post: {ONE_CLICK}")
    signature = message.get("DKIM-Signature")
    if signature is not None:
        tags = dkim.util.parse_tag_value("".join(str(signature).split()).encode())
        signed = {h.strip().lower() for h in tags.get(b"h", b"").decode().split(":")}
        if not {"list-unsubscribe", "list-unsubscribe-post"} <= signed:
            problems.append("the DKIM signature does not cover List-Unsubscribe and List-Unsubscribe-Post")
    return problems


def unsubscribe_check(built: BuiltMessages, settings: Settings) -> Check:
    found = {slug: _header_problems(data) for slug, data in built.messages.items()}
    broken = {slug: problems for slug, problems in found.items() if problems}
    if broken:
        fix = "Set public_base_url to the https address of the web endpoint (newsletter serve)."
        return fail(
            "list.unsubscribe",
            "Gmail and Yahoo require one-click unsubscribe (RFC 8058): "
            + "; ".join(f"{slug}: {', '.join(problems)}" for slug, problems in broken.items())
            + ".",
            fix if any("https" in p for problems in broken.values() for p in problems) else "Report this as a bug.",
        )
    if built.problems:
        return warn(
            "list.unsubscribe",
            "Some campaigns could not be built to check: " + "; ".join(built.problems) + ".",
            "Run `newsletter campaign lint CAMPAIGN` on each and fix what it reports.",
        )
    if not found:
        return ok("list.unsubscribe", f"No campaigns in {settings.campaigns_path} yet; nothing to check.")
    return ok(
        "list.unsubscribe",
        f"Every campaign message carries List-Unsubscribe with an https link, and List-Unsubscribe-Post "
        f"({', '.join(found)}).",
    )


def from_domain_check(settings: Settings) -> Check:
    if "@" not in settings.from_address:
        return fail(
            "list.from_domain",
            "from_address is not set.",
            "Set from_address to an address at a domain the clinic owns, e.g. updates@news.harvest.example.",
        )
    domain = domain_of(settings.from_address)
    if is_free_mail(domain):
        return fail(
            "list.from_domain",
            f"From is at {domain}, a free-mail domain: its DMARC policy tells receivers to junk or reject mail "
            "in its name sent from any other server.",
            "Send from an address at a domain the clinic owns, e.g. updates@news.harvest.example.",
        )
    return ok("list.from_domain", f"From is at {domain} (organisational domain {organisational_domain(domain)}).")
