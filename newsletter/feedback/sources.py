"""Where returned messages are read from: files, Maildir folders, mbox files, or standard input.

- A file holds one RFC 5322 message, unless it starts with an mbox ``From`` line: then it is an mbox
  file (read with the standard library's :mod:`mailbox`).
- A folder with ``cur/`` or ``new/`` is a Maildir: both are read, nothing is moved or marked.
  Any other folder: each ``.eml`` file in it (not in its subfolders) is a message, as in the file
  transport's ``outbox/``.
- ``-`` is standard input: one message, as a Postfix ``pipe`` transport, a ``.forward`` or procmail
  hands it over (a leading ``From`` line, as ``pipe`` with flag ``F`` writes, is dropped). An mbox
  stream works too.

A path that does not exist is refused before anything is read. A file that cannot be read later (its
permissions, a vanished Maildir file) is reported in :attr:`MessageReader.errors` and the rest is read.
"""

from __future__ import annotations

import mailbox
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from newsletter.errors import InputError

STDIN = "-"


class MessageReader:
    """Iterates ``(label, raw bytes)`` over the given paths, collecting read errors on the way."""

    def __init__(self, paths: Sequence[str], stdin: BinaryIO | None = None) -> None:
        if not paths:
            raise InputError("no input given; name files, Maildir folders, mbox files, or - for standard input")
        for path in paths:
            if path != STDIN and not os.path.exists(path):
                raise InputError(f"{path}: no such file or folder")
        if paths.count(STDIN) > 1:
            raise InputError("standard input (-) can be read only once")
        self.paths = list(paths)
        self.stdin = stdin
        self.errors: list[str] = []

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for path in self.paths:
            try:
                if path == STDIN:
                    yield from self._stdin()
                else:
                    yield from self._path(Path(path))
            except OSError as exc:
                self.errors.append(f"{path}: cannot be read ({exc.strerror or exc})")

    def _stdin(self) -> Iterator[tuple[str, bytes]]:
        if self.stdin is None:
            raise InputError("no standard input to read")
        data = self.stdin.read()
        if not data.startswith(b"From "):
            yield "standard input", data
            return
        with tempfile.NamedTemporaryFile(prefix="newsletter-stdin-", suffix=".mbox") as spool:
            spool.write(data)
            spool.flush()
            for n, raw in enumerate(_mbox(Path(spool.name)), start=1):
                yield f"standard input, message {n}", raw

    def _path(self, path: Path) -> Iterator[tuple[str, bytes]]:
        if path.is_dir():
            maildir = [path / sub for sub in ("new", "cur") if (path / sub).is_dir()]
            for folder in maildir or [path]:
                for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                    if entry.name.startswith(".") or entry.is_dir() or not (maildir or entry.name.endswith(".eml")):
                        continue
                    raw = self._read(Path(entry.path))
                    if raw is not None:
                        yield entry.path, raw
            return
        with path.open("rb") as file:
            mbox = file.read(5) == b"From "
        if mbox:
            for n, raw in enumerate(_mbox(path), start=1):
                yield f"{path}, message {n}", raw
        else:
            raw = self._read(path)
            if raw is not None:
                yield str(path), raw

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError as exc:  # a Maildir file another reader moved away, a permission
            self.errors.append(f"{path}: cannot be read ({exc.strerror or exc})")
            return None


def _mbox(path: Path) -> Iterator[bytes]:
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            yield box.get_bytes(key)
    finally:
        box.close()
