"""The Python API example in docs/ runs, and does what docs/api.md says it does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "send_from_python.py"


def test_the_api_example_imports_builds_sends_and_reports(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    imported = int(re.search(r"imported (\d+), invalid (\d+)", out)[1])  # type: ignore[index]
    sent, audience = map(int, re.search(r"sent (\d+) of (\d+); exit code 0", out).groups())  # type: ignore[union-attr]
    assert re.search(r"without consent [1-9]", out)
    assert 0 < sent == audience < imported  # only those who chose FAQ updates
    assert re.search(r"built faq-addiction: \d{4,} bytes of HTML", out)
    assert re.search(r"first message to \S+@example\.org", out)
    assert "'confirmed': " + str(imported) in out
    unheard = re.search(r"FAQ entries new or changed since faq-addiction \(sent [\d-]+\): \[(.*)\]", out)
    assert unheard and "'what-is-ketamine'" in unheard[1] and "'can-i-get-addicted'" not in unheard[1]
    assert not list(tmp_path.iterdir())  # it worked in a folder of its own
