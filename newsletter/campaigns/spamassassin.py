"""SpamAssassin's score for a message, offline: ``spamassassin -L -t`` with the rules it ships.

``-L`` runs local tests only (no DNS blocklists, Razor, Pyzor or DCC), so the score depends on the
message and the installed rules alone, and no network is needed. Bayes is off, because its verdict
would depend on what this machine happened to learn, and ``HOME`` is a throw-away folder, so nothing
is written to the user's. About 0.7 s per message, most of it SpamAssassin loading its rules.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from newsletter.errors import NewsletterError

ERROR_SCORE = 5.0  # SpamAssassin's own default threshold for spam
WARNING_SCORE = 3.0
TIMEOUT = 120.0
_RULE = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)")


class SpamCheckFailed(NewsletterError):
    """SpamAssassin is installed but did not produce a score."""


@dataclass(frozen=True)
class Rule:
    name: str
    points: float
    description: str


@dataclass(frozen=True)
class SpamScore:
    score: float
    rules: tuple[Rule, ...]

    @property
    def fired(self) -> list[Rule]:
        """The rules that moved the score, biggest first (informational zero-point rules left out)."""
        return sorted((r for r in self.rules if r.points), key=lambda r: -r.points)


def find_spamassassin() -> str | None:
    return shutil.which("spamassassin")


def parse_report(output: str, marker: str) -> SpamScore:
    """The score and rules from the report that :func:`score_message` asks SpamAssassin to append."""
    _, found, report = output.rpartition(marker + " ")
    if not found:
        raise SpamCheckFailed("SpamAssassin's output has no report")
    lines = report.splitlines()
    try:
        score = float(lines[0].split()[0])
    except (IndexError, ValueError):
        raise SpamCheckFailed(f"SpamAssassin's report has no score: {lines[:1]!r}") from None
    rules: list[Rule] = []
    for line in lines[1:]:
        match = _RULE.fullmatch(line)
        if match:
            rules.append(Rule(match[2], float(match[1]), match[3].strip()))
        elif line.strip() and rules:  # a description wrapped onto the next line
            last = rules[-1]
            rules[-1] = Rule(last.name, last.points, f"{last.description} {line.strip()}")
    return SpamScore(score, tuple(rules))


def score_message(message: bytes, executable: str) -> SpamScore:
    """Run ``executable`` (spamassassin) over one message and return its score and rules."""
    marker = f"newsletter-spam-report-{secrets.token_hex(8)}"  # cannot occur in the message by chance
    arguments = [
        executable,
        "-L",
        "-t",
        "-x",
        "--cf=use_bayes 0",
        "--cf=report_safe 0",
        "--cf=clear_report_template",
        f"--cf=report {marker} _SCORE_",
        "--cf=report _SUMMARY_",
    ]
    with tempfile.TemporaryDirectory(prefix="newsletter-spamassassin-") as home:
        try:
            result = subprocess.run(
                arguments,
                input=message,
                capture_output=True,
                timeout=TIMEOUT,
                env={**os.environ, "HOME": home, "LC_ALL": "C"},
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SpamCheckFailed(f"SpamAssassin did not run: {exc}") from None
    output = result.stdout.decode("utf-8", "replace")
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {result.returncode}"]
        raise SpamCheckFailed(f"SpamAssassin failed: {detail[0]}")
    return parse_report(output, marker)
