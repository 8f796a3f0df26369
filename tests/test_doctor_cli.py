"""`newsletter doctor` end to end: a setup with nothing wrong exits 0, one broken record exits 1; the
JSON is exactly {"checks": [{"id", "status", "message", "fix"}]}."""

from __future__ import annotations

import json
import re
from pathlib import Path

from newsletter.doctor.report import AREAS
from tests.conftest import Newsletter
from tests.support.campaigns import FAQ_CAMPAIGN, write_campaign
from tests.support.dkim_keys import rsa_key
from tests.support.dns_server import dns_server, txt, zone
from tests.support.smtp_servers import RecordingHandler, smtp_server

DOMAIN = "harvest.example"  # the project fixture's From: news@harvest.example


def healthy_zone(public_key: str, *, dmarc: bool = True) -> str:
    lines = [
        txt(f"{DOMAIN}.", "v=spf1 ip4:127.0.0.1 -all"),
        txt(f"s1._domainkey.{DOMAIN}.", f"v=DKIM1; k=rsa; p={public_key}"),
        f"{DOMAIN}. 300 IN MX 10 mail.{DOMAIN}.",
    ]
    if dmarc:
        lines.append(txt(f"_dmarc.{DOMAIN}.", f"v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN}"))
    return zone(*lines)


def run(newsletter: Newsletter, tmp_path: Path, *args: str, dmarc: bool = True) -> tuple[int, str]:
    write_campaign(newsletter.project, "faq", FAQ_CAMPAIGN)
    key, public = rsa_key(tmp_path, 2048)
    with dns_server(healthy_zone(public, dmarc=dmarc)) as servers, smtp_server(RecordingHandler()) as relay:
        env = {
            "NEWSLETTER_DNS_SERVERS": servers,
            "NEWSLETTER_TRANSPORT": relay.url(),
            "NEWSLETTER_DKIM_KEY_PATH": str(key),
            "NEWSLETTER_DKIM_SELECTOR": "s1",
        }
        result = newsletter("doctor", *args, env=env)
    return result.exit_code, result.output


def test_a_healthy_setup_exits_0_with_one_line_per_check(newsletter: Newsletter, tmp_path: Path) -> None:
    code, output = run(newsletter, tmp_path)
    assert code == 0, output
    lines = [line for line in output.splitlines() if re.match(r"(ok|warn|fail) ", line)]
    assert lines and all(line.startswith("ok ") for line in lines), output
    ids = [line.split()[1] for line in lines]
    assert len(ids) == len(set(ids)) >= 16
    assert {i.split(".")[0] for i in ids} == set(AREAS)
    assert re.search(r"^\d+ ok, 0 warn, 0 fail\.$", output, flags=re.M)


def test_the_json_report_and_exit_1_on_a_failure(newsletter: Newsletter, tmp_path: Path) -> None:
    code, output = run(newsletter, tmp_path, "--json", dmarc=False)
    assert code == 1
    data = json.loads(output)
    assert list(data) == ["checks"]
    for check in data["checks"]:
        assert list(check) == ["id", "status", "message", "fix"]
        assert check["id"].split(".")[0] in AREAS and check["status"] in ("ok", "warn", "fail")
        assert (check["fix"] != "") == (check["status"] != "ok")
    failed = [c["id"] for c in data["checks"] if c["status"] == "fail"]
    assert failed == ["dmarc.record"]
