"""Campaign files: front matter, typed blocks, line numbers, and every way a file can be wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.campaigns.content import (
    CampaignError,
    CampaignNotFound,
    load_campaign,
    parse_campaign,
)
from newsletter.campaigns.scaffold import scaffold_campaign
from newsletter.config import Settings
from newsletter.errors import NewsletterError, NotFound

REPO = Path(__file__).resolve().parents[1]

CAMPAIGN = """\
---
subject: Can I get addicted to ketamine?
preheader: What 83 studies found.
audience: [faq-updates, news]
deid:
  reviewed_by: reviewer@example.org
---
An intro paragraph with a [link](https://harvest.example/faq).

::: faq Can I get addicted to ketamine?
The answer, in *Markdown*.

- one
- two
:::

Free Markdown between blocks.

::: vignette
A client wanted to change a habit.
Second line of the story.
:::
"""


def settings_for(project_dir: Path) -> Settings:
    return Settings(
        project_dir=project_dir,
        organisation="Harvest",
        postal_address="100 Example Street, Springfield, ZZ 00000",
        from_address="news@harvest.example",
        public_base_url="https://news.harvest.example",
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "campaigns").mkdir()
    return settings_for(tmp_path)


def write(settings: Settings, slug: str, text: str | bytes) -> Path:
    path = settings.campaigns_path / f"{slug}.md"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --- parsing -------------------------------------------------------------------------------------


def test_front_matter_fields_and_defaults() -> None:
    campaign = parse_campaign(CAMPAIGN, slug="faq-addiction")
    assert campaign.slug == "faq-addiction"
    assert campaign.subject == "Can I get addicted to ketamine?"
    assert campaign.preheader == "What 83 studies found."
    assert campaign.template == "default"
    assert campaign.audience == ("faq-updates", "news")
    assert campaign.send_at is None
    # Review data handled elsewhere survives untouched.
    assert campaign.front_matter["deid"] == {"reviewed_by": "reviewer@example.org"}


def test_minimal_front_matter_means_everyone_and_default_template() -> None:
    campaign = parse_campaign("---\nsubject: Hi\n---\nHello.\n", slug="x")
    assert campaign.audience == ()
    assert campaign.template == "default"
    assert campaign.preheader == ""


def test_blocks_in_file_order_with_free_markdown_between() -> None:
    campaign = parse_campaign(CAMPAIGN, slug="x")
    assert [b.kind for b in campaign.blocks] == ["prose", "faq", "prose", "vignette"]
    faq = campaign.faqs[0]
    assert faq.argument == faq.question == "Can I get addicted to ketamine?"
    assert faq.source == "The answer, in *Markdown*.\n\n- one\n- two"
    assert campaign.blocks[2].source == "Free Markdown between blocks."
    assert campaign.vignettes[0].argument == ""
    assert campaign.vignettes[0].question == ""


def test_line_numbers_count_the_front_matter() -> None:
    campaign = parse_campaign(CAMPAIGN, slug="x")
    file_lines = CAMPAIGN.split("\n")
    intro, faq, between, vignette = campaign.blocks
    assert campaign.body_line == 8
    assert intro.line == 8 and file_lines[intro.line - 1].startswith("An intro paragraph")
    assert faq.line == 10 and file_lines[faq.line - 1] == "::: faq Can I get addicted to ketamine?"
    assert faq.source_line == 11
    assert faq.end_line == 15 and file_lines[faq.end_line - 1] == ":::"
    assert between.line == 17
    assert vignette.line == 19 and vignette.source_line == 20 and vignette.end_line == 22


def test_vignette_source_is_verbatim_and_maps_back_to_file_lines() -> None:
    campaign = parse_campaign(CAMPAIGN, slug="x")
    vignette = campaign.vignettes[0]
    file_lines = CAMPAIGN.split("\n")
    source_lines = vignette.source.split("\n")
    assert file_lines[vignette.source_line - 1 : vignette.source_line - 1 + len(source_lines)] == source_lines
    # What the de-identification gate does with a finding's offset:
    offset = vignette.source.index("Second")
    line = vignette.source_line + vignette.source.count("\n", 0, offset)
    assert file_lines[line - 1].startswith("Second line")


def test_blank_lines_after_front_matter_do_not_shift_line_numbers() -> None:
    text = "---\nsubject: Hi\n---\n\n\n::: vignette\nStory.\n:::\n"
    (block,) = parse_campaign(text, slug="x").blocks
    assert block.line == 6 and text.split("\n")[block.line - 1] == "::: vignette"


def test_crlf_and_byte_order_mark_are_accepted() -> None:
    text = "\ufeff" + CAMPAIGN.replace("\n", "\r\n")
    campaign = parse_campaign(text, slug="x")
    assert campaign.faqs[0].line == 10
    assert "\r" not in campaign.vignettes[0].source


def test_send_at_with_offset() -> None:
    for value in ("2026-01-05T09:00:00-05:00", "'2026-01-05T09:00:00-05:00'", "2026-01-05T14:00:00Z"):
        campaign = parse_campaign(f"---\nsubject: Hi\nsend_at: {value}\n---\nx\n", slug="x")
        assert campaign.send_at == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


def test_raw_html_and_template_syntax_stay_content() -> None:
    text = "---\nsubject: Hi\n---\n<script>alert(1)</script> {{ 7*7 }} {% raw %}\n"
    (block,) = parse_campaign(text, slug="x").blocks
    assert "<script>" in block.source
    assert [t.type for t in block.tokens if t.type.startswith("html")] == []  # html is off


# --- resolving a slug or a path ------------------------------------------------------------------


def test_load_by_slug(settings: Settings) -> None:
    write(settings, "faq-addiction", CAMPAIGN)
    campaign = load_campaign("faq-addiction", settings)
    assert campaign.path == settings.campaigns_path / "faq-addiction.md"
    assert campaign.slug == "faq-addiction"


def test_load_by_path(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "drafts"
    elsewhere.mkdir()
    (elsewhere / "draft-one.md").write_text(CAMPAIGN, encoding="utf-8")
    assert load_campaign(elsewhere / "draft-one.md", settings).slug == "draft-one"
    assert load_campaign(str(elsewhere / "draft-one.md"), settings).slug == "draft-one"
    monkeypatch.chdir(tmp_path)
    assert load_campaign("drafts/draft-one.md", settings).slug == "draft-one"


def test_missing_slug_says_where_it_looked(settings: Settings) -> None:
    with pytest.raises(CampaignNotFound) as info:
        load_campaign("no-such-campaign", settings)
    assert str(settings.campaigns_path / "no-such-campaign.md") in str(info.value)
    assert isinstance(info.value, NotFound) and isinstance(info.value, NewsletterError)


def test_missing_path_says_where_it_looked(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(CampaignNotFound, match=r"campaign file not found: .*nowhere\.md"):
        load_campaign(tmp_path / "nowhere.md", settings)


def test_a_path_without_its_md_suffix_gets_a_suggestion(settings: Settings) -> None:
    write(settings, "news", CAMPAIGN)
    with pytest.raises(CampaignNotFound, match=r"campaign file not found: .*news; did you mean campaigns/news\.md\?"):
        load_campaign("campaigns/news", settings)


@pytest.mark.parametrize("ref", ["Not A Slug", "news\n", "news\nx"])
def test_not_a_slug_or_path(settings: Settings, ref: str) -> None:
    write(settings, "news", CAMPAIGN)
    with pytest.raises(CampaignNotFound, match="not a slug"):
        load_campaign(ref, settings)


def test_file_name_must_be_a_slug(settings: Settings) -> None:
    path = write(settings, "Bad_Name", CAMPAIGN)
    with pytest.raises(CampaignError, match="not a usable campaign name"):
        load_campaign(path, settings)


def test_not_utf8_names_the_line(settings: Settings) -> None:
    write(settings, "latin1", "---\nsubject: Caf\u00e9\n---\nx\n".encode("latin-1"))
    with pytest.raises(CampaignError) as info:
        load_campaign("latin1", settings)
    assert "latin1.md:2: not UTF-8" in str(info.value)
    assert info.value.line == 2


# --- every bad input gives one clear line ---------------------------------------------------------

BAD = [
    ("just text, no front matter\n", "no front matter", 1),
    ("---\nsubject: Hi\nnever closed\n", "never closed", 1),
    ("---\nsubject: Hi\n  broken: [\n---\nx\n", "not valid YAML", 3),
    ("---\n- a list\n---\nx\n", "must be 'key: value' lines, not a list", 2),
    ("---\npreheader: no subject\n---\nx\n", "needs a non-empty 'subject'", None),
    ("---\nsubject: '   '\n---\nx\n", "needs a non-empty 'subject'", None),
    ("---\nsubject: 2026\n---\nx\n", "'subject' must be text, got number 2026", None),
    ("---\nsubject: yes\n---\nx\n", "'subject' must be text, got true/false", None),
    ("---\nsubject: |\n  two\n  lines\n---\nx\n", "'subject' must be one line", None),
    ("---\nsubject: Hi\npreheader: [a]\n---\nx\n", "'preheader' must be text", None),
    ("---\nsubject: Hi\naudience: faq-updates\n---\nx\n", "'audience' must be a list of tags", None),
    ("---\nsubject: Hi\naudience: [1]\n---\nx\n", "tags must be non-empty text", None),
    ("---\nsubject: Hi\ntemplate: ../etc\n---\nx\n", "'template' must be a template name", None),
    ("---\nsubject: Hi\nsend_at: 2026-01-05 09:00:00\n---\nx\n", "has no UTC offset", None),
    ("---\nsubject: Hi\nsend_at: '2026-01-05T09:00'\n---\nx\n", "has no UTC offset", None),
    ("---\nsubject: Hi\nsend_at: 2026-01-05\n---\nx\n", "not just a date", None),
    ("---\nsubject: Hi\nsend_at: soon\n---\nx\n", "not an ISO 8601 time", None),
    ("---\nsubject: Hi\nsend_at: 5\n---\nx\n", "must be an ISO 8601 time", None),
    ("---\nsubjet: Hi\n---\nx\n", "unknown front-matter key 'subjet' (did you mean 'subject'?)", None),
    ("---\nsubject: Hi\ncolour: red\n---\nx\n", "unknown front-matter key 'colour'", None),
    ("---\nsubject: Hi\n---\n\n", "no content", None),
    ("---\nsubject: Hi\n---\n", "no content", None),
    ("---\nsubject: Hi\n---\nIntro.\n\n::: recipe\nMix.\n:::\n", "unknown block kind 'recipe'", 6),
    ("---\nsubject: Hi\n---\n::: FAQ Why?\nx\n:::\n", "did you mean 'faq'?", 4),
    ("---\nsubject: Hi\n---\n::: faq\nNo question.\n:::\n", "needs its question", 4),
    ("---\nsubject: Hi\n---\n::: vignette Ana's story\nx\n:::\n", "takes nothing after its kind", 4),
    ("---\nsubject: Hi\n---\n::: vignette\n:::\n", "the vignette block is empty", 4),
    ("---\nsubject: Hi\n---\nIntro.\n\n::: vignette\nNo end.\n", "never closed", 6),
    ("---\nsubject: Hi\n---\nIntro.\n:::\n", "closes no block", 5),
    ("---\nsubject: Hi\n---\n::: vignette\nA\n\n::: faq Q?\nB\n:::\n:::\n", "cannot be nested", 7),
]


@pytest.mark.parametrize(("text", "message", "line"), BAD, ids=[b[1][:30] + f"-{i}" for i, b in enumerate(BAD)])
def test_bad_campaign_files(settings: Settings, text: str, message: str, line: int | None) -> None:
    write(settings, "bad", text)
    with pytest.raises(CampaignError) as info:
        load_campaign("bad", settings)
    error = info.value
    assert isinstance(error, NewsletterError)
    assert message in str(error)
    assert "\n" not in str(error), "one line for the CLI"
    assert str(error).startswith(str(settings.campaigns_path / "bad.md"))
    assert error.line == line


def test_a_directory_is_not_a_campaign(settings: Settings) -> None:
    (settings.campaigns_path / "folder.md").mkdir()
    with pytest.raises(CampaignNotFound):
        load_campaign("folder", settings)


# --- scaffolding ---------------------------------------------------------------------------------


def test_scaffold_loads_back(settings: Settings) -> None:
    text = scaffold_campaign("spring-update", faqs=["Can ketamine cure me?", "Is it: covered?"], vignette=True)
    write(settings, "spring-update", text)
    campaign = load_campaign("spring-update", settings)
    assert [b.kind for b in campaign.blocks] == ["prose", "faq", "faq", "vignette"]
    assert [b.question for b in campaign.faqs] == ["Can ketamine cure me?", "Is it: covered?"]
    assert campaign.subject == "Spring update"
    assert campaign.audience == ()


def test_scaffold_without_blocks() -> None:
    campaign = parse_campaign(scaffold_campaign("news", faqs=[], vignette=False), slug="news")
    assert [b.kind for b in campaign.blocks] == ["prose"]


@pytest.mark.parametrize("slug", ["", "Caps", "-lead", "has space", "a" * 65, "../up", "ünï", "news\n"])
def test_scaffold_refuses_bad_slugs(slug: str) -> None:
    with pytest.raises(CampaignError, match="not a valid campaign slug"):
        scaffold_campaign(slug, faqs=[], vignette=False)


def test_scaffold_refuses_multiline_questions() -> None:
    with pytest.raises(CampaignError, match="one non-empty line"):
        scaffold_campaign("x", faqs=["two\nlines"], vignette=False)


# --- the clinic's campaigns -----------------------------------------------------------------------


def test_faq_addiction_campaign() -> None:
    campaign = load_campaign(REPO / "campaigns" / "faq-addiction.md", settings_for(REPO))
    assert campaign.audience == ("faq-updates",)
    assert campaign.send_at is None
    faq = campaign.faqs[0]
    assert faq.question == "Can I get addicted to ketamine?"
    for fact in (
        "Cambridge University",
        "83 ketamine studies",
        "no studies in our review report a transition",
        "more than 500",
        "more than 100 take-home prescriptions",
        "three years",
    ):
        assert fact in " ".join(faq.source.split())


# The three stories as they appear on the clinic's FAQ page.
SEED_VIGNETTES = [
    "A client wanted to decrease drinking so that he was able to go to bars socially with his buddies, "
    "but gain more self-control over the amount he drank. After three ketamine sessions, he found he was "
    "able to go out to the bar and when he looked at the menu, he was able to really ask himself what he "
    "wanted and realized that he preferred a non-alcoholic drink.",
    "A client who wanted to change her pattern of zoning out on her phone at the end of a day described "
    "after ketamine treatment the experience of being aware of her phone, realizing that nothing on the "
    "phone was all that interesting, and instead decided to go for a run.",
    "A client was beginning to go down a familiar road of marital conflict with her husband, but after he "
    "got the first few sentences out, rather than fight, she paused and said \u201cI don\u2019t like it when "
    "you talk to me like that.\u201d Rather than fight as they usually would have, they had an intense "
    "conversation about how her husband speaks to her and how she wants him to speak with more respect "
    "towards her, even if they disagree.",
]


def test_client_stories_campaign_has_the_three_vignettes_verbatim() -> None:
    campaign = load_campaign(REPO / "campaigns" / "client-stories.md", settings_for(REPO))
    assert campaign.audience == ("client-stories",)
    assert campaign.send_at is None
    assert [v.source for v in campaign.vignettes] == SEED_VIGNETTES
