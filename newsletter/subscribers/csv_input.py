"""A signup export's bytes as CSV rows: its encoding and its separator, each worked out once per file.

Form tools and spreadsheets all write "CSV", in several ways:

- **Encoding.** UTF-8, with or without a byte-order mark (what "CSV UTF-8" writes), and UTF-16 with a
  byte-order mark (Excel's "Unicode Text") are read as they are. Anything else stops the import at the
  first line that is not UTF-8, naming the line: Excel's plain "CSV" on Windows writes Windows-1252, and
  guessing would turn "Zoë" into "ZoÃ«" without a word. ``encoding`` (``--encoding cp1252``) reads such
  a file anyway. The line is found only when the decoder fails, from the csv reader's line count and
  the failing block, so reading costs nothing more.
- **Separator.** Commas; semicolons (Excel where the decimal mark is a comma); tabs ("Text
  (Tab-delimited)" exports); vertical bars. The header decides: the separator that splits it into
  cells, one of which is the email column, and the most cells if several do. The header is the one
  line every export has and the one that has to be right; data lines prove nothing (a topics cell
  holds commas and semicolons alike). When no separator finds the email column, the error names the
  one the header seems to use (by :class:`csv.Sniffer`).
- **Not CSV at all.** An Excel workbook (``.xlsx``, ``.xls``) or an OpenDocument sheet is refused with
  what to do, rather than read as garbage.
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, cast

from newsletter.errors import InputError

SEPARATORS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}
HEADER_MAX_LINES = 20  # a header cell may hold a line break inside quotes; a header of more lines is not one
_SPREADSHEETS = {
    b"PK\x03\x04": "a spreadsheet (.xlsx or .ods)",
    b"\xd0\xcf\x11\xe0": "an Excel 97-2003 workbook (.xls)",
}
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
SAVE_AS = 'save it as "CSV UTF-8"'


@dataclass(frozen=True)
class Header:
    """The header row, the separator that splits it, and how many lines of the file it took."""

    cells: list[str]
    separator: str
    lines: int

    @property
    def separator_name(self) -> str:
        return SEPARATORS.get(self.separator, repr(self.separator))


def open_csv(path: str, *, encoding: str | None = None) -> IO[str]:
    """Open an export for :func:`newsletter.subscribers.importer.import_csv`; ``-`` is standard input.

    Without ``encoding``: UTF-8 (a byte-order mark is dropped), or UTF-16 when the file starts with its
    byte-order mark. A name Python's codecs know (``cp1252``, ``latin-1``) reads the file as that.
    """
    if encoding is not None:
        check_encoding(encoding)
    buffered = _binary(path)
    start = buffered.peek(4)[:4]
    for magic, what in _SPREADSHEETS.items():
        if start.startswith(magic):
            buffered.close()
            raise InputError(f"{path} is {what}, not CSV: open it and {SAVE_AS}")
    if encoding is None:
        encoding = "utf-16" if start.startswith(_UTF16_BOMS) else "utf-8-sig"
    elif codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # a byte-order mark is no part of the header's first cell
    # newline="" lets the csv module see line breaks inside quoted cells.
    return io.TextIOWrapper(buffered, encoding=encoding, newline="")


def _binary(path: str) -> io.BufferedReader:
    if path == "-":
        stdin = sys.stdin.buffer
        # Standard input may be any binary stream (a test's BytesIO): buffered, its start can be peeked at.
        return stdin if isinstance(stdin, io.BufferedReader) else io.BufferedReader(cast(io.RawIOBase, stdin))
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def check_encoding(name: str) -> str:
    """``name`` if Python can decode text with it; otherwise a one-line error with examples."""
    try:
        io.TextIOWrapper(io.BytesIO(), encoding=name)  # refuses names that are not text codecs (base64)
    except LookupError:
        raise InputError(
            f"unknown text encoding {name!r}; for example cp1252 (Excel's CSV on Windows), latin-1 or utf-8"
        ) from None
    return name


def read_header(stream: IO[str], has_email: Callable[[list[str]], bool]) -> Header:
    """The header row; ``has_email`` says whether a split of it holds the email column."""
    lines: list[str] = []
    try:
        while len(lines) < HEADER_MAX_LINES:
            line = stream.readline()
            if not line:
                break
            lines.append(line)
            if "".join(lines).count('"') % 2 == 0:  # no quoted cell left open
                break
    except UnicodeDecodeError as exc:
        raise not_decodable(exc, len(lines)) from None
    text = "".join(lines)
    if not text.strip():
        raise InputError("the file is empty")
    splits = {separator: _cells(text, separator) for separator in SEPARATORS}
    found = [separator for separator, cells in splits.items() if has_email(cells)]
    if not found:
        seen = _separator_seen(text)
        splits[seen] = _cells(text, seen)
        found = [seen] if seen not in SEPARATORS and has_email(splits[seen]) else []
        if not found:
            # No split finds the email column: give the caller the one the file seems to use, so
            # that its error shows the header as the file has it.
            return Header(splits[seen], seen, len(lines))
    best = max(found, key=lambda separator: len(splits[separator]))  # the first of equals
    return Header(splits[best], best, len(lines))


def _cells(text: str, separator: str) -> list[str]:
    return next(csv.reader(io.StringIO(text, newline=""), delimiter=separator), [])


def _separator_seen(text: str) -> str:
    try:
        # Not letters, digits or spaces: "Email Address" is one cell, whatever the Sniffer thinks.
        return csv.Sniffer().sniff(text, delimiters=",;\t|:^~#/").delimiter
    except csv.Error:
        counts = {separator: text.count(separator) for separator in SEPARATORS}
        return max(counts, key=lambda separator: counts[separator]) if any(counts.values()) else ","


def not_decodable(exc: UnicodeDecodeError, lines_before: int) -> InputError:
    """The error for a file that is not in the encoding it was read with.

    ``lines_before`` is how many lines the reader had taken when decoding failed. The text stream
    decodes a block at a time and keeps none of a block that fails, so the failing line is the one
    after those, plus the line breaks of the block before the bad byte.
    """
    data = bytes(exc.object)
    line = lines_before + 1 + data.count(b"\n", 0, exc.start)
    byte = data[exc.start] if exc.start < len(data) else 0
    if codecs.lookup(exc.encoding).name != "utf-8":
        return InputError(
            f"line {line} cannot be read as {exc.encoding} (byte 0x{byte:02X}); check --encoding, "
            f"or {SAVE_AS}; nothing was imported"
        )
    try:
        char = bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        char = ""
    seen = f', "{char}" in Windows-1252' if char.isprintable() and not char.isascii() else ""
    return InputError(
        f"line {line} is not UTF-8 (byte 0x{byte:02X}{seen}): {SAVE_AS}, or import it with --encoding cp1252; "
        "nothing was imported"
    )
