"""Campaign files and subscribers for tests of linting and sending."""

from __future__ import annotations

from pathlib import Path

from newsletter.config import Settings
from newsletter.store.engine import open_store
from newsletter.store.models import Source
from newsletter.subscribers import service
from newsletter.subscribers.service import ConsentInfo

SECRET_ENV = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef-long"}

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
preheader: How ketamine therapy helped three of our clients.
---
::: vignette
A client wanted to decrease drinking so that he could go to bars socially with his buddies.
After three ketamine sessions he preferred a non-alcoholic drink.
:::
"""


def clinic_settings(project: Path, **extra: object) -> Settings:
    """Settings like the clinic's, for tests that build them directly."""
    return Settings(
        project_dir=project,
        organisation="Harvest Test Clinic",
        postal_address="1 Example Way, Springfield, ZZ 00000",
        from_address="news@harvest.example",
        public_base_url="https://news.harvest.example",
        **extra,  # type: ignore[arg-type]
    )


def write_campaign(project: Path, slug: str, text: str) -> Path:
    folder = project / "campaigns"
    folder.mkdir(exist_ok=True)
    path = folder / f"{slug}.md"
    path.write_text(text, encoding="utf-8")
    return path


def add_subscribers(
    database_url: str, count: int, *, tags: tuple[str, ...] = ("faq-updates",), prefix: str = "reader"
) -> list[str]:
    emails = [f"{prefix}{n:04}@example.org" for n in range(count)]
    store = open_store(database_url)
    try:
        with store.session() as session:
            for email in emails:
                service.add(session, email, consent=ConsentInfo(Source.MANUAL, "v1"), confirmed=True, tags=list(tags))
    finally:
        store.dispose()
    return emails
