"""Everything `make demo` does, from Python: import a CSV, build a campaign, send it, read the report.

Run it from anywhere: ``python docs/examples/send_from_python.py``. It works in a temporary folder
with its own database and sends through the memory transport, so it touches nothing of yours.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

from newsletter.campaigns import faq
from newsletter.campaigns import service as campaigns
from newsletter.config import load_settings
from newsletter.delivery import faq_history
from newsletter.delivery import service as delivery
from newsletter.delivery.prepare import prepare
from newsletter.delivery.transports import transport_factory
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store.engine import init_store, open_store
from newsletter.subscribers import queries
from newsletter.subscribers.importer import import_csv, open_csv

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    # Secrets only ever come from the environment; this example makes a throwaway one if none is set.
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", secrets.token_urlsafe(32))
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        for name in ("newsletter.toml", "campaigns", "templates", "faq"):
            source = REPO / name
            copy = shutil.copytree if source.is_dir() else shutil.copy
            copy(source, project / name)
        # The same settings object the CLI builds: defaults < newsletter.toml < NEWSLETTER_* < overrides.
        settings = load_settings(project, overrides={"transport": "memory:", "rate": 0}).settings
        init_store(settings.resolved_database_url)
        store = open_store(settings.resolved_database_url)
        try:
            # 1. Import the signup export: one transaction, a report of what happened to each row. Each
            #    person gets the topics they chose (labels matched to the topics' titles in the settings),
            #    and a consent record with their signup time; a row that says no to consent is left out.
            with open_csv(str(REPO / "samples" / "signup-export.csv")) as stream, store.session() as session:
                report = import_csv(
                    session,
                    stream,
                    origin="signup-export.csv",
                    wording_version=settings.consent_version,
                    confirmed=True,
                    topic_choices=settings.topic_choices,
                    zone=settings.zone,
                    secret_key=settings.secret_key,
                )
            print(
                f"imported {report.imported}, invalid {len(report.invalid)}, without consent {len(report.no_consent)}"
            )

            # 2. Build the campaign once (render, then lint the rendering) and write the preview files.
            prepared = prepare("faq-addiction", settings)
            built = campaigns.write_files(prepared.rendered, project / "build")
            print(f"built {built.slug}: {built.html_bytes} bytes of HTML")

            # 3. Send it, to those who chose FAQ updates. The outbox is the ledger: running this twice
            #    sends nothing twice.
            MemoryTransport.reset()
            result = delivery.send(store, prepared, transport=transport_factory(settings))
            print(f"sent {result.counts.sent} of {result.counts.audience}; exit code {result.exit_code}")

            # 4. Read what went out, and where the list stands.
            first = MemoryTransport.outbox()[0]
            print(f"first message to {first.recipient}, {len(first.data)} bytes")
            with store.session() as session:
                print(f"subscribers by status: {queries.stats(session)['by_status']}")

            # 5. Which FAQ answers subscribers have not heard yet (the campaign carried two by reference).
            with store.session(commit=False) as session:
                report = faq_history.changes_since(session, faq.load_faq(settings.faq_path))
            print(f"FAQ entries new or changed since {report.since}: {[c.id for c in report.changes]}")
        finally:
            store.dispose()


if __name__ == "__main__":
    main()
