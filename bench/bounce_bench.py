"""Benchmark: `newsletter bounces ingest` over a Maildir of 10,000 mixed bounces, on one core.

What is timed is the whole command, process start to exit, as an operator (or a cron job) runs it:
Python start-up, reading every file, parsing and classifying each message (the standard library's
email parser, flufl.bounce for text bounces), matching it to its outbox row (VERP tokens, recipients
within 30 days, keyed Message-IDs), recording it with its raw bytes, and applying the policy
(hard bounces and complaints suppress, soft bounces are counted over each subscriber's latest sends)
in a SQLite store. The process is pinned to one CPU.

The messages are the sample corpus (tests/data/bounces/: Postfix, Exim and qmail bounces, Microsoft
365 and Exchange NDRs, ARF complaints, delays, auto-replies, people's replies), each turned into many
by giving it a subscriber's address, a Message-ID of its own and, for half of the delivery reports,
the VERP envelope sender of that subscriber's message (the other half match by their recipient, as
a relay-rewritten bounce does). Every message is new: all 10,000 are recorded.

Setup per run: a fresh temporary project; a SQLite store with SUBSCRIBERS confirmed subscribers and
one sent campaign (its outbox rows carry real Message-IDs), made once and copied for every run; the
Maildir, made once. Target (from the issue): at least 1,000 messages per second. A second ingest of
the same Maildir is also timed (every message is then a duplicate) and reported.

Run: ``.venv/bin/python bench/bounce_bench.py`` (about a minute on 2 cores), or ``--quick``.
Exit status: 0 when the target is met, 1 on a MISS, 2 when a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from newsletter.delivery import ledger
from newsletter.delivery.links import Links
from newsletter.delivery.verp import Verp, make_message_id
from newsletter.store.engine import init_store, open_store
from newsletter.store.models import OutboxRow, OutboxState, Source, utcnow
from newsletter.subscribers import service
from newsletter.subscribers.service import ConsentInfo

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "bounces"
SECRET = "bench-secret-key-0123456789"
BOUNCE_ADDRESS = "bounce@news.harvest.example"
DOMAIN = "news.harvest.example"
TARGET = 1000.0
# The address each sample is about; the people's replies and auto-replies name none.
SAMPLE_ADDRESS = {
    "postfix-user-unknown.eml": "ana.lima@example.org",
    "postfix-full-mailbox-expired.eml": "bruno.costa@example.net",
    "postfix-mailbox-full-5.2.2.eml": "otto.ramos@example.org",
    "postfix-delayed-quoted-user-unknown.eml": "carla.dias@example.com",
    "relay-spam-block-5.7.1.eml": "marco.leite@mail.example.org",
    "relay-dmarc-reject.eml": "nina.prado@example.com",
    "m365-recipient-not-found.eml": "kai.souza@example.com",
    "exchange-queue-expired.eml": "lara.vieira@corp.example.com",
    "exim-user-unknown.eml": "diego.alves@example.net",
    "exim-unrouteable.eml": "elisa.nunes@nowhere.example",
    "exim-delay-warning.eml": "helena.cruz@example.net",
    "qmail-no-mailbox.eml": "igor.matos@example.com",
    "qmail-host-not-found.eml": "joana.pires@gone.example",
    "arf-abuse-complaint.eml": "paula.reis@example.com",
    "arf-redacted-headers-only.eml": None,
    "out-of-office-auto-submitted.eml": "rosa.teles@example.org",
    "out-of-office-vacation.eml": "sami.lopes@example.net",
    "human-please-remove-me.eml": "tomas.viana@example.org",
    "human-quotes-a-bounce.eml": None,
}
_OUR_ID = re.compile(rb"<c1\.m\d+\.[0-9a-f]{12}@news\.harvest\.example>")
_OWN_ID = re.compile(rb"^(Message-I[Dd]: *).*$", re.MULTILINE | re.IGNORECASE)


def make_store(folder: Path, subscribers: int) -> tuple[Path, list[tuple[str, int, str]]]:
    """A store with confirmed subscribers and one sent campaign; (address, outbox id, Message-ID) each."""
    path = folder / "pristine.db"
    url = f"sqlite:///{path}"
    init_store(url)
    store = open_store(url)
    links = Links(SECRET, "https://news.harvest.example")
    try:
        with store.session() as session:
            for n in range(subscribers):
                service.add(
                    session, f"reader.{n}@example.org", consent=ConsentInfo(Source.IMPORT, "bench"), confirmed=True
                )
            campaign = ledger.record_campaign(session, "client-stories", "Three client stories", "")
            ledger.materialise(session, campaign, [])
            rows = session.execute(select(OutboxRow.id)).scalars().all()
            now = utcnow()
            for outbox_id in rows:
                session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == outbox_id)
                    .values(
                        state=OutboxState.SENT.value,
                        sent_at=now,
                        message_id=make_message_id(links, campaign.id, outbox_id, DOMAIN),
                    )
                )
            sent = [
                (f"reader.{n}@example.org", outbox_id, make_message_id(links, campaign.id, outbox_id, DOMAIN))
                for n, outbox_id in enumerate(rows)
            ]
    finally:
        store.dispose()
    return path, sent


def make_maildir(folder: Path, count: int, sent: list[tuple[str, int, str]]) -> dict[str, int]:
    """COUNT messages from the corpus, each about one sent message, written as a Maildir."""
    verp = Verp(SECRET, BOUNCE_ADDRESS)
    samples = {name: (CORPUS / name).read_bytes() for name in sorted(SAMPLE_ADDRESS)}
    names = list(samples)
    for sub in ("new", "cur", "tmp"):
        (folder / sub).mkdir(parents=True)
    mix: dict[str, int] = {}
    for n in range(count):
        name = names[n % len(names)]
        address, outbox_id, message_id = sent[(n * 7919) % len(sent)]
        data = samples[name]
        if SAMPLE_ADDRESS[name]:
            data = data.replace(SAMPLE_ADDRESS[name].encode(), address.encode())
        data = _OUR_ID.sub(message_id.encode(), data)
        data = _OWN_ID.sub(rb"\g<1><bench." + str(n).encode() + b"@mx.example.net>", data, count=1)
        if n % 2:
            data = data.replace(BOUNCE_ADDRESS.encode(), verp.sender(outbox_id).encode())
        (folder / "new" / f"{1795511647 + n}.M{n}P4242.mx1.{DOMAIN}").write_bytes(data)
        mix[name] = mix.get(name, 0) + 1
    return mix


def ingest(project: Path, database: Path, maildir: Path) -> tuple[float, dict[str, Any]]:
    command = [sys.executable, "-m", "newsletter", "--project", str(project), "--db", f"sqlite:///{database}"]
    command += ["bounces", "ingest", str(maildir), "--json"]
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": SECRET}
    cpu = min(os.sched_getaffinity(0))
    started = time.perf_counter()
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu})
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"ingest failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return elapsed, json.loads(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1,000 messages, one run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.subscribers, args.repeat = 1000, 1000, 1
    folder = Path(tempfile.mkdtemp(prefix="bounce-bench-"))
    try:
        project = folder / "project"
        project.mkdir()
        print(f"Setting up: {args.subscribers} subscribers, {args.messages} bounces from {len(SAMPLE_ADDRESS)} samples")
        pristine, sent = make_store(folder, args.subscribers)
        mix = make_maildir(folder / "Maildir", args.messages, sent)
        rates, again = [], []
        for run in range(1, args.repeat + 1):
            database = folder / f"run{run}.db"
            shutil.copy(pristine, database)
            elapsed, report = ingest(project, database, folder / "Maildir")
            if report["processed"] != args.messages or report["errors"] or report["duplicates"]:
                print(f"run {run}: unexpected report {report}")
                return 2
            rates.append(args.messages / elapsed)
            print(
                f"run {run}: {args.messages} messages in {elapsed:.2f} s = {rates[-1]:,.0f} msg/s "
                f"(hard {report['hard']}, soft {report['soft']}, blocked {report['blocked']}, "
                f"delayed {report['delayed']}, complaints {report['complaints']}, auto-replies {report['auto_replies']}, "
                f"other {report['other']}, unmatched {report['unmatched']}; {report['suppressed']} suppressed)"
            )
            elapsed, report = ingest(project, database, folder / "Maildir")
            if report["duplicates"] != args.messages:
                print(f"run {run}: the second ingest changed something: {report}")
                return 2
            again.append(args.messages / elapsed)
            print(f"       again, all duplicates: {elapsed:.2f} s = {again[-1]:,.0f} msg/s")
        best = max(rates)
        shown = ", ".join(f"{name.removesuffix('.eml')} {n}" for name, n in sorted(mix.items()))
        print(f"Mix: {shown}")
        print(f"Best of {args.repeat}: {best:,.0f} msg/s, whole command, one core (target >= {TARGET:,.0f})")
        print(f"Re-ingest (duplicates): best {max(again):,.0f} msg/s")
        verdict = "PASS" if best >= TARGET else "MISS"
        print(f"{verdict}: ingest throughput")
        return 0 if verdict == "PASS" else 1
    finally:
        if args.keep:
            print(f"Kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
