"""Tests for the de-identification gate for client vignettes (newsletter.deid)."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.campaigns.deid import KINDS, Finding, find_identifiers, unaccepted
from tests.support import deid_corpus as corpus

# Measured when the rules were frozen; raise them when the gate improves. Recall counts an identifier
# as found when a finding of the same class overlaps it.
# Tuning set: 81/81 identifiers, 0 false alarms on 45 clean sentences (the rules were fitted to it).
TUNING_RECALL_FLOOR = 1.0
TUNING_FALSE_ALARMS_MAX = 0
# Held-out set, written after the freeze: 39/40 (one subscriber number reported as "code", not
# "record"; 40/40 caught by some finding), 1 false alarm on 16 clean sentences ("American Psychiatric
# Association"). This is the honest figure.
HELDOUT_RECALL_FLOOR = 0.975
HELDOUT_FALSE_ALARMS_MAX = 1


def kinds_and_texts(text: str, **kw: object) -> list[tuple[str, str]]:
    return [(f.kind, f.text) for f in find_identifiers(text, **kw)]  # type: ignore[arg-type]


# --- the clinic's own vignettes and clean prose ----------------------------------------------------


@pytest.mark.parametrize("text", corpus.CLINIC_VIGNETTES, ids=["bar", "phone", "husband"])
def test_clinic_vignettes_are_clean(text: str) -> None:
    assert find_identifiers(text) == []


def test_clinic_vignettes_as_a_numbered_list_are_clean() -> None:
    page = "\n\n".join(f"{i}. {v}" for i, v in enumerate(corpus.CLINIC_VIGNETTES, 1))
    assert find_identifiers(page) == []


@pytest.mark.parametrize("text", corpus.TUNING_CLEAN)
def test_hard_negatives_are_clean(text: str) -> None:
    assert kinds_and_texts(text) == []


# --- every class, through the tuning corpus ---------------------------------------------------------


@pytest.mark.parametrize("vignette", corpus.TUNING, ids=lambda v: v.text[:40])
def test_each_identifier_is_found_with_its_class(vignette: corpus.Vignette) -> None:
    findings = find_identifiers(vignette.text)
    for kind, start, end in vignette.spans():
        assert any(f.kind == kind and f.start < end and start < f.end for f in findings), (
            kind,
            vignette.text[start:end],
            [(f.kind, f.text) for f in findings],
        )


def test_corpus_covers_every_class_at_least_twice() -> None:
    for vignettes in (corpus.TUNING, corpus.HELDOUT):
        counts = dict.fromkeys(KINDS, 0)
        for v in vignettes:
            for kind, _ in v.identifiers:
                counts[kind] += 1
        assert set(counts) == set(KINDS)
        assert min(counts.values()) >= 2, counts
    assert len(corpus.TUNING) >= 30 and len(corpus.TUNING_CLEAN) >= 20
    assert len(corpus.HELDOUT) >= 15 and len(corpus.HELDOUT_CLEAN) >= 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We spoke with Maria Delgado.", [("name", "Maria Delgado")]),
        ("Daniel came back.", [("name", "Daniel")]),
        ("She saw Dr. Nguyen weekly.", [("name", "Nguyen")]),
        ("Dr. Nguyen saw her weekly.", [("name", "Nguyen")]),
        ("Millinocket is a small town.", [("place", "Millinocket")]),
        ("She moved to Orono, ME last year.", [("place", "Orono")]),
        ("He lives at 22 Maple Ave. Apt 4.", [("address", "22 Maple Ave. Apt 4")]),
        ("Her ZIP is 04401-2250.", [("zip", "04401-2250")]),
        ("She came in on March 3rd.", [("date", "March 3rd")]),
        ("It was the 14th, a Friday.", [("date", "14th")]),
        ("They met in June and married in 2019.", [("date", "June")]),
        ("Her father, now 97 years old, joined.", [("age", "97 years old")]),
        ("Call 207-555-0199.", [("phone", "207-555-0199")]),
        ("Write to sam@example.org.", [("email", "sam@example.org")]),
        ("SSN 123 45 6789.", [("ssn", "123 45 6789")]),
        ("Her MRN is 5512-88.", [("record", "5512-88")]),
        ("Plate number 8TRS 112 was noted.", [("vehicle", "8TRS 112")]),
        ("The pacemaker serial is A11-77821.", [("device", "A11-77821")]),
        ("See harvestblog.org/story for more.", [("url", "harvestblog.org/story")]),
        ("From 10.0.0.7 at night.", [("ip", "10.0.0.7")]),
        ("His gym locker code was 4471.", [("code", "4471")]),
    ],
)
def test_per_class_examples(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds_and_texts(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "May we suggest a short walk?",
        "Will it help? Hope is part of it.",
        "In 2019 she started.",
        "PHQ-9 and GAD-7 both dropped.",
        "0.5 mg/kg over 40 minutes.",
        "Call or text 988.",
        "She prays the Serenity Prayer.",
        "They came from Vermont, New Hampshire and North Carolina.",
        "I don’t like it when you talk to me like that.",
    ],
)
def test_short_negatives(text: str) -> None:
    assert kinds_and_texts(text) == []


# --- API contract --------------------------------------------------------------------------------


def test_offsets_point_at_the_text_and_findings_do_not_overlap() -> None:
    for v in corpus.TUNING + corpus.HELDOUT:
        findings = find_identifiers(v.text)
        assert findings == sorted(findings, key=lambda f: (f.start, f.end))
        for f in findings:
            assert v.text[f.start : f.end] == f.text
            assert f.kind in KINDS and f.reason
            assert f.check_id == f"deid.{f.kind}"
        for a, b in itertools.pairwise(findings):
            assert a.end <= b.start


def test_markdown_formatting_does_not_hide_or_shift_findings() -> None:
    text = "Her sister **Rosalind** lives in _Skowhegan_; see [her page](https://example.org/rb)."
    assert kinds_and_texts(text) == [
        ("name", "Rosalind"),
        ("place", "Skowhegan"),
        ("url", "https://example.org/rb"),
    ]
    assert kinds_and_texts("- **Kowalski** called on Tuesday.") == [("name", "Kowalski")]


def test_possessives_and_compound_names() -> None:
    assert kinds_and_texts("We met Pat O'Brien's wife.") == [("name", "Pat O'Brien")]
    assert kinds_and_texts("Then Mary-Kate’s mother called.") == [("name", "Mary-Kate")]
    assert kinds_and_texts("Hope's husband called.") == [("name", "Hope")]


def test_deny_list_catches_lower_case_and_all_caps_names() -> None:
    text = "my friend kowalski and BARNABY came along."
    assert kinds_and_texts(text) == []
    assert kinds_and_texts(text, deny=["Kowalski", "barnaby"]) == [
        ("name", "kowalski"),
        ("name", "BARNABY"),
    ]
    # whole words only
    assert kinds_and_texts("The annabelle rose.", deny=["anna"]) == []
    # a deny entry wins over the built-in allow-list and over a per-call allow entry
    assert kinds_and_texts("We met Hope there.", deny=["hope"], allow=["hope"]) == [("name", "Hope")]


def test_allow_list_suppresses_names_and_places_only() -> None:
    text = "She joined the Wabanaki Collective after moving to Skowhegan on 3/14/2021."
    assert ("name", "Wabanaki Collective") in kinds_and_texts(text)
    found = kinds_and_texts(text, allow=["Wabanaki", "collective", "Skowhegan"])
    assert found == [("date", "3/14/2021")]
    assert kinds_and_texts("They practise Acme Breathwork daily.", allow=["acme breathwork"]) == []


def test_unaccepted_drops_findings_by_exact_text() -> None:
    findings = find_identifiers("Rumi wrote it; Delgado read it.")
    assert [f.text for f in unaccepted(findings, ["Rumi"])] == ["Delgado"]
    assert unaccepted(findings, ["rumi"]) == findings  # exact text: case matters


def test_finding_is_a_frozen_value() -> None:
    f = Finding("name", "Maria", 0, 5, "why")
    with pytest.raises(AttributeError):
        f.kind = "place"  # type: ignore[misc]
    assert f == Finding("name", "Maria", 0, 5, "why")


_PIECES = st.sampled_from(
    [
        "Maria",
        "Dr.",
        "Bangor",
        "May",
        "the 14th",
        "04401",
        "207-555-0143",
        "x@y.org",
        "*",
        "_",
        "“",
        "’s",
        "O'Brien",
        "\n",
        "\n\n",
        "- ",
        "# ",
        ". ",
        ", ",
        " ",
        "ketamine",
        "1x",
        "PHQ-9",
        "3/4",
        "é",
        "911",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=25).map("".join))
def test_any_text_gives_consistent_findings(text: str) -> None:
    findings = find_identifiers(text)
    for f in findings:
        assert text[f.start : f.end] == f.text and f.kind in KINDS
    for a, b in itertools.pairwise(findings):
        assert a.end <= b.start


def test_empty_and_whitespace() -> None:
    assert find_identifiers("") == []
    assert find_identifiers("   \n\n  ") == []


# --- corpus-level floors -------------------------------------------------------------------------


def test_tuning_recall_and_false_alarms() -> None:
    s = corpus.score(find_identifiers, corpus.TUNING, corpus.TUNING_CLEAN)
    assert s.recall >= TUNING_RECALL_FLOOR, s.missed
    assert len(s.false_alarms) <= TUNING_FALSE_ALARMS_MAX, s.false_alarms


def test_heldout_floor() -> None:
    s = corpus.score(find_identifiers, corpus.HELDOUT, corpus.HELDOUT_CLEAN)
    assert s.recall >= HELDOUT_RECALL_FLOOR, s.missed
    assert s.caught_any_kind == s.total, s.missed
    assert len(s.false_alarms) <= HELDOUT_FALSE_ALARMS_MAX, s.false_alarms


# --- run-time dependencies (speed is measured by bench/deid_recall.py) ---------------------------------------------------------------


def test_runtime_imports_only_stdlib_phonenumbers_and_email_validator() -> None:
    import sys

    package = Path(__file__).resolve().parent.parent / "newsletter" / "campaigns" / "deid"
    allowed = {"phonenumbers", "email_validator"} | set(sys.stdlib_module_names)
    modules = sorted(package.glob("*.py"))
    assert modules, package
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.startswith("newsletter.campaigns.deid"):
                    continue  # the gate's own modules
                roots = [node.module.split(".")[0]]
            else:
                continue
            for root in roots:
                assert root in allowed, f"{path.name} imports {root}"


def test_data_files_are_small_and_carry_provenance() -> None:
    import gzip

    data = Path(__file__).resolve().parent.parent / "newsletter" / "campaigns" / "deid" / "data"
    files = sorted(data.glob("deid_*.txt.gz"))
    assert len(files) == 3
    assert sum(f.stat().st_size for f in files) < 1_500_000
    for f in files:
        header = gzip.decompress(f.read_bytes()).decode("utf-8").split("\n", 12)[:10]
        assert any("Source:" in line for line in header), f.name
        assert any("licen" in line.lower() or "public domain" in line.lower() for line in header), f.name
