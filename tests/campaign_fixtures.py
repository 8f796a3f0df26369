"""Campaign files and subscribers for tests of linting and sending."""

from __future__ import annotations

from pathlib import Path

from newsletter import subscribers as service
from newsletter.db import open_store
from newsletter.models import Source
from newsletter.subscribers import ConsentInfo

SECRET_ENV = {"NEWSLETTER_SECRET_KEY": "test-secret-key"}

FAQ_CAMPAIGN = """---
subject: Can I get addicted to ketamine?
preheader: What 83 studies found.
audience: [faq-updates]
---
A short update from the clinic.

::: faq Can I get addicted to ketamine?
Researchers reviewed **83 studies** and found no transition to illicit use.
:::
"""

STORY_CAMPAIGN = """---
subject: Three client stories
---
::: vignette
A client wanted to decrease drinking so that he could go to bars socially with his buddies.
After three ketamine sessions he preferred a non-alcoholic drink.
:::
"""


def write_campaign(project: Path, slug: str, text: str) -> Path:
    folder = project / "campaigns"
    folder.mkdir(exist_ok=True)
    path = folder / f"{slug}.md"
    path.write_text(text, encoding="utf-8")
    return path


def add_subscribers(database_url: str, count: int, *, tags: tuple[str, ...] = ("faq-updates",), prefix: str = "reader") -> list[str]:
    emails = [f"{prefix}{n:04}@example.org" for n in range(count)]
    store = open_store(database_url)
    try:
        with store.session() as session:
            for email in emails:
                service.add(session, email, consent=ConsentInfo(Source.MANUAL, "v1"), confirmed=True, tags=list(tags))
    finally:
        store.dispose()
    return emails
