"""Exports of the list: CSV for the spreadsheets staff open, JSON for programs.

A CSV cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a formula
by spreadsheet programs, and anyone can type such a name into the public form. Those cells get a
leading apostrophe (the OWASP advice), which spreadsheets show as text. JSON stays exact.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

FIELDS = ["email", "name", "status", "tags", "source", "created_at", "confirmed_at", "unsubscribed_at"]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """The value as a spreadsheet will take it as text."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_chunks(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The records as CSV, a row at a time, so memory does not grow with the list."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FIELDS, extrasaction="ignore")
    writer.writeheader()
    for record in records:
        row = {**record, "tags": " ".join(record["tags"])}
        writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def json_chunks(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The records as one JSON list, streamed."""
    yield "["
    for index, record in enumerate(records):
        yield ("," if index else "") + "\n  " + json.dumps(record, ensure_ascii=False)
    yield "\n]\n"
