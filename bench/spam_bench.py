"""How long the spam score costs lint and build: SpamAssassin (-L, offline) on each seed campaign's
message as MessageFactory builds it. Prints the median of a few runs per campaign.

    .venv/bin/python bench/spam_bench.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from newsletter.campaigns import spamassassin
from newsletter.campaigns.content import load_campaign
from newsletter.campaigns.render import render_campaign
from newsletter.config import load_settings
from newsletter.delivery.prepare import sample_message

REPO = Path(__file__).resolve().parents[1]
RUNS = 5


def main() -> int:
    executable = spamassassin.find_spamassassin()
    if executable is None:
        print("spamassassin is not installed (make test installs it)", file=sys.stderr)
        return 1
    settings = load_settings(REPO, environ={}).settings
    for slug in ("faq-addiction", "client-stories"):
        message = sample_message(render_campaign(load_campaign(slug, settings), settings), settings)
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            verdict = spamassassin.score_message(message, executable)
            times.append(time.perf_counter() - started)
        print(
            f"spam score {slug}: {verdict.score:.1f} points, {len(message) // 1024} KB message, "
            f"median {statistics.median(times):.2f} s over {RUNS} runs (min {min(times):.2f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
