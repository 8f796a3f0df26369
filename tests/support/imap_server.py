"""A real IMAP server for the tests: Debian's Dovecot, with a throw-away configuration in a temporary
folder, listening on a free port of 127.0.0.1 with one user, ``bounces``.

Dovecot runs as root here (CI does) and drops to ``nobody`` for mail; the mail folder belongs to
nobody. It runs in the foreground as the tests' child and is stopped by its pid, never by name.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"
USER = "bounces"
PASSWORD = "imap-test-password"


@dataclass(frozen=True)
class ImapServer:
    host: str
    port: int
    user: str
    password: str
    home: Path

    def url(self, folder: str = "INBOX") -> str:
        return f"imap://{self.user}@{self.host}:{self.port}/{folder}?tls=none&timeout=10"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _config(base: Path, port: int, uid: int, gid: int, home: Path) -> str:
    (base / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{home}\n", encoding="utf-8")
    return f"""
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = nobody
default_login_user = nobody
default_internal_group = nogroup
mail_location = maildir:~/Maildir
first_valid_uid = {uid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = {base}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""


@contextlib.contextmanager
def running_dovecot() -> Iterator[ImapServer]:
    if not os.path.exists(DOVECOT):
        raise RuntimeError("Dovecot not found; `make test` installs Debian's dovecot-imapd")
    # Its own folder, not pytest's (which only root may enter): the mail processes run as nobody.
    with tempfile.TemporaryDirectory(prefix="newsletter-dovecot-") as folder:
        base = Path(folder)
        base.chmod(0o755)
        yield from _run(base)


def _run(base: Path) -> Iterator[ImapServer]:
    nobody = pwd.getpwnam("nobody")
    for sub in ("run", "state", "home"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    home = base / "home"
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    port = _free_port()
    config = base / "dovecot.conf"
    config.write_text(_config(base, port, nobody.pw_uid, nobody.pw_gid, home), encoding="utf-8")
    # -F: in the foreground, so this process is ours to stop by its own pid.
    log = base / "dovecot.log"
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    shown = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise RuntimeError(f"Dovecot did not start:\n{shown}") from None
                time.sleep(0.05)
        yield ImapServer("127.0.0.1", port, USER, PASSWORD, home)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(home, ignore_errors=True)
