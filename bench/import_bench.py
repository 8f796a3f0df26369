"""Benchmark: `newsletter subscribers import` on a generated signup export.

Compares, in the same run, the whole command (process start-up included) with the work that cannot be
avoided, done by hand in one process: validating the same addresses with email-validator, parsing each
row's signup time, and a raw ``sqlite3.executemany`` of the rows into the same table. Target: at most 1.5x.
Also checks that memory does not grow with the file: peak RSS at 100,000 rows within 1.5x of that at
20,000 rows.

The export has what form tools write: a signup time (``YYYY-MM-DD HH:MM:SS``, in the ``timezone``
setting), first and last names, the address, the topics chosen (labels, one to three, some none) and a
consent column (every 50th row says no, and is not imported).

Run: ``make bench`` (or ``.venv/bin/python bench/import_bench.py [--rows N]``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

BASELINE = r"""
import base64, csv, secrets, sqlite3, sys
from datetime import datetime, UTC
from email_validator import validate_email
path, db = sys.argv[1], sys.argv[2]
now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
rows = []
with open(path, encoding="utf-8-sig", newline="") as f:
    reader = csv.reader(f)
    next(reader)
    for row in reader:
        if row[5] != "yes":
            continue
        email = validate_email(row[3], check_deliverability=False).normalized
        signed_up = datetime.fromisoformat(row[0]).replace(tzinfo=UTC)
        public_id = base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()  # links' name for them
        rows.append((email, email.lower(), f"{row[1]} {row[2]}", public_id, "pending", "import", signed_up.isoformat(), now))
connection = sqlite3.connect(db)
connection.execute("PRAGMA journal_mode=WAL")
connection.executemany(
    "INSERT INTO subscribers (email, email_key, name, public_id, status, source, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
connection.commit()
"""

TOPICS = ["FAQ updates", "FAQ updates, Client stories", "Clinic news", "", "Client stories; Clinic news",
          "FAQ updates, Client stories, Clinic news"]  # fmt: skip


def generate(path: Path, rows: int) -> None:
    start = datetime(2026, 1, 1, 8, 0, 0)
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(["Submitted At", "First Name", "Last Name", "Email Address", "Topics", "Consent"])
        for index in range(rows):
            writer.writerow(
                [
                    (start + timedelta(seconds=97 * index)).isoformat(" "),
                    f"First{index}",
                    f"Last, {index}",
                    f"person.{index}@example.org",
                    TOPICS[index % len(TOPICS)],
                    "no" if index % 50 == 49 else "yes",
                ]
            )


class Run(NamedTuple):
    wall_s: float
    cpu_s: float  # user + system: steadier than wall time on a shared machine
    rss_mib: int
    stdout: bytes


def run(argv: list[str], cwd: Path) -> Run:
    """Wall time, CPU time, peak RSS and output of one child process."""
    # Outputs go to files, read once the child has ended: a pipe could fill up and stall it.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        output, errors = out.read(), err.read()
    if status != 0:
        raise SystemExit(f"{argv[:4]} failed: {errors.decode()}")
    return Run(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, output)


def fresh_store(folder: Path, name: str) -> str:
    url = f"sqlite:///{folder / name}"
    subprocess.run([sys.executable, "-m", "newsletter", "--db", url, "init"], check=True, capture_output=True)
    return url


def measure(folder: Path, rows: int, repeat: int) -> dict[str, float]:
    """Best of ``repeat`` runs of each, alternating, each into a fresh store."""
    export = folder / f"signups-{rows}.csv"
    generate(export, rows)
    expected = rows - rows // 50  # every 50th row says no to consent
    ours_runs, base_runs = [], []
    for attempt in range(repeat):
        ours_url = fresh_store(folder, f"ours-{rows}-{attempt}.db")
        base_url = fresh_store(folder, f"base-{rows}-{attempt}.db")
        command = [sys.executable, "-m", "newsletter", "--db", ours_url, "subscribers", "import", str(export), "--json"]
        ours = run(command, folder)
        report = json.loads(ours.stdout)
        if report["imported"] != expected or len(report["no_consent"]) != rows // 50 or report["invalid"]:
            raise SystemExit(f"the import did not do its work: {ours.stdout[:300]!r}")
        ours_runs.append(ours)
        base_runs.append(
            run([sys.executable, "-c", BASELINE, str(export), base_url.removeprefix("sqlite:///")], folder)
        )
    ours_best, base_best = min(ours_runs), min(base_runs)
    ours_cpu, base_cpu = min(r.cpu_s for r in ours_runs), min(r.cpu_s for r in base_runs)
    return {
        "rows": rows,
        "ours_s": ours_best.wall_s,
        "baseline_s": base_best.wall_s,
        "ratio": ours_best.wall_s / base_best.wall_s,
        "ours_cpu_s": ours_cpu,
        "baseline_cpu_s": base_cpu,
        "cpu_ratio": ours_cpu / base_cpu,
        "ours_rss_mib": max(r.rss_mib for r in ours_runs),
        "baseline_rss_mib": max(r.rss_mib for r in base_runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="newsletter-bench-") as tmp:
        folder = Path(tmp)
        small = measure(folder, args.small, args.repeat)
        large = measure(folder, args.rows, args.repeat)
    for result in (small, large):
        print(
            f"{result['rows']:>7} rows: import {result['ours_s']:.2f} s, baseline {result['baseline_s']:.2f} s, "
            f"ratio {result['ratio']:.2f}x (target <= 1.5x); CPU {result['ours_cpu_s']:.2f} s against "
            f"{result['baseline_cpu_s']:.2f} s, {result['cpu_ratio']:.2f}x; peak RSS {result['ours_rss_mib']} MiB "
            f"(baseline {result['baseline_rss_mib']} MiB)"
        )
    growth = large["ours_rss_mib"] / small["ours_rss_mib"]
    print(f"peak RSS {args.rows} rows / {args.small} rows: {growth:.2f}x (target <= 1.5x)")
    ok = large["ratio"] <= 1.5 and growth <= 1.5
    print("PASS" if ok else "MISS")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
