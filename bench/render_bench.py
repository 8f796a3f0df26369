"""Benchmark: per-recipient personalisation of a campaign into complete MIME messages.

Ours, the two-stage way the product sends: ``render_campaign`` ONCE (Jinja over the MJML layout,
``mjml2html``, the text alternative), a ``MessageFactory`` once, then per recipient
``MessageFactory.build(...)`` with real signed unsubscribe and preferences URLs from
``newsletter.delivery.links.Links`` and a Message-ID made the way ``Prepared.message_id`` makes it.
Its per-recipient time is amortised: the one render and the factory are included, divided over
the recipients.

From scratch, in the same run, on a sample of the same recipients: per recipient
``render_campaign`` (Jinja + MJML + text), ``RenderedCampaign.personalise`` with the same signed
URLs, and an ``email.message.EmailMessage`` with the same headers and text and HTML alternatives
(quoted-printable), serialised with ``as_bytes()``.

For information only, the middle way is timed too: render once, but an ``EmailMessage`` per
recipient (what the MIME stage alone costs when it is not done once per campaign).

Target (from the issue): ours at least 20x faster per recipient than from scratch.

Campaign: the seed stories campaign ``client-stories`` from this repository, with the repository's
``newsletter.toml`` and templates. Recipients are generated (example.org addresses; some names with
accents, some without a name).

Run: ``.venv/bin/python bench/render_bench.py [--recipients 10000] [--sample 300] [--repeat 3]``
or ``--quick``. Exit status: 0 PASS, 1 MISS.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from newsletter.campaigns.content import Campaign, load_campaign
from newsletter.campaigns.render import RenderedCampaign, render_campaign
from newsletter.config import Settings, load_settings
from newsletter.delivery.links import Links
from newsletter.delivery.mime import MessageFactory

REPO = Path(__file__).resolve().parent.parent
CAMPAIGN = "client-stories"
TARGET = 20.0


@dataclass(frozen=True)
class Recipient:
    id: int
    email: str
    email_key: str
    name: str


def recipients(count: int) -> list[Recipient]:
    out = []
    for n in range(1, count + 1):
        name = "" if n % 11 == 0 else f"Zoë Ångström {n}" if n % 7 == 0 else f"Reader {n}"
        address = f"reader.{n}@example.org"
        out.append(Recipient(n, address, address, name))
    return out


class Paths:
    """The three ways, each returning the list of complete messages (bytes) it made."""

    def __init__(self, campaign: Campaign, settings: Settings, links: Links) -> None:
        self.campaign = campaign
        self.settings = settings
        self.links = links

    def _urls(self, r: Recipient) -> tuple[str, str]:
        return (self.links.url("unsubscribe", r.id, r.email_key), self.links.url("preferences", r.id, r.email_key))

    def _message_id(self, r: Recipient, domain: str) -> str:
        return f"<c1.m{r.id}.{self.links.tag(f'message:1.{r.id}')}@{domain}>"

    def ours(self, people: list[Recipient]) -> list[bytes]:
        rendered = render_campaign(self.campaign, self.settings)
        factory = MessageFactory(rendered, self.settings)
        out = []
        for r in people:
            unsubscribe, preferences = self._urls(r)
            out.append(
                factory.build(r.email, r.name, unsubscribe, preferences, message_id=self._message_id(r, factory.domain))
            )
        return out

    def ours_steady(self, people: list[Recipient], factory: MessageFactory) -> list[bytes]:
        out = []
        for r in people:
            unsubscribe, preferences = self._urls(r)
            out.append(
                factory.build(r.email, r.name, unsubscribe, preferences, message_id=self._message_id(r, factory.domain))
            )
        return out

    def from_scratch(self, people: list[Recipient]) -> list[bytes]:
        out = []
        for r in people:
            rendered = render_campaign(self.campaign, self.settings)
            out.append(self._email_message(rendered, r))
        return out

    def render_once_emailmessage(self, people: list[Recipient]) -> list[bytes]:
        rendered = render_campaign(self.campaign, self.settings)
        return [self._email_message(rendered, r) for r in people]

    def _email_message(self, rendered: RenderedCampaign, r: Recipient) -> bytes:
        s = self.settings
        unsubscribe, preferences = self._urls(r)
        html, text = rendered.personalise(
            {"name": r.name, "unsubscribe_url": unsubscribe, "preferences_url": preferences}
        )
        domain = s.from_address.rpartition("@")[2]
        message = EmailMessage(policy=email.policy.SMTP)
        message["From"] = Address(s.organisation, addr_spec=s.from_address)
        message["Subject"] = rendered.subject
        if s.reply_to:
            message["Reply-To"] = s.reply_to
        message["List-Id"] = f"{s.organisation} <newsletter.{domain}>"
        message["To"] = Address(r.name, addr_spec=r.email)
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = self._message_id(r, domain)
        message["List-Unsubscribe"] = f"<{unsubscribe}>, <mailto:{s.from_address}?subject=unsubscribe>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(text, cte="quoted-printable")
        message.add_alternative(html, subtype="html", cte="quoted-printable")
        return message.as_bytes()


def timed(run: Callable[[], list[bytes]]) -> tuple[float, list[bytes]]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def check(messages: list[bytes], people: list[Recipient], label: str) -> None:
    """Each way must make complete messages: both alternatives, the person's name and unsubscribe link."""
    for data, r in ((messages[0], people[0]), (messages[-1], people[len(messages) - 1])):
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        text = parsed.get_body(("plain",))
        html = parsed.get_body(("html",))
        if text is None or html is None:
            raise SystemExit(f"{label}: a message lacks its text or HTML part")
        name = r.name or "there"
        if name not in text.get_content() or "/unsubscribe/" not in html.get_content():
            raise SystemExit(f"{label}: a message lacks the recipient's name or unsubscribe link")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000, help="recipients of our way (default 10000)")
    parser.add_argument("--sample", type=int, default=300, help="recipients of the from-scratch way (default 300)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2000 recipients, a sample of 60, once")
    args = parser.parse_args()
    if args.quick:
        args.recipients, args.sample, args.repeat = 2_000, 60, 1
    # The repository's settings, with a throwaway signing key: the URLs are real signed links.
    settings = load_settings(REPO, environ={"NEWSLETTER_SECRET_KEY": secrets.token_urlsafe(32)}).settings
    links = Links(settings.require_secret_key(), settings.public_base_url, confirm_max_age=settings.confirm_max_age)
    campaign = load_campaign(CAMPAIGN, settings)
    paths = Paths(campaign, settings, links)
    people = recipients(args.recipients)
    sample = people[: args.sample]

    paths.ours(people[:50])  # warm-up: imports and first-call costs belong to neither way
    paths.from_scratch(sample[:3])
    ours_runs, scratch_runs, middle_runs, steady_runs, render_runs = [], [], [], [], []
    for _ in range(args.repeat):  # alternating, so a noisy moment does not favour one way
        ours_s, ours_messages = timed(lambda: paths.ours(people))
        ours_runs.append(ours_s)
        scratch_s, scratch_messages = timed(lambda: paths.from_scratch(sample))
        scratch_runs.append(scratch_s)
        middle_s, middle_messages = timed(lambda: paths.render_once_emailmessage(sample))
        middle_runs.append(middle_s)
        started = time.perf_counter()
        factory = MessageFactory(render_campaign(campaign, settings), settings)
        render_runs.append(time.perf_counter() - started)
        steady_s, _ = timed(lambda factory=factory: paths.ours_steady(people, factory))
        steady_runs.append(steady_s)
    check(ours_messages, people, "ours")
    check(scratch_messages, sample, "from scratch")
    check(middle_messages, sample, "render once + EmailMessage")

    ours_per = min(ours_runs) / len(people)
    scratch_per = min(scratch_runs) / len(sample)
    middle_per = min(middle_runs) / len(sample)
    steady_per = min(steady_runs) / len(people)
    speedup = scratch_per / ours_per
    avg = sum(map(len, ours_messages)) / len(ours_messages)
    avg_scratch = sum(map(len, scratch_messages)) / len(scratch_messages)

    def ms(values: list[float], n: int) -> str:
        return ", ".join(f"{v / n * 1e3:.3f}" for v in values)

    print(f"campaign {CAMPAIGN}: messages of {avg:.0f} bytes on average (from scratch: {avg_scratch:.0f} bytes)")
    print(
        f"ours, {len(people)} recipients: {min(ours_runs):.3f} s = {ours_per * 1e6:.1f} us per recipient, "
        f"render once included (runs, ms/recipient: {ms(ours_runs, len(people))})"
    )
    print(
        f"  of which: the one render + factory {min(render_runs) * 1e3:.1f} ms; per recipient after it "
        f"{steady_per * 1e6:.1f} us (runs, ms/recipient: {ms(steady_runs, len(people))})"
    )
    print(
        f"from scratch, {len(sample)} recipients: {min(scratch_runs):.3f} s = {scratch_per * 1e3:.2f} ms per "
        f"recipient (runs, ms/recipient: {ms(scratch_runs, len(sample))})"
    )
    print(
        f"for information, render once + EmailMessage per recipient: {middle_per * 1e3:.3f} ms per recipient "
        f"(runs, ms/recipient: {ms(middle_runs, len(sample))}); {middle_per / ours_per:.1f}x ours"
    )
    ok = speedup >= TARGET
    print(f"speed-up per recipient: {speedup:.1f}x (target >= {TARGET:.0f}x)")
    print("PASS" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
