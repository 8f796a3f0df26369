"""The FAQ as files: reading entries, versions of an answer, word-level diffs and change detection."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from newsletter.campaigns import faq
from newsletter.campaigns.faq import CHANGED, NEW, Faq, FaqError, Heard, changes, compare, content_hash, word_diff
from newsletter.campaigns.scaffold import draft_from_faq, propose_subject
from newsletter.config import Settings
from tests.support.faq import ADDICTION, CURE, write_entry, write_two_entries

REPO = Path(__file__).resolve().parents[1]


def heard(library: Faq) -> dict[str, Heard]:
    return {e.id: Heard(e.id, e.question, e.hash, e.answer) for e in library.entries}


def kinds(found: list[faq.Change]) -> list[tuple[str, str]]:
    return [(c.id, c.kind) for c in found]


# --- change detection ----------------------------------------------------------------------------


def test_nothing_changed_is_no_change(tmp_path: Path) -> None:
    write_two_entries(tmp_path)
    library = faq.load_faq(tmp_path / "faq")
    assert changes(library.entries, heard(library)) == []


def test_a_new_entry(tmp_path: Path) -> None:
    write_two_entries(tmp_path)
    before = heard(faq.load_faq(tmp_path / "faq"))
    write_entry(tmp_path, "does-insurance-cover-therapy", "Does insurance cover therapy?", "It does not.")
    found = changes(faq.load_faq(tmp_path / "faq").entries, before)
    assert kinds(found) == [("does-insurance-cover-therapy", NEW)]
    assert found[0].question == "Does insurance cover therapy?"
    assert found[0].diff == "{+It does not.+}"


def test_a_changed_answer(tmp_path: Path) -> None:
    write_two_entries(tmp_path)
    before = heard(faq.load_faq(tmp_path / "faq"))
    write_entry(
        tmp_path,
        "can-i-get-addicted",
        "Can I get addicted to ketamine?",
        ADDICTION.replace("more than 500", "more than 600"),
        name="01-addicted",
    )
    found = changes(faq.load_faq(tmp_path / "faq").entries, before)
    assert kinds(found) == [("can-i-get-addicted", CHANGED)]
    assert "[-500-] {+600+}" in found[0].diff
    assert found[0].diff.startswith("… ")  # the unchanged start is cut to its context


def test_a_whitespace_only_change_is_not_a_change(tmp_path: Path) -> None:
    write_two_entries(tmp_path)
    before = heard(faq.load_faq(tmp_path / "faq"))
    reflowed = "  " + ADDICTION.replace(" ", "\n", 5).replace("\n\n", "\n\n\n") + "   \n\n"
    write_entry(tmp_path, "can-i-get-addicted", "Can I get addicted to ketamine?", reflowed, name="01-addicted")
    after = faq.load_faq(tmp_path / "faq")
    assert after.get("can-i-get-addicted").answer != ADDICTION  # type: ignore[union-attr]
    assert changes(after.entries, before) == []


def test_a_renamed_file_with_the_same_id_is_the_same_entry(tmp_path: Path) -> None:
    write_two_entries(tmp_path)
    before = heard(faq.load_faq(tmp_path / "faq"))
    old = tmp_path / "faq" / "01-addicted.md"
    old.rename(tmp_path / "faq" / "09-can-i-get-addicted-to-ketamine.md")
    after = faq.load_faq(tmp_path / "faq")
    assert [e.id for e in after.entries] == ["can-ketamine-cure-me", "can-i-get-addicted"]  # new file order
    assert changes(after.entries, before) == []


def test_a_renamed_file_with_another_id_is_a_new_entry(tmp_path: Path) -> None:
    write_two_entries(tmp_path)
    before = heard(faq.load_faq(tmp_path / "faq"))
    (tmp_path / "faq" / "02-cure.md").unlink()
    write_entry(tmp_path, "is-it-a-cure", "Can ketamine cure me?", CURE)
    assert kinds(changes(faq.load_faq(tmp_path / "faq").entries, before)) == [("is-it-a-cure", NEW)]


def test_compare_with_another_folder(tmp_path: Path) -> None:
    write_two_entries(tmp_path / "base")
    write_two_entries(tmp_path)
    write_entry(tmp_path, "can-ketamine-cure-me", "Can ketamine cure me?", CURE + " Not by itself.", name="02-cure")
    report = compare(faq.load_faq(tmp_path / "faq"), faq.load_faq(tmp_path / "base" / "faq"))
    assert kinds(report.changes) == [("can-ketamine-cure-me", CHANGED)]
    assert report.as_dict() == {"changes": [c.as_dict() for c in report.changes]}
    assert report.changes[0].as_dict().keys() == {"id", "question", "kind", "diff"}
    assert str(tmp_path / "base" / "faq") in report.since


def test_content_hash_sees_words_only() -> None:
    assert content_hash("a  b\n\nc ") == content_hash("a b c")
    assert content_hash("a b c") != content_hash("a b d")
    assert content_hash("a *b* c") != content_hash("a b c")  # emphasis is a change a reader sees
    assert content_hash("x").startswith("sha256:")


@pytest.mark.parametrize(
    ("old", "new", "diff"),
    [
        ("one two three", "one two three", ""),
        ("one two\nthree", "one  two three", ""),
        ("one two three", "one 2 three", "one [-two-] {+2+} three"),
        ("one two three", "one two three four", "one two three {+four+}"),
        ("zero one two", "one two", "[-zero-] one two"),
        ("", "all new", "{+all new+}"),
        (" ".join(f"w{n}" for n in range(40)), " ".join(f"w{n}" for n in range(40) if n != 20), None),
    ],
)
def test_word_diff(old: str, new: str, diff: str | None) -> None:
    if diff is not None:
        assert word_diff(old, new) == diff
    else:  # a long unchanged run on each side is cut to the context
        assert word_diff(old, new, context=3) == "… w17 w18 w19 [-w20-] w21 w22 w23 …"


# --- reading entries -----------------------------------------------------------------------------


def test_an_entry_has_its_question_id_topics_updated_and_answer(tmp_path: Path) -> None:
    path = tmp_path / "faq" / "x.md"
    path.parent.mkdir()
    path.write_text(
        "---\nquestion: '  Can I   get addicted? '\nid: can-i-get-addicted\ntopics: [faq-updates, clinic-news]\n"
        "updated: 2026-11-24\n---\n\n\nThe answer.\n\nSecond paragraph.\n\n",
        encoding="utf-8",
    )
    (entry,) = faq.load_faq(tmp_path / "faq").entries
    assert (entry.id, entry.question, entry.topics, entry.updated) == (
        "can-i-get-addicted",
        "Can I get addicted?",
        ("faq-updates", "clinic-news"),
        date(2026, 11, 24),
    )
    assert entry.answer == "The answer.\n\nSecond paragraph."
    assert entry.answer_line == 9 and entry.line_of("Second") == 11


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no front matter\n", "no front matter"),
        ("---\nid: x\n---\nAnswer.\n", "needs the 'question'"),
        ("---\nquestion: Q?\n---\nAnswer.\n", "needs an 'id'"),
        ("---\nquestion: Q?\nid: Not A Slug\n---\nAnswer.\n", "lowercase letters"),
        ("---\nquestion: Q?\nid: q\nanswer: x\n---\nAnswer.\n", "unknown front-matter key 'answer'"),
        ("---\nquestion: Q?\nid: q\ntopics: faq-updates\n---\nAnswer.\n", "'topics' must be a list"),
        ("---\nquestion: Q?\nid: q\nupdated: yesterday\n---\nAnswer.\n", "'updated' must be a date"),
        ("---\nquestion: Q?\nid: q\n---\n\n", "the answer is missing"),
        ("---\nquestion: Q?\nid: q\n---\nA.\n\n::: vignette\nStory.\n:::\n", "plain Markdown"),
        ("---\nquestion: Q?\nid: q\n---\nA.\n:::\n", "closes no block"),
    ],
)
def test_a_broken_entry_names_its_file_and_problem(tmp_path: Path, text: str, message: str) -> None:
    folder = tmp_path / "faq"
    folder.mkdir()
    (folder / "q.md").write_text(text, encoding="utf-8")
    with pytest.raises(FaqError, match=message) as info:
        faq.load_faq(folder)
    assert str(info.value).startswith(str(folder / "q.md"))


def test_two_entries_with_one_id_are_refused(tmp_path: Path) -> None:
    write_entry(tmp_path, "same", "First?", "One.", name="a")
    write_entry(tmp_path, "same", "Second?", "Two.", name="b")
    with pytest.raises(FaqError, match=r"also the id of a\.md"):
        faq.load_faq(tmp_path / "faq")


def test_a_missing_folder_is_an_empty_faq(tmp_path: Path) -> None:
    assert faq.load_faq(tmp_path / "nowhere").entries == ()


def test_matching_ignores_case_spacing_and_punctuation(tmp_path: Path) -> None:
    write_two_entries(tmp_path)
    library = faq.load_faq(tmp_path / "faq")
    assert library.matching("can i get ADDICTED to  ketamine") is library.get("can-i-get-addicted")
    assert library.matching("Can ketamine cure me?!") is library.get("can-ketamine-cure-me")
    assert library.matching("Can ketamine cure my cat?") is None


def test_entry_url_follows_the_faq_url_setting(tmp_path: Path) -> None:
    base = {"project_dir": tmp_path, "public_base_url": "https://news.harvest.example/"}
    assert faq.entry_url(Settings(**base), "a-b") == "https://news.harvest.example/faq#a-b"
    templated = Settings(**base, faq_url="https://harvest.example/faq/{id}/")  # type: ignore[arg-type]
    assert faq.entry_url(templated, "a-b") == "https://harvest.example/faq/a-b/"
    page = Settings(**base, faq_url="https://harvest.example/questions")  # type: ignore[arg-type]
    assert faq.entry_url(page, "a-b") == "https://harvest.example/questions#a-b"


def test_stamp_updated_changes_only_that_line(tmp_path: Path) -> None:
    path = write_entry(tmp_path, "q", "Q?", "Answer.")
    (entry,) = faq.load_faq(tmp_path / "faq").entries
    faq.stamp_updated(entry, date(2026, 12, 1))
    stamped = path.read_text(encoding="utf-8")
    assert stamped == "---\nquestion: Q?\nid: q\ntopics: [faq-updates]\nupdated: 2026-12-01\n---\nAnswer.\n"
    (entry,) = faq.load_faq(tmp_path / "faq").entries
    faq.stamp_updated(entry, date(2027, 1, 2))
    assert path.read_text(encoding="utf-8") == stamped.replace("2026-12-01", "2027-01-02")
    crlf = tmp_path / "faq" / "q.md"
    crlf.write_bytes(stamped.replace("\n", "\r\n").encode())
    (entry,) = faq.load_faq(tmp_path / "faq").entries
    faq.stamp_updated(entry, date(2027, 3, 4))
    assert crlf.read_bytes() == stamped.replace("2026-12-01", "2027-03-04").replace("\n", "\r\n").encode()


def test_answer_html_escapes_raw_html_and_loads_no_images(tmp_path: Path) -> None:
    write_entry(tmp_path, "q", "Q?", "<script>x</script> ![a chart](https://cdn.example/c.png) *fine*")
    html = str(faq.answer_html(faq.load_faq(tmp_path / "faq").entries[0]))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html and '<a href="https://cdn.example/c.png">a chart</a>' in html
    assert "<em>fine</em>" in html


# --- drafting ------------------------------------------------------------------------------------


def test_propose_subject_from_questions() -> None:
    assert propose_subject(["Can ketamine cure me?"]) == "Can ketamine cure me?"
    assert propose_subject(["What is ketamine?", "How does it work?"]) == "What is ketamine? How does it work?"
    long = ["Can I get addicted to ketamine?", "Is ketamine really effective with nicotine addiction?"]
    assert propose_subject(long) == "Can I get addicted to ketamine? (and 1 more from our FAQ)"
    assert propose_subject(["x" * 70, "y" * 70]) == "2 new and updated answers from our FAQ"
    assert propose_subject(["x" * 90]) == "An updated answer from our FAQ"


def test_draft_carries_each_entry_by_ref_with_an_audience_from_topics(tmp_path: Path) -> None:
    write_entry(tmp_path, "a", "A?", "Answer a.", topics=("faq-updates",))
    write_entry(tmp_path, "b", "B?", "Answer b.", topics=("clinic-news", "faq-updates"))
    text = draft_from_faq("winter", faq.load_faq(tmp_path / "faq").entries, since="faq-addiction (sent 2026-11-24)")
    assert "subject: A? B?\n" in text
    assert "audience:\n- faq-updates\n- clinic-news\n" in text
    assert "::: faq ref=a\n:::\n\n::: faq ref=b\n:::\n" in text
    assert "# Drafted from the FAQ entries new or changed since faq-addiction (sent 2026-11-24).\n" in text


# --- the clinic's FAQ ----------------------------------------------------------------------------


def test_the_clinics_faq_holds_the_seven_questions_of_its_page() -> None:
    library = faq.load_faq(REPO / "faq")
    assert [e.question for e in library.entries] == [
        "What is ketamine?",
        "How does it work?",
        "Can I get addicted to ketamine?",
        "Is ketamine effective with nicotine addiction?",
        "What kind of results do people experience?",
        "Can ketamine cure me?",
        "Does insurance cover therapy?",
    ]
    assert all(e.topics == ("faq-updates",) and e.updated is not None for e in library.entries)
    text = " ".join(" ".join(e.answer.split()) for e in library.entries)
    assert "therapuetic" not in text and "then that of" not in text
    assert "At the therapeutic dosage level" in text and "a very different pathway than that of" in text
    assert "Schedule III medication" in text and "not a single patient’s ketamine use has escalated" in text
    # The three client stories are vignettes (campaigns/client-stories.md), not FAQ answers.
    results = library.get("what-results-do-people-experience")
    assert results is not None and "A client" not in results.answer and "agents in their own lives" in results.answer
    assert "non-alcoholic drink" not in text and "go for a run" not in text and "marital conflict" not in text
