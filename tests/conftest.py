from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import create_engine, text

from newsletter.cli import cli
from newsletter.config import Settings
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store.engine import Store, open_store
from newsletter.web import close_app
from tests.support.campaigns import clinic_settings
from tests.support.pgserver import find_bindir, running_server
from tests.support.web import make_app

# Property tests run on a fixed budget in `make test`; `make fuzz` runs them long with the `fuzz`
# profile. A test's own @settings(max_examples=...) still wins over the profile.
hypothesis_settings.register_profile("default", max_examples=60, deadline=None)
hypothesis_settings.register_profile("fuzz", max_examples=5_000, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NEWSLETTER_* setting of the developer's leaks into a test, and no test writes into the repo."""
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    bindir = find_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries not found; `make test` installs Debian's postgresql package")
    with running_server(bindir) as url:
        yield url


def _fresh_postgres_database(admin_url: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend the product supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'subscribers.db'}"
    else:
        yield from _fresh_postgres_database(request.getfixturevalue("postgres_admin_url"))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    yield opened
    opened.dispose()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with the clinic-like settings a test needs."""
    (tmp_path / "newsletter.toml").write_text(
        'organisation = "Harvest Test Clinic"\n'
        'postal_address = "1 Example Way, Springfield, ZZ 00000"\n'
        'from_address = "news@harvest.example"\n'
        'public_base_url = "https://news.harvest.example"\n',
        encoding="utf-8",
    )
    return tmp_path


class Newsletter:
    """Runs the CLI in-process against one project folder and database, as a user would."""

    def __init__(self, project: Path, database_url: str) -> None:
        self.project = project
        self.database_url = database_url
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return self.runner.invoke(
            cli,
            ["--project", str(self.project), "--db", self.database_url, *args],
            input=input,
            env=env,
            catch_exceptions=False,
        )


@pytest.fixture
def newsletter(project: Path, database_url: str) -> Newsletter:
    return Newsletter(project, database_url)


@pytest.fixture
def settings(project: Path) -> Settings:
    """Clinic-like settings for the project folder (modules with other needs define their own)."""
    return clinic_settings(project)


# --- the web endpoint (Flask tutorial style: ``app`` and ``client``) ----------------------------------


@pytest.fixture
def app(store: Store, tmp_path: Path) -> Iterator[Flask]:
    MemoryTransport.reset()
    flask_app = make_app(store, tmp_path)
    yield flask_app
    close_app(flask_app)
    MemoryTransport.reset()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# --- a real browser (Debian's Chromium, driven by Playwright; never a downloaded one) ------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


# Module scope: Playwright's sync API keeps an event loop running in this thread while it is open,
# and the SMTP and engine tests in other modules start loops of their own.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found; `make test` installs Debian's chromium (never `playwright install`)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots and other files a person looks at after the run (kept by CI as artefacts)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
