"""``newsletter doctor``, callable from Python: every check, in order, within one deadline.

    report = run_doctor(settings, open_store=lambda: store)
    for check in report.checks:
        print(check.status, check.id, check.message, check.fix)

DNS gets at most :data:`DNS_BUDGET` seconds of the :data:`DEADLINE` (each lookup
:data:`~newsletter.doctor.resolver.LOOKUP_TIMEOUT`), the relay what is left, so the whole run ends
well within 30 s even when no server answers. A ``--send-test`` message is sent only when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from newsletter.config import Settings
from newsletter.doctor import content, dkim, dmarc, mx, spf, transport
from newsletter.doctor.domains import envelope_domain, from_domain
from newsletter.doctor.list_health import list_health_checks
from newsletter.doctor.report import Check, Deadline, DoctorReport, fail
from newsletter.doctor.resolver import DNSFailure, DNSUnavailable, Resolver
from newsletter.store.engine import Store
from newsletter.subscribers.addresses import normalise_address

DEADLINE = 25.0
DNS_BUDGET = 15.0

Progress = Callable[[str], None]


def _not_checked(check_id: str, exc: Exception) -> Check:
    if isinstance(exc, DNSUnavailable):
        fix = "Run the doctor where DNS can be reached, or set dns_servers (host:port, comma-separated)."
    else:
        fix = "The domain's DNS servers answer with errors: ask whoever hosts its DNS."
    return fail(check_id, f"Not checked: {exc}.", fix)


def _area(ids: Iterable[str], produce: Callable[[], Iterable[Check]]) -> list[Check]:
    """An area's checks; a lookup that cannot be made becomes one 'not checked' line for the check it was for."""
    done: list[Check] = []
    try:
        done.extend(produce())
    except (DNSUnavailable, DNSFailure) as exc:
        produced = {c.id for c in done}
        done.append(_not_checked(next(i for i in ids if i not in produced), exc))
    return done


def dns_checks(settings: Settings, resolver: Resolver) -> list[Check]:
    """SPF, DKIM, DMARC, alignment and MX for the From and envelope domains."""
    sender, envelope = from_domain(settings), envelope_domain(settings)
    if not sender:
        reason = "from_address is not set, so there is no domain to check"
        return [fail(i, f"Not checked: {reason}.", "Set from_address.") for i in ("spf.count", "dmarc.record")]
    checks = _area(spf.CHECK_IDS, lambda: spf.spf_checks(resolver, envelope))
    checks += _area(dkim.CHECK_IDS, lambda: dkim.dkim_checks(settings, resolver, sender))
    found = None
    try:
        found = dmarc.lookup_dmarc(resolver, sender)
        checks += dmarc.dmarc_checks(found, sender)
    except (DNSUnavailable, DNSFailure) as exc:
        checks.append(_not_checked("dmarc.record", exc))
    checks += dmarc.alignment_checks(settings, sender, envelope, found)
    checks += _area(mx.CHECK_IDS, lambda: mx.mx_checks(resolver, envelope))
    return checks


def run_doctor(
    settings: Settings,
    *,
    open_store: Callable[[], Store] | None = None,
    send_test: str | None = None,
    progress: Progress | None = None,
) -> DoctorReport:
    """Check the setup in force. Bad input (``dns_servers``, the ``send_test`` address) raises
    before anything is checked; everything else becomes a check in the report."""
    deadline = Deadline(DEADLINE)
    recipient = normalise_address(send_test).email if send_test is not None else None
    resolver = Resolver(settings.dns_servers, Deadline(deadline.cap(DNS_BUDGET)))
    say = progress or (lambda _: None)

    say(f"Checking DNS records through {resolver.where}...")
    report = DoctorReport(dns_checks(settings, resolver))
    say("Building each campaign's message...")
    built = content.build_messages(settings)
    say("Checking the mail relay...")
    report.checks += transport.transport_checks(settings, deadline, largest_message=built.largest)
    if recipient is not None:
        say(f"Sending a test message to {recipient}...")
        report.checks.append(transport.send_test_message(settings, recipient))
    report.checks += [content.unsubscribe_check(built, settings), content.from_domain_check(settings)]
    if open_store is not None:
        say("Reading the last 30 days of sends, complaints and bounces...")
        report.checks += list_health_checks(open_store)
    return report
