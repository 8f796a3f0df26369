"""Files the product writes: created private (0600, folders 0700).

Exports, the SQLite store and its WAL files and ``.eml`` files name people on a clinic's list, which
can reveal health information; campaign drafts and builds may hold a client's story before it is
de-identified; a key file is a secret. Nobody else on the machine should read any of them, whatever
the umask. (What comes back, bounces included, is kept in the store, not in files.)
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from newsletter.errors import InputError

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing; every folder this call creates is 0700."""
    missing = []
    folder = path
    while not folder.is_dir() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            if folder.is_dir():
                continue  # made meanwhile by someone else: theirs to keep as it is
            raise
        folder.chmod(FOLDER_MODE)  # mkdir's mode is filtered by the umask
    return path


def touch_private(path: Path) -> None:
    """Create an empty 0600 file if there is none, so that whoever fills it later inherits the mode."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def write_private(path: Path, chunks: Iterable[str]) -> None:
    """Write text to ``path`` as a private file, never leaving half a file under the real name.

    A path that is a symlink, a device (``/dev/stdout``) or a pipe is written through, as the user
    asked, rather than replaced by a regular file.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    try:
        if info is not None and not stat.S_ISREG(info.st_mode):
            with open(path, "w", encoding="utf-8", newline="") as handle:
                handle.writelines(chunks)
            return
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")  # 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.writelines(chunks)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
