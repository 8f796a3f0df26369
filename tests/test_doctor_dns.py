"""`newsletter doctor`'s DNS checks against a real DNS server (dnslib) on 127.0.0.1, reached through
the dns_servers setting only."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.doctor.report import Check, Deadline, Status
from newsletter.doctor.resolver import Resolver, parse_dns_servers
from newsletter.doctor.runner import dns_checks
from newsletter.doctor.spf import SPFSyntaxError, parse
from newsletter.errors import ConfigError
from tests.conftest import Newsletter
from tests.support.campaigns import clinic_settings
from tests.support.dkim_keys import rsa_key
from tests.support.dns_server import dns_server, failing_dns_server, silent_dns_server, txt, zone

DOMAIN = "news.harvest.example"
GOOD_SPF = txt(f"{DOMAIN}.", "v=spf1 include:_spf.relay.example ip4:192.0.2.10 -all")
RELAY_SPF = txt("_spf.relay.example.", "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8::/32 ~all")
GOOD_DMARC = txt(f"_dmarc.{DOMAIN}.", "v=DMARC1; p=quarantine; rua=mailto:dmarc@harvest.example")
GOOD_MX = f"{DOMAIN}. 300 IN MX 10 mail.harvest.example."


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("keys")
    return {
        "good": rsa_key(folder, 2048, "good"),
        "other": rsa_key(folder, 2048, "other"),
        "short": rsa_key(folder, 1024, "short"),
        "too-short": rsa_key(folder, 512, "too-short"),
    }


def dkim_record(public: str, selector: str = "s1") -> str:
    return txt(f"{selector}._domainkey.{DOMAIN}.", f"v=DKIM1; k=rsa; p={public}")


def news_settings(project: Path, **extra: object) -> Settings:
    """The clinic's settings with From at news.harvest.example, as in its newsletter.toml."""
    return dataclasses.replace(clinic_settings(project, **extra), from_address=f"updates@{DOMAIN}")


def run_dns(project: Path, zone_text: str, **extra: object) -> dict[str, Check]:
    with dns_server(zone_text) as servers:
        settings = news_settings(project, dns_servers=servers, **extra)
        checks = dns_checks(settings, Resolver(settings.dns_servers, Deadline(20)))
    assert len({c.id for c in checks}) == len(checks), "one line per check"
    return {c.id: c for c in checks}


def run_dkim(project: Path, key: Path, published: str | None) -> dict[str, Check]:
    """A good zone, signing with ``key``, and ``published`` (a p= value) as the selector's record, if any."""
    records = [GOOD_SPF, RELAY_SPF, GOOD_DMARC, GOOD_MX] + ([dkim_record(published)] if published is not None else [])
    return run_dns(project, zone(*records), dkim_key_path=str(key), dkim_selector="s1")


def statuses(checks: dict[str, Check]) -> dict[str, str]:
    return {i: c.status.value for i, c in checks.items()}


def test_a_good_setup_passes_every_dns_check(project: Path, keys: dict[str, tuple[Path, str]]) -> None:
    checks = run_dkim(project, *keys["good"])
    assert statuses(checks) == {
        "spf.count": "ok",
        "spf.syntax": "ok",
        "spf.lookups": "ok",
        "dkim.record": "ok",
        "dkim.key_match": "ok",
        "dkim.key_size": "ok",
        "dmarc.record": "ok",
        "dmarc.policy": "ok",
        "alignment.spf": "ok",
        "alignment.dkim": "ok",
        "mx.records": "ok",
    }
    assert "1 of at most 10" in checks["spf.lookups"].message
    assert "2048 bits" in checks["dkim.key_size"].message
    assert all(c.fix == "" for c in checks.values())


def test_no_spf_record(project: Path) -> None:
    checks = run_dns(project, zone(txt(f"{DOMAIN}.", "google-site-verification=abc"), GOOD_DMARC, GOOD_MX))
    assert checks["spf.count"].status is Status.FAIL and "no SPF record" in checks["spf.count"].message
    assert f"TXT record at {DOMAIN}" in checks["spf.count"].fix
    assert "spf.syntax" not in checks and "spf.lookups" not in checks


def test_two_spf_records(project: Path) -> None:
    checks = run_dns(project, zone(GOOD_SPF, txt(f"{DOMAIN}.", "v=spf1 mx -all"), RELAY_SPF, GOOD_DMARC, GOOD_MX))
    assert checks["spf.count"].status is Status.FAIL and "2 SPF records" in checks["spf.count"].message
    assert "Merge" in checks["spf.count"].fix


def include_chain(lookups: int) -> list[str]:
    """An SPF tree needing exactly ``lookups`` DNS lookups: includes, nested includes and a redirect."""
    assert lookups >= 4
    return [
        # 3 here: two includes and mx
        txt(f"{DOMAIN}.", "v=spf1 mx include:a.spf.example include:b.spf.example -all"),
        # 2 more: a redirect to c, and an "a" lookup
        txt("a.spf.example.", "v=spf1 a:out.a.spf.example redirect=c.spf.example"),
        txt("c.spf.example.", "v=spf1 ip4:203.0.113.0/24 ~all"),
        # the rest: b includes d, which uses exists lookups
        txt("b.spf.example.", "v=spf1 include:d.spf.example ~all"),
        txt("d.spf.example.", "v=spf1 " + " ".join(f"exists:{n}.d.spf.example" for n in range(lookups - 6)) + " ~all"),
    ]


@pytest.mark.parametrize(("lookups", "status"), [(10, "ok"), (11, "fail")])
def test_the_ten_lookup_limit_counts_through_includes_and_redirects(project: Path, lookups: int, status: str) -> None:
    checks = run_dns(project, zone(*include_chain(lookups), GOOD_DMARC, GOOD_MX))
    assert checks["spf.lookups"].status.value == status, checks["spf.lookups"].message
    if status == "fail":
        assert "more than 10" in checks["spf.lookups"].message and checks["spf.lookups"].fix
    else:
        assert "needs 10 of at most 10" in checks["spf.lookups"].message


def test_an_include_built_from_a_macro_cannot_be_counted(project: Path) -> None:
    spf = txt(f"{DOMAIN}.", "v=spf1 include:%{d}.spf.relay.example -all")
    checks = run_dns(project, zone(spf, GOOD_DMARC, GOOD_MX))
    assert checks["spf.lookups"].status is Status.WARN and "%{d}.spf.relay.example" in checks["spf.lookups"].message


def test_an_include_without_a_record_is_a_permanent_error(project: Path) -> None:
    spf = txt(f"{DOMAIN}.", "v=spf1 include:gone.example -all")
    checks = run_dns(project, zone(spf, GOOD_DMARC, GOOD_MX))
    assert (
        checks["spf.lookups"].status is Status.FAIL
        and "gone.example has no SPF record" in checks["spf.lookups"].message
    )


@pytest.mark.parametrize(
    ("record", "status", "words"),
    [
        ("v=spf1 ip4:192.0.2.300 -all", "fail", "not an IP network"),
        ("v=spf1 include -all", "fail", "needs a domain"),
        ("v=spf1 frobnicate -all", "fail", "not an SPF mechanism"),
        ("v=spf1 +all", "fail", "every server"),
        ("v=spf1 ip4:192.0.2.1", "warn", "without -all"),
    ],
)
def test_spf_syntax(project: Path, record: str, status: str, words: str) -> None:
    checks = run_dns(project, zone(txt(f"{DOMAIN}.", record), GOOD_DMARC, GOOD_MX))
    assert checks["spf.count"].status is Status.OK
    assert checks["spf.syntax"].status.value == status and words in checks["spf.syntax"].message


def test_the_spf_parser() -> None:
    record = parse("v=spf1 a/24 mx:mail.example//64 ip6:2001:db8::/48 exists:%{i}.x.example exp=why.example ?all")
    assert [t.mechanism for t in record.terms] == ["a", "mx", "ip6", "exists", "all"]
    assert record.all_qualifier == "?"
    with pytest.raises(SPFSyntaxError):
        parse("v=spf1 redirect=a.example redirect=b.example")
    with pytest.raises(SPFSyntaxError):
        parse("v=spf2 -all")


def test_spf_is_checked_on_the_bounce_domain(project: Path) -> None:
    bounce_spf = txt("bounces.harvest.example.", "v=spf1 ip4:192.0.2.1 -all")
    bounce_mx = "bounces.harvest.example. 300 IN MX 10 mail.harvest.example."
    checks = run_dns(project, zone(bounce_spf, bounce_mx, GOOD_DMARC), bounce_address="bounce@bounces.harvest.example")
    assert checks["spf.count"].status is Status.OK and "bounces.harvest.example" in checks["spf.count"].message
    assert checks["mx.records"].status is Status.OK
    assert checks["alignment.spf"].status is Status.OK  # relaxed: both under harvest.example


def test_a_dkim_key_that_does_not_match(project: Path, keys: dict[str, tuple[Path, str]]) -> None:
    checks = run_dkim(project, keys["good"][0], keys["other"][1])
    assert checks["dkim.record"].status is Status.OK
    assert checks["dkim.key_match"].status is Status.FAIL and "not the public half" in checks["dkim.key_match"].message
    assert "openssl rsa -in" in checks["dkim.key_match"].fix


def test_a_short_dkim_key_is_a_warning(project: Path, keys: dict[str, tuple[Path, str]]) -> None:
    checks = run_dkim(project, *keys["short"])
    assert checks["dkim.key_match"].status is Status.OK
    assert checks["dkim.key_size"].status is Status.WARN and "1024 bits" in checks["dkim.key_size"].message


def test_a_dkim_key_under_1024_bits_fails(project: Path, keys: dict[str, tuple[Path, str]]) -> None:
    checks = run_dkim(project, *keys["too-short"])
    assert checks["dkim.key_match"].status is Status.OK
    assert checks["dkim.key_size"].status is Status.FAIL and "512 bits" in checks["dkim.key_size"].message


def test_a_revoked_dkim_key(project: Path, keys: dict[str, tuple[Path, str]]) -> None:
    checks = run_dkim(project, keys["good"][0], "")
    assert checks["dkim.record"].status is Status.FAIL and "revoked" in checks["dkim.record"].message


def test_a_missing_dkim_record_and_unsigned_mail(project: Path, keys: dict[str, tuple[Path, str]]) -> None:
    missing = run_dkim(project, keys["good"][0], None)
    assert missing["dkim.record"].status is Status.FAIL and f"s1._domainkey.{DOMAIN}" in missing["dkim.record"].message
    unsigned = run_dns(project, zone(GOOD_SPF, RELAY_SPF, GOOD_DMARC, GOOD_MX))
    assert unsigned["dkim.signing"].status is Status.WARN and "dkim.record" not in unsigned


def test_dmarc_missing(project: Path) -> None:
    checks = run_dns(project, zone(GOOD_SPF, RELAY_SPF, GOOD_MX))
    assert checks["dmarc.record"].status is Status.FAIL and "No DMARC record" in checks["dmarc.record"].message
    assert f"_dmarc.{DOMAIN}" in checks["dmarc.record"].fix


def test_dmarc_found_at_the_organisational_domain(project: Path) -> None:
    org = txt("_dmarc.harvest.example.", "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@harvest.example")
    checks = run_dns(project, zone(GOOD_SPF, RELAY_SPF, GOOD_MX, org))
    assert checks["dmarc.record"].status is Status.OK and "_dmarc.harvest.example" in checks["dmarc.record"].message
    assert "p=quarantine" in checks["dmarc.policy"].message  # sp= applies to the subdomain


@pytest.mark.parametrize(
    ("record", "status"),
    [
        ("v=DMARC1; p=none", "warn"),
        ("v=DMARC1; p=none; rua=mailto:dmarc@harvest.example", "ok"),
        ("v=DMARC1; p=reject", "ok"),
    ],
)
def test_dmarc_policy(project: Path, record: str, status: str) -> None:
    checks = run_dns(project, zone(GOOD_SPF, RELAY_SPF, GOOD_MX, txt(f"_dmarc.{DOMAIN}.", record)))
    assert checks["dmarc.record"].status is Status.OK
    assert checks["dmarc.policy"].status.value == status


@pytest.mark.parametrize("record", ["v=DMARC1; p=maybe", "v=DMARC1; rua=mailto:x@harvest.example"])
def test_an_invalid_dmarc_record(project: Path, record: str) -> None:
    checks = run_dns(project, zone(GOOD_SPF, RELAY_SPF, GOOD_MX, txt(f"_dmarc.{DOMAIN}.", record)))
    assert checks["dmarc.record"].status is Status.FAIL and "not valid" in checks["dmarc.record"].message


def test_misaligned_domains(project: Path, keys: dict[str, tuple[Path, str]]) -> None:
    other_spf = txt("bounces.mailer.example.", "v=spf1 ip4:192.0.2.1 -all")
    other_mx = "bounces.mailer.example. 300 IN MX 10 mx.mailer.example."
    records = zone(other_spf, other_mx, GOOD_DMARC)
    checks = run_dns(project, records, bounce_address="harvest@bounces.mailer.example")
    assert checks["alignment.spf"].status is Status.FAIL and "does not align" in checks["alignment.spf"].message
    assert checks["alignment.dkim"].status is Status.FAIL and "DMARC fails" in checks["alignment.dkim"].message
    # With DKIM signing as the From domain, DMARC can pass: only a warning about SPF is left.
    key, public = keys["good"]
    signed = run_dns(project, records + dkim_record(public) + "\n", bounce_address="harvest@bounces.mailer.example",
                     dkim_key_path=str(key), dkim_selector="s1")  # fmt: skip
    assert signed["alignment.spf"].status is Status.WARN and signed["alignment.dkim"].status is Status.OK


@pytest.mark.parametrize("mode", ["s", "S"])  # tag values are case-insensitive
def test_strict_alignment_from_the_dmarc_record(project: Path, mode: str) -> None:
    strict = txt(f"_dmarc.{DOMAIN}.", f"v=DMARC1; p=reject; aspf={mode}; rua=mailto:d@harvest.example")
    bounce = zone(
        txt("bounces.harvest.example.", "v=spf1 -all"), "bounces.harvest.example. 300 IN MX 10 m.example.", strict
    )
    checks = run_dns(project, bounce, bounce_address="b@bounces.harvest.example")
    assert checks["alignment.spf"].status is Status.FAIL and "strict" in checks["alignment.spf"].message


def test_no_mx(project: Path) -> None:
    checks = run_dns(project, zone(GOOD_SPF, RELAY_SPF, GOOD_DMARC))
    assert checks["mx.records"].status is Status.FAIL and "no MX record" in checks["mx.records"].message
    null_mx = run_dns(project, zone(GOOD_SPF, RELAY_SPF, GOOD_DMARC, f"{DOMAIN}. 300 IN MX 0 ."))
    assert null_mx["mx.records"].status is Status.FAIL and "null MX" in null_mx["mx.records"].message


def test_a_server_that_never_answers_says_so_once_per_check(project: Path) -> None:
    with silent_dns_server() as servers:
        settings = news_settings(project, dns_servers=servers, bounce_address="b@bounces.mailer.example")
        started = time.monotonic()
        checks = {c.id: c for c in dns_checks(settings, Resolver(servers, Deadline(20), timeout=1.0))}
        elapsed = time.monotonic() - started
    not_checked = {i for i, c in checks.items() if c.message.startswith("Not checked: no DNS server answered")}
    assert not_checked == {"spf.count", "dmarc.record", "mx.records"}
    assert all(checks[i].status is Status.FAIL and "dns_servers" in checks[i].fix for i in not_checked)
    assert "offline" in checks["mx.records"].message  # after the first timeout, the rest say so at once
    assert checks["alignment.spf"].status is Status.FAIL  # needs no network: the domains do not align
    assert elapsed < 10  # one 1-second timeout, not one per lookup


def test_zones_that_never_answer_run_into_the_deadline(project: Path) -> None:
    """The domain answers, but its SPF includes and its DMARC record live in zones whose servers are down."""
    spf = txt(f"{DOMAIN}.", "v=spf1 include:a.down.example include:b.down.example -all")
    with dns_server(zone(spf, GOOD_DMARC, GOOD_MX), hang=("down.example", f"_dmarc.{DOMAIN}")) as servers:
        settings = news_settings(project, dns_servers=servers)
        started = time.monotonic()
        checks = {c.id: c for c in dns_checks(settings, Resolver(servers, Deadline(1.5), timeout=1.0))}
        elapsed = time.monotonic() - started
    assert checks["spf.count"].status is Status.OK  # answered before anything hung
    assert checks["spf.lookups"].message.startswith("Not checked: no DNS server answered within 1 s")
    assert checks["dmarc.record"].message.startswith("Not checked: no DNS server answered")  # the 0.5 s left
    assert checks["mx.records"].message == "Not checked: the doctor ran out of time before this lookup."
    assert elapsed < 3


def test_a_server_that_answers_with_errors(project: Path) -> None:
    with failing_dns_server() as servers:
        settings = news_settings(project, dns_servers=servers)
        failing = {c.id: c for c in dns_checks(settings, Resolver(servers, Deadline(20)))}
    assert failing["spf.count"].message.startswith("Not checked: the DNS servers answered")
    assert "whoever hosts its DNS" in failing["mx.records"].fix


def test_the_whole_command_ends_without_any_dns_answer(project: Path) -> None:
    """No DNS server answers at all: the real command, in its own process, still ends within 30 s."""
    with silent_dns_server() as servers:
        result = subprocess.run(
            [sys.executable, "-m", "newsletter", "--project", str(project), "doctor", "--json"],
            env={"NEWSLETTER_DNS_SERVERS": servers, "PATH": "/usr/bin:/bin", "HOME": str(project)},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    checks = {c["id"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["spf.count"]["message"].startswith("Not checked: no DNS server answered")
    assert checks["list.unsubscribe"]["status"] == "ok"  # what needs no network is still checked


def test_dns_servers_setting() -> None:
    assert parse_dns_servers("127.0.0.1:5353, [::1]:53,192.0.2.1") == [
        ("127.0.0.1", 5353),
        ("::1", 53),
        ("192.0.2.1", 53),
    ]
    assert parse_dns_servers("") == []
    for bad in ("dns.example:53", "127.0.0.1:99999", "127.0.0.1:x"):
        with pytest.raises(ConfigError):
            parse_dns_servers(bad)


def test_bad_dns_servers_is_a_one_line_error(newsletter: Newsletter) -> None:
    result = newsletter("doctor", env={"NEWSLETTER_DNS_SERVERS": "resolver.example:53"})
    assert result.exit_code == 1 and result.output.strip().startswith("Error: dns_servers:")
    assert "Traceback" not in result.output


def test_settings_carry_bounce_address_and_dns_servers() -> None:
    names = Settings.setting_names()
    assert names.index("bounce_address") == names.index("reply_to") + 1
    assert "dns_servers" in names
