"""The local loop, as a new staff member tries it: `make demo`, then `newsletter serve` on this machine,
the subscriber side in a browser's place (subscribe, confirm from the .eml, unsubscribe).

Real parts: the `newsletter serve` command in a process of its own on a real socket, the file
transport's .eml files, and `make demo` itself, twice, in a fresh copy of the repository.
"""

from __future__ import annotations

import email
import email.policy
import os
import queue
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from newsletter.config import is_loopback, load_settings
from newsletter.web import close_app, create_app
from newsletter.web.devserver import dev_server, own_base_url
from tests.support.web import SECRET, web_settings

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
PROJECT_SETTINGS = (
    'organisation = "Harvest"\n'
    'postal_address = "100 Example Street, Springfield, ZZ 00000"\n'
    'from_address = "updates@news.harvest.example"\n'
    'public_base_url = "https://news.harvest.example"\n'
    'transport = "file:outbox/"\n'
)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost.", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("news.harvest.example", False),
    ],
)
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_own_base_url_brackets_ipv6() -> None:
    assert own_base_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert own_base_url("::1", 8001) == "http://[::1]:8001"


def test_elsewhere_than_loopback_links_go_to_public_base_url(tmp_path: Path) -> None:
    settings = web_settings(tmp_path, f"sqlite:///{tmp_path / 's.db'}")
    from newsletter.store.engine import init_store, open_store

    init_store(settings.resolved_database_url)
    store = open_store(settings.resolved_database_url)
    try:
        for host, local in (("0.0.0.0", False), ("127.0.0.1", True)):
            server = dev_server(settings, store=store, host=host, port=0, report=print)
            try:
                expected = own_base_url(host, server.server.port) if local else settings.public_base_url
                assert server.local is local and server.settings.public_base_url == expected
            finally:
                server.close()
    finally:
        store.dispose()


# --- `newsletter serve` in a process of its own ---------------------------------------------------------


@dataclass
class Served:
    process: subprocess.Popen[str]
    base: str = ""
    out: list[str] = field(default_factory=list)
    err: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)  # stderr lines read so far

    def next_email_line(self, timeout: float = 10) -> str:
        """The next line serve prints about an email (Werkzeug logs each request there too)."""
        while not (line := self.err.get(timeout=timeout)).startswith("Email "):
            self.seen.append(line)
        self.seen.append(line)
        return line


def _pump(stream: object, sink: queue.Queue[str] | list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.put(line) if isinstance(sink, queue.Queue) else sink.append(line)


@contextmanager
def newsletter_serve(project: Path, *args: str, key: str | None = SECRET) -> Iterator[Served]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    if key is not None:
        env["NEWSLETTER_SECRET_KEY"] = key
    command = [sys.executable, "-m", "newsletter", "--project", str(project), "serve", *args]
    process = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    served = Served(process)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    pumps = [
        threading.Thread(target=_pump, args=(process.stdout, served.out)),
        threading.Thread(target=_pump, args=(process.stderr, served.err)),
    ]
    for pump in pumps:
        pump.start()
    match = re.match(r"Serving on (http://[^/]+)/subscribe", first)
    try:
        assert match, f"serve did not start: {first!r}"
        served.base = match[1]
        served.out.insert(0, first)
        yield served
    finally:
        process.terminate()
        process.wait(timeout=10)
        for pump in pumps:
            pump.join(timeout=10)
        process.stdout.close()
        process.stderr.close()


def post(url: str, data: dict[str, str]) -> str:
    body = urllib.parse.urlencode(data).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=10) as response:
        return str(response.read().decode())


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def text_of(path: Path) -> str:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(("plain",))  # type: ignore[attr-defined]
    assert body is not None
    return str(body.get_content())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "newsletter.toml").write_text(PROJECT_SETTINGS, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "--project", str(tmp_path), "init"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_the_subscriber_side_works_end_to_end_under_serve(project: Path) -> None:
    """Subscribe, confirm from the .eml, reach the preferences, unsubscribe: all on this machine, with
    each email's .eml file named as it is written and no address in what serve prints."""
    with newsletter_serve(project, "--port", "0") as served:
        port = served.base.rsplit(":", 1)[1]
        assert served.base == f"http://127.0.0.1:{port}"
        said = "".join(served.out[:3])
        assert f"Links in the emails it sends point here, {served.base}" in said
        assert "https://news.harvest.example" in said and "outbox/" in said

        page = post(f"{served.base}/subscribe", {"email": "ana@example.org", "name": "Ana", "topic": "faq-updates"})
        assert "Check your inbox" in page
        line = served.next_email_line()
        match = re.fullmatch(
            r'Email "Please confirm your subscription to Harvest\'s newsletter": written to (\S+\.eml)\n', line
        )
        assert match, line
        eml = project / match[1]
        assert eml.is_file() and eml.parent == project / "outbox"

        confirm = re.search(r"http://\S+/confirm/\S+", text_of(eml))
        assert confirm and confirm[0].startswith(f"{served.base}/confirm/")
        assert "Confirm my subscription" in get(confirm[0])
        confirmed = post(confirm[0], {})
        assert "subscribed" in confirmed
        preferences = re.search(r'href="(/preferences/[^"]+)"', confirmed)
        assert preferences, confirmed
        unsubscribe = re.search(r'href="(/unsubscribe/[^"]+)"', get(served.base + preferences[1]))
        assert unsubscribe
        assert "unsubscribed" in post(served.base + unsubscribe[1], {})

        # Every email is reported, each as it is written.
        post(f"{served.base}/subscribe", {"email": "bo@example.org", "topic": "faq-updates"})
        assert served.next_email_line().startswith('Email "Please confirm your subscription')
    printed = "".join(served.out + served.seen) + "".join(served.err.queue)
    assert "@example.org" not in printed and SECRET not in printed
    status = subprocess.run(
        [sys.executable, "-m", "newsletter", "--project", str(project), "subscribers", "show", "ana@example.org"],
        capture_output=True,
        text=True,
    )
    assert "unsubscribed" in status.stdout


def test_serve_refuses_to_start_without_a_secret_key(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "--project", str(project), "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")},
        timeout=30,
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "NEWSLETTER_SECRET_KEY is not set" in result.stderr


def test_serve_on_a_port_in_use_is_a_one_line_error(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "newsletter", "--project", str(project), "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")},
                "NEWSLETTER_SECRET_KEY": SECRET,
            },
            timeout=30,
        )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


# --- `make demo`, twice, in a fresh copy, and its links under serve --------------------------------------


def fresh_copy(destination: Path) -> Path:
    """The repository's files as a clone would have them (tracked files only, as they are now)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    for name in listed.stdout.decode().split("\0"):
        if name and (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    return destination


def make_demo(copy: Path) -> str:
    # The venv of this test run stands in for the one `make demo` would build (`-o`: not rebuilt),
    # so the copy is a fresh clone in every other way.
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", f"{VENV}/.installed", "demo", f"VENV={VENV}"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def test_make_demo_twice_in_a_fresh_clone_and_its_links_work_under_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = fresh_copy(tmp_path / "clone")
    assert not (copy / ".newsletter-dev-key").exists()
    first = make_demo(copy)
    key_file = copy / ".newsletter-dev-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 32
    assert "faq-addiction: 9 sent now" in first and "client-stories: 6 sent now" in first
    # The FAQ answers not yet sent, then what comes back: a hard bounce and a complaint, in the report.
    assert "5 FAQ entries new or changed since faq-addiction" in first
    assert "1 hard, 0 soft" in first and "1 complaint(s)" in first and "2 subscriber(s) suppressed" in first
    assert re.search(r"hard bounces\t1\n", first) and re.search(r"complaints\t1\n", first)
    second = make_demo(copy)
    assert "faq-addiction: 0 sent now; 9 already sent earlier" in second
    assert "client-stories: 0 sent now; 6 already sent earlier" in second
    assert "2 seen before. 0 subscriber(s) suppressed" in second  # the samples again change nothing
    assert key_file.read_text().strip() == key  # the same key: the first run's links still work
    assert key not in first + second
    ignored = subprocess.run(["git", "check-ignore", "-q", ".newsletter-dev-key"], cwd=REPO)
    assert ignored.returncode == 0, ".newsletter-dev-key is not in .gitignore"

    # `make serve` runs the app on 127.0.0.1:8000 with that key: the demo's links lead there and work.
    emls = sorted((copy / "outbox").glob("*.eml"))
    assert len(emls) == 15
    unsubscribe = re.search(r"(http://127\.0\.0\.1:8000)(/unsubscribe/\S+)", text_of(emls[0]))
    assert unsubscribe, text_of(emls[0])
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", key)  # as `make serve` passes it
    settings = load_settings(copy).settings
    app = create_app(settings)
    try:
        page = app.test_client().get(unsubscribe[2])
        assert page.status_code == 200 and b"Unsubscribe" in page.data
    finally:
        close_app(app)
    serve_line = subprocess.run(
        ["make", "--no-print-directory", "-n", "serve", f"VENV={VENV}"], cwd=copy, capture_output=True, text=True
    ).stdout
    assert 'NEWSLETTER_SECRET_KEY="${NEWSLETTER_SECRET_KEY:-$(cat .newsletter-dev-key)}"' in serve_line
    assert "serve --host 127.0.0.1 --port 8000" in serve_line
