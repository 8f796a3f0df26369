"""Counting calls to a function, to prove that work happens once per campaign, not per recipient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class CallCounter:
    def __init__(self, wrapped: Callable[..., Any]) -> None:
        self.wrapped, self.calls = wrapped, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.wrapped(*args, **kwargs)
