"""Writes each message as an ``.eml`` file in a folder: the demo's default transport.

URLs: ``file:outbox/`` (relative to the project folder) or ``file:///absolute/path``. The file
holds the bytes an SMTP server would have received, after a first line ``Return-Path: <sender>``
with the envelope sender, as a delivery agent writes it: so the envelope (the VERP address with
``bounce_address`` set) can be seen. The envelope recipient is the ``To:`` address.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from newsletter.delivery.transports.base import (
    OutgoingMessage,
    SendResult,
    TemporaryFailure,
    Transport,
    TransportConfigError,
    TransportContext,
    query_options,
    refuse_password,
    safe_url,
)
from newsletter.files import private_folder

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]+")


def file_name(message_id: str) -> str:
    """A file name for a message id: readable, unique, and unable to leave its folder.

    The digest keeps ids that only differ in replaced characters (or in case, on macOS) apart;
    the same id always maps to the same name, so a retried message replaces its earlier copy.
    """
    slug = _UNSAFE.sub("_", message_id.strip().strip("<>"))[:64].lstrip(".") or "message"
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{slug}-{digest}.eml"


class FileTransport(Transport):
    """One ``.eml`` per message in ``folder``, created on open if missing."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult, context: TransportContext) -> Self:
        refuse_password(url)
        query_options(url, allowed=())
        if url.netloc not in ("", "localhost") or url.fragment:
            raise TransportConfigError(f"{safe_url(url)}: expected file:FOLDER or file:///absolute/folder")
        if not url.path:
            raise TransportConfigError(f"{safe_url(url)}: no folder given; for example file:outbox/")
        folder = Path(urllib.parse.unquote(url.path)).expanduser()
        return cls(folder if folder.is_absolute() else context.base_dir / folder)

    def describe(self) -> str:
        return self.folder.absolute().as_uri() + "/"

    def _open(self) -> None:
        try:
            private_folder(self.folder)
        except OSError as exc:
            raise TransportConfigError(f"cannot create the outbox folder {self.folder}: {exc.strerror or exc}") from exc

    def forget(self, message_ids: Iterable[str]) -> int:
        """Delete the files of these messages, where they are still in the folder."""
        removed = 0
        for message_id in message_ids:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / file_name(message_id)).unlink()
                removed += 1
        return removed

    def _send(self, message: OutgoingMessage) -> SendResult:
        path = self.folder / file_name(message.message_id)
        try:
            # A reader (or a crash) never sees half a file: write aside, then rename over.
            # No fsync: this is for looking at, not a mail queue that must survive power loss.
            fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(b"Return-Path: <" + message.sender.encode("utf-8") + b">\r\n")
                    file.write(message.data)
                os.replace(temp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as exc:
            raise TemporaryFailure(None, f"cannot write {path}: {exc.strerror or exc}") from exc
        return SendResult(message.message_id, None, str(path))
