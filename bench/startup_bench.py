"""Benchmark: how long the ``newsletter`` command takes to start, for commands that do little.

Issue #14 asks that ``newsletter --help`` and a small ``subscribers list`` start in under 0.25 s: heavy
modules (the rendering stack, Alembic, rich, the de-identification data) are imported only by the
commands that need them.

Method: a temporary project with a fresh SQLite store holding 20 subscribers (example.org). Each
command runs once to warm the file cache and compile the bytecode (an installed package has its
bytecode compiled; this machine's environment sets PYTHONDONTWRITEBYTECODE, which the benchmark
unsets for its children), then ``--runs`` times (default 15), alternating. Reported: the median and
the best wall time from before the process starts to after it exits, and the slowest module imports
of one run (``-X importtime``).

Run: ``.venv/bin/python bench/startup_bench.py [--runs N]``. It prints a table; the exit status is 0
whenever the commands worked (goals missed are reported, not failed: on a shared machine the load
decides too much), 2 if a command failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 0.25
SUBSCRIBERS = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command (default 15)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="newsletter-startup-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    base = [sys.executable, "-m", "newsletter", "--project", str(folder), "--db", f"sqlite:///{folder / 's.db'}"]
    commands = {"newsletter --help": [*base, "--help"], "newsletter subscribers list": [*base, "subscribers", "list"]}
    try:
        subprocess.run([*base, "init"], env=env, check=True, capture_output=True)
        for n in range(SUBSCRIBERS):
            subprocess.run(
                [*base, "subscribers", "add", f"reader.{n}@example.org", "--name", f"Reader {n}", "--confirmed"],
                env=env,
                check=True,
                capture_output=True,
            )
        times: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():
            subprocess.run(argv, env=env, check=True, capture_output=True)  # warm-up, bytecode compiled
        for _ in range(args.runs):
            for name, argv in commands.items():
                started = time.perf_counter()
                done = subprocess.run(argv, env=env, capture_output=True, check=False)
                times[name].append(time.perf_counter() - started)
                if done.returncode != 0:
                    print(f"FAILED: {name}: {done.stderr.decode(errors='replace').strip()}", file=sys.stderr)
                    return 2
        print(f"load average {os.getloadavg()[0]:.2f}; {args.runs} runs each, after one warm-up run\n")
        print("| command | median | best | goal |")
        print("|---|---|---|---|")
        for name, measured in times.items():
            median = statistics.median(measured)
            verdict = "met" if median < GOAL_S else "MISSED"
            print(f"| `{name}` | {median:.3f} s | {min(measured):.3f} s | < {GOAL_S} s ({verdict}) |")
        for name, argv in commands.items():
            profile = subprocess.run(
                [argv[0], "-X", "importtime", *argv[1:]], env=env, capture_output=True, text=True, check=True
            )
            rows = []
            for line in profile.stderr.splitlines():
                parts = line.split("|")
                if len(parts) == 3 and parts[1].strip().isdigit() and parts[2].startswith("   ") is False:
                    rows.append((int(parts[1]), parts[2].strip()))
            top = ", ".join(f"{module} {us / 1000:.0f} ms" for us, module in sorted(rows, reverse=True)[:5])
            print(f"\nslowest top-level imports of `{name}` (cumulative): {top}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
