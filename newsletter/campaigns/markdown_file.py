"""Markdown files with YAML front matter, as staff write them: campaigns and FAQ entries.

Reading one as UTF-8 and splitting off its front matter, with errors that name the file and the line,
because staff fix them in their editor. Each kind of file passes its own error class, so a caller
catches the error of the file it asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler

from newsletter.errors import InputError


class FileError(InputError):
    """A file that cannot be used; the message names the file and, where known, the line."""

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.reason = message
        where = "" if path is None else f"{path}:{line}: " if line else f"{path}: "
        super().__init__(where + message)


def read_text(path: Path, error: type[FileError]) -> str:
    """The file as text, with BOM and line ends normalised; not UTF-8 is an error on its line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}", path=path) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8", path=path, line=line
        ) from None
    return normalise(text)


def normalise(text: str) -> str:
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


# The fence the parser (python-frontmatter) accepts around front matter: three or more dashes.
FENCE = YAMLHandler.FM_BOUNDARY


def split_front_matter(
    text: str, label: Path | str, error: type[FileError], *, example: str
) -> tuple[dict[str, Any], str, int]:
    """Front matter as a dict, the body, and how many file lines come before the body.

    ``example`` names the first key, for the message when there is no front matter at all.
    """
    handler = YAMLHandler()
    if not handler.detect(text):
        raise error(
            f"no front matter: start the file with a '---' line, '{example}', and another '---' line",
            path=label,
            line=1,
        )
    try:
        raw, body = handler.split(text)
    except ValueError:
        raise error("the front matter opened here is never closed by a '---' line", path=label, line=1) from None
    try:
        meta = handler.load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        opening = handler.FM_BOUNDARY.match(text)
        yaml_offset = text.count("\n", 0, opening.end()) if opening else 0
        line = yaml_offset + mark.line + 1 if mark is not None else None
        raise error(f"front matter is not valid YAML: {problem}", path=label, line=line) from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise error(f"front matter must be 'key: value' lines, not a {yaml_type(meta)}", path=label, line=2)
    offset = text.count("\n", 0, len(text) - len(body))
    # python-frontmatter's boundary pattern swallows the rest of the closing '---' line and any blank
    # lines after it except the last newline, so the body starts with that newline.
    if body.startswith("\n"):
        body, offset = body[1:], offset + 1
    return meta, body, offset


def yaml_type(value: Any) -> str:
    return {bool: "true/false", int: "number", float: "number", list: "list", dict: "mapping"}.get(
        type(value), type(value).__name__
    )
