"""Recall and false alarms of the de-identification gate on the corpus in tests/support/deid_corpus.py.

Run from the repository root: python bench/deid_recall.py [-v]
(-v also lists every miss, false alarm and extra finding.)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.campaigns.deid import KINDS, find_identifiers
from tests.support import deid_corpus as corpus


def _report(title: str, vignettes: tuple[corpus.Vignette, ...], clean: tuple[str, ...], verbose: bool) -> None:
    s = corpus.score(find_identifiers, vignettes, clean)
    print(f"\n== {title}: {len(vignettes)} identifying vignettes, {s.total} identifiers, {len(clean)} clean sentences")
    print(f"{'class':<10}{'found':>7}{'total':>7}{'recall':>9}")
    for kind in KINDS:
        if kind in s.per_kind:
            found, total = s.per_kind[kind]
            print(f"{kind:<10}{found:>7}{total:>7}{found / total:>9.2f}")
    print(f"{'overall':<10}{s.found:>7}{s.total:>7}{s.recall:>9.3f}")
    print(f"caught by a finding of any class: {s.caught_any_kind}/{s.total}")
    print(
        f"false alarms on clean sentences: {len(s.false_alarms)} "
        f"(in {len({t for _, _, t in s.false_alarms})} of {len(clean)} sentences)"
    )
    print(f"extra findings on identifying vignettes: {len(s.extra)}")
    if verbose:
        for kind, text, where in s.missed:
            print(f"  MISSED  {kind:<8} {text!r}  in {where!r}")
        for kind, text, where in s.false_alarms:
            print(f"  FALSE   {kind:<8} {text!r}  in {where!r}")
        for kind, text, where in s.extra:
            print(f"  EXTRA   {kind:<8} {text!r}  in {where!r}")


def _timing(load: float) -> None:
    sentences = [v.text for v in corpus.TUNING + corpus.HELDOUT] + list(corpus.TUNING_CLEAN + corpus.HELDOUT_CLEAN)
    runs = []
    for _ in range(20):
        start = time.perf_counter()
        for text in sentences:
            find_identifiers(text)
        runs.append((time.perf_counter() - start) / len(sentences))
    print(f"\nfirst call (loads the data): {load * 1000:.1f} ms")
    print(
        f"time per sentence: median {statistics.median(runs) * 1e6:.0f} µs, "
        f"worst run {max(runs) * 1e6:.0f} µs ({len(sentences)} sentences x 20 runs)"
    )


def main() -> None:
    verbose = "-v" in sys.argv[1:]
    start = time.perf_counter()
    find_identifiers("The first call loads the word lists, once.")
    load = time.perf_counter() - start
    _report("tuning set", corpus.TUNING, corpus.TUNING_CLEAN, verbose)
    _report("held-out set (written after the rules were frozen)", corpus.HELDOUT, corpus.HELDOUT_CLEAN, verbose)
    clinic = [f for text in corpus.CLINIC_VIGNETTES for f in find_identifiers(text)]
    print(f"\nclinic's own three vignettes: {len(clinic)} findings")
    _timing(load)


if __name__ == "__main__":
    main()
