"""Property tests of the campaign parser, lint and the first build, on generated campaign files.

Invariants: no traceback (a file either loads or is refused with one CampaignError line), lint
always answers, every header-bound field is clean, one recipient per message, and nothing typed
into a campaign is ever run as template code. The budget here is small enough for `make test`;
`make fuzz` runs the same properties with the `fuzz` Hypothesis profile (see conftest.py).
"""

from __future__ import annotations

import email
import email.policy
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from newsletter.campaigns.content import Campaign, CampaignError, parse_campaign
from newsletter.campaigns.lint import lint_campaign
from newsletter.campaigns.render import render_campaign
from newsletter.delivery.mime import MessageFactory
from newsletter.errors import NewsletterError
from tests.support.campaigns import clinic_settings

SETTINGS = clinic_settings(Path(tempfile.mkdtemp(prefix="fuzz-campaigns-")))
TEMPLATE_BAIT = ["{{ 7*7 }}", "{% for i in range(3) %}x{% endfor %}", "{{ config }}", "{#", "{%", "}}"]
HEADER_BAIT = ["\r\nBcc: victim@example.org", "=?UTF-8?Q?=0A?=Bcc: x@example.org", "\u2028", "\x00", "\u202e"]

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
printable = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=60
)
bait = st.sampled_from(TEMPLATE_BAIT + HEADER_BAIT + ["", " ", "---", ":::", "::: faq"])
words = st.one_of(printable, printable, text, bait, st.tuples(printable, bait).map("".join))
yaml_scalar = st.one_of(words, st.integers(), st.booleans(), st.none(), st.lists(words, max_size=3))
tag = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
front_matter = st.fixed_dictionaries(
    {"subject": st.one_of(printable, words)},
    optional={
        "preheader": st.one_of(printable, words),
        "audience": st.one_of(*[st.lists(tag, max_size=3)] * 4, st.lists(words, max_size=2), words),
        "send_at": st.one_of(*[st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())] * 4, words),
        "template": st.one_of(*[st.just("default")] * 6, words),
        "deid": st.one_of(
            st.none(),
            st.fixed_dictionaries({}, optional={"deny": st.lists(printable, max_size=2)}),
            st.dictionaries(st.sampled_from(["deny", "accept", "signoff", "other"]), yaml_scalar),
        ),
    },
)
block = st.one_of(
    words.map(lambda w: w + "\n"),
    st.tuples(words, words).map(lambda qa: f"::: faq {qa[0]}\n{qa[1]}\n:::\n"),
    words.map(lambda w: f"::: vignette\n{w}\n:::\n"),
    words.filter(lambda w: "\n" not in w).map(lambda w: f"::: {w}\n:::\n"),
    st.sampled_from(
        ["<script>alert(1)</script>\n", "[x](javascript:alert(1))\n", "![i](https://evil.example/p.gif)\n"]
    ),
)


def as_yaml(value: object) -> str:
    import yaml

    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)


def campaign_file(meta: dict[str, object], blocks: list[str], raw_front: str | None) -> str:
    front = raw_front if raw_front is not None else as_yaml(meta)
    return "---\n" + front + "---\n" + "\n".join(blocks)


def load(source: str) -> Campaign | None:
    try:
        campaign = parse_campaign(source, slug="fuzz")
    except CampaignError as exc:
        message = str(exc)
        event("refused")
    else:
        event("loaded")
        return campaign
    assert "\n" not in message and "Traceback" not in message
    return None


@hypothesis_settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    meta=st.one_of(front_matter, front_matter.map(lambda m: {**m, "unknown": "x"})),
    blocks=st.lists(block, min_size=1, max_size=5),
    raw_front=st.one_of(st.none(), st.none(), st.none(), words),
)
@example(meta={"subject": "Hi"}, blocks=["::: faq {{ 7*7 }}\n{% raw %}\n:::\n"], raw_front=None)
@example(meta={"subject": "x"}, blocks=[], raw_front="subject: [unclosed\n")
def test_a_campaign_file_loads_or_is_refused_in_one_line(
    meta: dict[str, object], blocks: list[str], raw_front: str | None
) -> None:
    campaign = load(campaign_file(meta, blocks, raw_front))
    if campaign is None:
        return
    assert "\n" not in campaign.subject and "\r" not in campaign.subject
    report = lint_campaign(campaign, SETTINGS)  # lint answers, whatever the file
    assert all(issue.check and issue.message for issue in report.errors + report.warnings)


@hypothesis_settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(subject=words, body=st.lists(block, min_size=1, max_size=4), name=words)
@example(subject="Hello {{ 7*7 }}", body=["{{ 7*7 }} and {% if true %}yes{% endif %}\n"], name="{{ 7*7 }}")
@example(subject="=?UTF-8?Q?=0A?=Bcc: x@example.org", body=["x\n"], name="\r\nBcc: victim@example.org")
def test_what_a_campaign_says_is_never_template_code_and_headers_stay_clean(
    subject: str, body: list[str], name: str
) -> None:
    campaign = load(campaign_file({"subject": subject}, body, None))
    if campaign is None:
        return
    try:
        rendered = render_campaign(campaign, SETTINGS)
    except NewsletterError:
        event("render refused")
        return  # refused in one line, e.g. an MJML the compiler rejects
    event("rendered")
    data = MessageFactory(rendered, SETTINGS).build(
        "ana@example.org", name, "https://x.example/u", "https://x.example/p"
    )
    head, _, _ = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert all(line[:1] in (b" ", b"\t") or b":" in line for line in lines)  # no stray header line
    names = [line.split(b":", 1)[0].lower() for line in lines if line[:1] not in (b" ", b"\t")]
    assert b"bcc" not in names and b"cc" not in names and names.count(b"to") == 1
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert "\n" not in str(message["Subject"]) and len(message["To"].addresses) == 1
    for source in TEMPLATE_BAIT[:2]:
        if any(source in part for part in body):
            assert "49" not in rendered.text or "{{ 7*7 }}" in rendered.text  # shown, not evaluated
