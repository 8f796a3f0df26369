"""MX: the envelope (bounce) domain accepts mail, so bounces and complaints can come back."""

from __future__ import annotations

from collections.abc import Iterator

from newsletter.doctor.domains import organisational_domain
from newsletter.doctor.report import Check, fail, ok
from newsletter.doctor.resolver import Resolver

CHECK_IDS = ("mx.records",)


def mx_checks(resolver: Resolver, domain: str) -> Iterator[Check]:
    records = resolver.mx(domain)
    fix = (
        f"Publish an MX record for {domain} pointing at a server that accepts mail for it, "
        f"e.g. {domain}. MX 10 mail.{organisational_domain(domain)}."
    )
    if not records:
        yield fail("mx.records", f"{domain} has no MX record: bounces to it cannot come back.", fix)
    elif all(host == "" for _, host in records):
        yield fail("mx.records", f"{domain} publishes a null MX (it accepts no mail): bounces are lost.", fix)
    else:
        hosts = ", ".join(f"{preference} {host}" for preference, host in records if host)
        yield ok("mx.records", f"{domain} receives mail (MX {hosts}).")
