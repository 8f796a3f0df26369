"""What a check says: one :class:`Check` per line, and the report that holds them."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

AREAS = ("spf", "dkim", "dmarc", "alignment", "mx", "transport", "list")


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One finding: ``id`` is ``area.name`` (``spf.count``), ``fix`` says what to change ("" when ok)."""

    id: str
    status: Status
    message: str
    fix: str = ""

    def __post_init__(self) -> None:
        area, dot, name = self.id.partition(".")
        if area not in AREAS or not dot or not name:
            raise ValueError(f"a check id is area.name with an area of {AREAS}, not {self.id!r}")

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "status": self.status.value, "message": self.message, "fix": self.fix}


def ok(check_id: str, message: str) -> Check:
    return Check(check_id, Status.OK, message)


def warn(check_id: str, message: str, fix: str) -> Check:
    return Check(check_id, Status.WARN, message, fix)


def fail(check_id: str, message: str, fix: str) -> Check:
    return Check(check_id, Status.FAIL, message, fix)


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.status is Status.FAIL for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def as_dict(self) -> dict[str, Any]:
        return {"checks": [c.as_dict() for c in self.checks]}


class Deadline:
    """The time left for the whole run, so that no server that never answers can hold it up."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def cap(self, seconds: float) -> float:
        """``seconds``, or less if the deadline comes sooner."""
        return min(seconds, self.remaining())
