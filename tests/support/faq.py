"""FAQ entries for tests: files in a project's faq/ folder, as staff write them."""

from __future__ import annotations

from pathlib import Path

ADDICTION = (
    "In a meta-study, researchers reviewed 83 ketamine studies and found no transition to illicit use\n"
    "engendered by introduction to ketamine in a therapeutic context.\n\n"
    "Our network has conducted more than 500 in-office sessions in the past three years."
)
CURE = "Ketamine itself is not a cure and it does not change your behavior."


def write_entry(
    project: Path,
    entry_id: str,
    question: str,
    answer: str,
    *,
    name: str | None = None,
    topics: tuple[str, ...] = ("faq-updates",),
) -> Path:
    folder = project / "faq"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or entry_id}.md"
    listed = ", ".join(topics)
    path.write_text(f"---\nquestion: {question}\nid: {entry_id}\ntopics: [{listed}]\n---\n{answer}\n", encoding="utf-8")
    return path


def write_two_entries(project: Path) -> None:
    write_entry(project, "can-i-get-addicted", "Can I get addicted to ketamine?", ADDICTION, name="01-addicted")
    write_entry(project, "can-ketamine-cure-me", "Can ketamine cure me?", CURE, name="02-cure")


TWO_REFS = """---
subject: Two answers from our FAQ
audience: [faq-updates]
---
Two questions people often ask us.

::: faq ref=can-i-get-addicted
:::

::: faq ref=can-ketamine-cure-me
:::
"""
