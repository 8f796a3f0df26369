"""Rendering once per campaign: templates, the sandbox, the layout's promises, personalisation."""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest

import newsletter.campaigns.render as render_module
from newsletter.campaigns.content import Campaign, load_campaign, parse_campaign
from newsletter.campaigns.render import (
    NAME_FALLBACK,
    PersonalFieldError,
    RenderedCampaign,
    RenderError,
    render_campaign,
)
from newsletter.campaigns.templating import (
    PACKAGE_TEMPLATES,
    RenderLimits,
    TemplateRenderError,
    make_environment,
    render_template,
)
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from tests.support.calls import CallCounter

REPO = Path(__file__).resolve().parents[1]
BASE = "https://news.harvest.example"
FIELDS = {
    "name": "Ana",
    "unsubscribe_url": f"{BASE}/unsubscribe/tok123?c=faq&x=1",
    "preferences_url": f"{BASE}/preferences/tok123",
}

CAMPAIGN = """\
---
subject: Can I get addicted to ketamine?
audience: [faq-updates]
---
Intro with a [link to the FAQ](https://harvest.example/faq) and **bold** text.

::: faq Can I get addicted to ketamine?
Researchers reviewed 83 studies.

1. First point
2. Second point
:::

::: vignette
A client wanted to change a habit.
:::
"""


def settings_for(project_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "organisation": "Harvest",
        "postal_address": "100 Example Street, Springfield, ZZ 00000",
        "from_address": "news@harvest.example",
        "public_base_url": BASE,
    }
    values.update(overrides)
    return Settings(project_dir=project_dir, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path)


def campaign(text: str = CAMPAIGN, slug: str = "faq-addiction") -> Campaign:
    return parse_campaign(text, slug=slug)


def project_template(settings: Settings, name: str, text: str) -> None:
    path = settings.templates_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- the template loader -------------------------------------------------------------------------


def test_project_templates_come_first_and_default_prefix_reaches_the_package(settings: Settings) -> None:
    project_template(settings, "layout.txt.j2", "project text layout\n")
    env = make_environment(settings.templates_path)
    assert render_template(env, "layout.txt.j2", {}) == "project text layout\n"
    default = env.get_template("default:layout.txt.j2")
    assert Path(default.filename or "") == PACKAGE_TEMPLATES / "layout.txt.j2"
    # A name the project does not override falls through to the package.
    assert Path(env.get_template("blocks/faq.txt.j2").filename or "") == PACKAGE_TEMPLATES / "blocks/faq.txt.j2"


def test_project_layout_extends_the_default(settings: Settings) -> None:
    project_template(
        settings,
        "layout.mjml.j2",
        '{% extends "default:layout.mjml.j2" %}\n'
        '{% block body_attributes %}background-color="#abcdef" width="600px"{% endblock %}',
    )
    html, _ = render_campaign(campaign(), settings).personalise(FIELDS)
    assert "#abcdef" in html
    assert "988" in html  # the rest of the default layout is still there


def test_project_partial_is_used_by_the_default_layout(settings: Settings) -> None:
    project_template(settings, "blocks/vignette.txt.j2", "STORY: {{ block.text }}\n")
    _, text = render_campaign(campaign(), settings).personalise(FIELDS)
    assert "STORY: A client wanted to change a habit." in text


def test_self_extending_template_is_a_clear_error(settings: Settings) -> None:
    project_template(settings, "layout.txt.j2", '{% extends "layout.txt.j2" %}')
    with pytest.raises(TemplateRenderError, match="default:NAME"):
        render_campaign(campaign(), settings)


def test_unknown_template_names_what_is_missing(settings: Settings) -> None:
    text = CAMPAIGN.replace("audience:", "template: spring\naudience:")
    with pytest.raises(TemplateRenderError, match=r"'layouts/spring\.mjml\.j2' not found"):
        render_campaign(campaign(text), settings)


def test_named_template_from_layouts_folder(settings: Settings) -> None:
    project_template(settings, "layouts/spring.mjml.j2", '{% extends "default:layout.mjml.j2" %}')
    project_template(settings, "layouts/spring.txt.j2", '{% extends "default:layout.txt.j2" %}')
    text = CAMPAIGN.replace("audience:", "template: spring\naudience:")
    assert "Researchers reviewed 83 studies." in render_campaign(campaign(text), settings).text


def test_template_syntax_error_names_file_and_line(settings: Settings) -> None:
    project_template(settings, "blocks/faq.txt.j2", "line one\n{% if %}\n")
    with pytest.raises(TemplateRenderError, match=r"templates/blocks/faq.txt.j2:2: "):
        render_campaign(campaign(), settings)


def test_undefined_variables_are_errors(settings: Settings) -> None:
    project_template(settings, "blocks/faq.txt.j2", "{{ block.answer }}\n")
    with pytest.raises(TemplateRenderError, match=r"templates/blocks/faq.txt.j2:1: .*answer"):
        render_campaign(campaign(), settings)


def test_mjml_parse_errors_become_newsletter_errors(settings: Settings) -> None:
    project_template(settings, "layout.mjml.j2", "<mjml><mj-body><mj-section></mjml>")
    with pytest.raises(TemplateRenderError, match="does not compile") as info:
        render_campaign(campaign(), settings)
    assert isinstance(info.value, NewsletterError)


# --- the sandbox -----------------------------------------------------------------------------------


def sandbox_render(source: str, context: dict[str, Any] | None = None, **limits: Any) -> str:
    env = make_environment(Path("/nonexistent"), RenderLimits(**limits) if limits else None)
    return render_template(env, env.from_string(source), context or {})


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ x.__class__.__init__.__globals__ }}",
        "{{ x|attr('__class__') }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ x.append(1) }}",  # immutable sandbox
    ],
)
def test_sandbox_blocks_unsafe_attribute_access(source: str) -> None:
    with pytest.raises(TemplateRenderError, match=r"unsafe|not safely callable|undefined"):
        sandbox_render(source, {"x": []})


def test_infinite_range_is_a_clear_error_not_a_hang() -> None:
    with pytest.raises(TemplateRenderError, match=r"<template>:1: range\(\) would produce 1,000,000,000 items"):
        sandbox_render("{% for i in range(10**9) %}x{% endfor %}")


def test_nested_ranges_share_one_budget() -> None:
    with pytest.raises(TemplateRenderError, match="range"):
        sandbox_render("{% for i in range(90000) %}{% for j in range(90000) %}{% endfor %}{% endfor %}")


def test_concatenation_counts_against_the_budget() -> None:
    """A recursive macro doubling a string with ~ and printing only its length: nothing large is ever
    output, so only counting the concatenations themselves stops it (it once built 1 GiB)."""
    doubling = "{% macro m(s, n) %}{% if n %}{{ m(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}{% endmacro %}"
    assert sandbox_render(doubling + "{{ m('x', 10) }}") == "1024"  # small work is fine
    with pytest.raises(TemplateRenderError, match=r"larger than the limit|more than .* characters of values"):
        sandbox_render(doubling + "{{ m('x', 25) }}")


def test_many_small_concatenations_share_one_budget() -> None:
    with pytest.raises(TemplateRenderError, match="characters of values"):
        sandbox_render("{% for i in range(2000) %}{% set s = 'x' * 9000 ~ i %}{% endfor %}", max_work=10_000_000)


def test_concatenation_escapes_like_jinja() -> None:
    assert sandbox_render("{{ 'a' ~ 1 ~ x }}", {"x": "<b>"}) == "a1&lt;b&gt;"


def test_huge_string_is_a_clear_error() -> None:
    with pytest.raises(TemplateRenderError, match="larger than the limit"):
        sandbox_render('{{ "x" * 10**9 }}')


@pytest.mark.parametrize(
    "source",
    [
        "{{ 10 ** 100000 }}",
        '{{ "x"|center(10**9) }}',
        '{% set ns = namespace(s="x") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}',
        "{% for i in range(99999) %}{{ 'x' * 1000 }}{% endfor %}",
        "{{ lipsum(10**6) }}",
        # Literal arguments: Jinja would fold these at compile time, outside any budget.
        '{{ "x"|center(1000000000) }}',
        '{{ "%01000000000d"|format(1) }}',
        '{{ "%01000000000d" % 1 }}',
        '{{ "%*d" % (10**9, 1) }}',
        '{{ "{:>1000000000}".format(1) }}',
        '{{ "{:>{w}}".format(1, w=10**9) }}',
    ],
)
def test_other_ways_to_make_huge_output_are_stopped(source: str) -> None:
    with pytest.raises(TemplateRenderError, match=r"limit|too large|larger than|'lipsum' is undefined"):
        sandbox_render(source)


def test_output_cap_stops_rendering() -> None:
    with pytest.raises(TemplateRenderError, match="output is larger than 1,000 characters"):
        sandbox_render("{% for i in range(100) %}{{ 'x' * 50 }}{% endfor %}", max_output=1000)


def test_recursive_macro_is_a_clear_error() -> None:
    with pytest.raises(TemplateRenderError, match="without end"):
        sandbox_render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")


def test_autoescape_is_on_for_mjml_and_off_for_text(settings: Settings) -> None:
    project_template(settings, "probe.mjml.j2", "{{ value }}")
    project_template(settings, "probe.txt.j2", "{{ value }}")
    env = make_environment(settings.templates_path)
    assert render_template(env, "probe.mjml.j2", {"value": "Q&A <b>"}) == "Q&amp;A &lt;b&gt;"
    assert render_template(env, "probe.txt.j2", {"value": "Q&A <b>"}) == "Q&A <b>"


def test_sandbox_still_renders_ordinary_templates() -> None:
    out = sandbox_render(
        "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}"
        "{{ ns.n }} {{ 'ab' * 2 }} {{ 2 ** 10 }} {{ 'x'|center(5) }}|{{ [1, 2] + [3] }} "
        "{{ '%05.1f' % 3.14159 }} {{ '{:>3}'.format(7) }} {{ '%d items'|format(3) }} {{ 7 % 3 }}"
    )
    assert out == "3 abab 1024   x  |[1, 2, 3] 003.1   7 3 items 1"


# --- personal fields ------------------------------------------------------------------------------


def test_template_cannot_test_a_personal_field(settings: Settings) -> None:
    project_template(settings, "layout.txt.j2", "{% if name %}Hi {{ name }}{% endif %}\n")
    with pytest.raises(TemplateRenderError, match="cannot test them"):
        render_campaign(campaign(), settings)


def test_template_cannot_transform_a_personal_field(settings: Settings) -> None:
    project_template(settings, "layout.txt.j2", "Hi {{ name|upper }} {{ unsubscribe_url }}\n")
    with pytest.raises(RenderError, match="changes a personal field"):
        render_campaign(campaign(), settings)


def test_layout_without_unsubscribe_link_is_refused(settings: Settings) -> None:
    project_template(settings, "layout.txt.j2", "Hello {{ name }}\n")
    with pytest.raises(RenderError, match="unsubscribe_url"):
        render_campaign(campaign(), settings)


@pytest.mark.parametrize("name", ["{{7*7}}", "<script>alert(1)</script>", "{% raw %}", "Ana & \"Bo\" 'C'", "⟦nl⟧ Zoë"])
def test_names_stay_literal_in_both_parts(settings: Settings, name: str) -> None:
    rendered = render_campaign(campaign(), settings)
    html, text = rendered.personalise({**FIELDS, "name": name})
    assert f"Hello {name}," in text
    assert f"Hello {_escape(name)}," in html
    assert "<script" not in html
    assert "49" not in html.replace(FIELDS["unsubscribe_url"], "")


def _escape(value: str) -> str:
    return html_lib.escape(value, quote=True)


def test_empty_name_uses_the_fallback(settings: Settings) -> None:
    rendered = render_campaign(campaign(), settings)
    for name in ("", "   ", None):
        _, text = rendered.personalise({**FIELDS, "name": name})  # type: ignore[dict-item]
        assert f"Hello {NAME_FALLBACK}," in text


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "https://x.example/a b",
        'https://x.example/"><script>',
        "https://x.example/\r\nBcc: x",
        "/relative",
        "https://exämple.example/",
    ],
)
def test_bad_personal_urls_are_refused(settings: Settings, url: str) -> None:
    rendered = render_campaign(campaign(), settings)
    with pytest.raises(PersonalFieldError):
        rendered.personalise({**FIELDS, "unsubscribe_url": url})


def test_missing_personal_field_is_refused(settings: Settings) -> None:
    rendered = render_campaign(campaign(), settings)
    with pytest.raises(PersonalFieldError, match="preferences_url"):
        rendered.personalise({"name": "Ana", "unsubscribe_url": FIELDS["unsubscribe_url"]})


def test_url_values_are_escaped_in_html(settings: Settings) -> None:
    html, text = render_campaign(campaign(), settings).personalise(FIELDS)
    assert 'href="https://news.harvest.example/unsubscribe/tok123?c=faq&amp;x=1"' in html
    assert "Unsubscribe:\nhttps://news.harvest.example/unsubscribe/tok123?c=faq&x=1\n" in text


def test_placeholders_are_unguessable(settings: Settings) -> None:
    one = render_campaign(campaign(), settings).placeholders
    two = render_campaign(campaign(), settings).placeholders
    assert set(one) == {"name", "unsubscribe_url", "preferences_url"}
    assert not set(one.values()) & set(two.values())
    assert all(re.fullmatch(r"[A-Za-z0-9]+", token) for token in one.values())


def test_personalise_does_not_render_again(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    mjml = CallCounter(render_module.mjml2html)
    jinja = CallCounter(jinja2.Template.generate)
    monkeypatch.setattr(render_module, "mjml2html", mjml)
    monkeypatch.setattr(jinja2.Template, "generate", lambda self, *a, **k: jinja(self, *a, **k))
    rendered = render_campaign(campaign(), settings)
    assert mjml.calls == 1
    assert jinja.calls == 2  # the MJML layout and the text layout, once each
    for n in range(50):
        rendered.personalise({**FIELDS, "name": f"Reader {n}"})
    assert (mjml.calls, jinja.calls) == (1, 2)


# --- what every email must contain ----------------------------------------------------------------


@pytest.fixture
def rendered(settings: Settings) -> RenderedCampaign:
    return render_campaign(campaign(), settings)


def test_layout_has_everything_required(rendered: RenderedCampaign, settings: Settings) -> None:
    html, text = rendered.personalise(FIELDS)
    assert '<html lang="en"' in html
    assert "Harvest" in html
    assert "100 Example Street, Springfield, ZZ 00000" in html and "100 Example Street" in text
    for part in (html, text):
        assert "not medical advice" in part
        assert "call or text 988" in part
    assert f'href="{_escape(FIELDS["unsubscribe_url"])}"' in html
    assert f'href="{FIELDS["preferences_url"]}"' in html
    assert re.search(r">\s*Unsubscribe\s*<", html)
    assert f'href="{BASE}/archive/faq-addiction"' in html
    assert f"{BASE}/archive/faq-addiction" in text
    assert rendered.archive_url == f"{BASE}/archive/faq-addiction"


def test_preheader_is_a_hidden_preview(settings: Settings) -> None:
    text = CAMPAIGN.replace("audience:", "preheader: What 83 studies found.\naudience:")
    html, _ = render_campaign(campaign(text), settings).personalise(FIELDS)
    assert re.search(r'<div style="display:none;[^"]*">What 83 studies found.</div>', html)


def test_missing_preheader_falls_back_to_the_opening_words(rendered: RenderedCampaign) -> None:
    assert rendered.preheader.startswith("Intro with a link to the FAQ (https://harvest.example/faq)")


def test_no_tracking_no_remote_fonts_no_images(rendered: RenderedCampaign) -> None:
    html, _ = rendered.personalise(FIELDS)
    assert "googleapis" not in html and "@import" not in html and "<link" not in html
    assert "<img" not in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith("https://") for h in hrefs)


def test_content_html_is_escaped_and_template_syntax_is_inert(settings: Settings) -> None:
    text = (
        "---\nsubject: '{{ 7*7 }} <b>'\n---\n"
        "<script>alert(1)</script> {{ 7*7 }} {% raw %} </mj-text><mj-raw><script>x</script></mj-raw>\n\n"
        "[click](javascript:alert(1))\n\n"
        "::: faq Is <i>this</i> {{ 7*7 }}?\nYes.\n:::\n"
    )
    html, plain = render_campaign(campaign(text), settings).personalise(FIELDS)
    assert "<script" not in html and "<mj-" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("{{ 7*7 }}") >= 3 and "49" not in html.replace("tok123", "")
    assert "javascript:" not in html.split("</head>")[1].replace("[click](javascript:alert(1))", "")
    assert "{{ 7*7 }} <b>" in plain and "<script>alert(1)</script>" in plain


def test_missing_postal_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="postal_address"):
        render_campaign(campaign(), settings_for(tmp_path, postal_address=""))


def test_mjml_source_is_kept(rendered: RenderedCampaign) -> None:
    assert rendered.mjml.lstrip().startswith('<mjml lang="en">')
    assert rendered.placeholders["name"] in rendered.mjml
    assert rendered.placeholders["name"] in rendered.html


def test_preview_has_no_personal_data(rendered: RenderedCampaign) -> None:
    html, text = rendered.preview()
    assert f"Hello {NAME_FALLBACK}," in text
    assert f"{BASE}/unsubscribe" in html
    assert not any(token in html + text for token in rendered.placeholders.values())


# --- the text alternative -------------------------------------------------------------------------


def test_text_alternative_is_written_from_markdown(rendered: RenderedCampaign) -> None:
    _, text = rendered.personalise(FIELDS)
    assert "Can I get addicted to ketamine?\n-------------------------------\n" in text
    assert "link to the FAQ (https://harvest.example/faq)" in text
    assert "1. First point\n2. Second point" in text
    assert "**" not in text and "<" not in text
    assert "Hello Ana," in text
    long_lines = [line for line in text.split("\n") if len(line) > 72 and " " in line.strip()]
    assert long_lines == []


def test_text_wraps_paragraphs_at_72_columns(settings: Settings) -> None:
    words = " ".join(["therapy"] * 60)
    text = f"---\nsubject: Hi\n---\n{words}\n\n> quoted {words}\n\n- item {words}\n"
    _, plain = render_campaign(campaign(text), settings).personalise(FIELDS)
    body = plain.split("Hello Ana,")[1].split("--\n")[0]
    assert max(len(line) for line in body.split("\n")) <= 72
    assert "\n> therapy" in body and "\n  therapy" in body


# --- the clinic's campaigns -----------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["faq-addiction", "client-stories"])
def test_seed_campaigns_render_under_90_kb(slug: str) -> None:
    settings = settings_for(REPO)
    rendered = render_campaign(load_campaign(slug, settings), settings)
    html, text = rendered.personalise(FIELDS)
    assert len(html.encode("utf-8")) < 90_000
    assert "988" in text and "Hello Ana," in text
