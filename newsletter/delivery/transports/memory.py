"""The test double: keeps messages in memory, in named mailboxes shared by all instances.

URLs: ``memory:`` (the mailbox "default") or ``memory:NAME``. Because mailboxes live in a
class-level registry, a test can run a CLI command in-process and then read what it sent::

    MemoryTransport.reset()
    MemoryTransport.fail_recipient("bounce@example.org", PermanentFailure(550, "no such user"))
    MemoryTransport.fail_next(ConnectionLost(None, "dropped"), delivered=True)
    ...  # run the code under test with transport "memory:"
    assert [m.recipient for m in MemoryTransport.outbox()] == [...]

Faults are for what a real server cannot produce on demand; anything may be injected, including
a plain RuntimeError to stand for a bug.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import urllib.parse
from typing import ClassVar, Self

from newsletter.delivery.transports.base import (
    OutgoingMessage,
    SendResult,
    Transport,
    TransportConfigError,
    TransportContext,
    query_options,
    refuse_password,
    safe_url,
)


@dataclasses.dataclass
class Mailbox:
    """What one named mailbox holds; guarded by ``MemoryTransport``'s lock."""

    messages: list[OutgoingMessage] = dataclasses.field(default_factory=list)
    # recipient -> exception raised on every send to them
    faults: dict[str, BaseException] = dataclasses.field(default_factory=dict)
    # (exception, delivered) raised by the next sends, in order, whoever the recipient
    next_faults: collections.deque[tuple[BaseException, bool]] = dataclasses.field(default_factory=collections.deque)


class MemoryTransport(Transport):
    """Appends sent messages to the mailbox ``name``; thread-safe across instances."""

    _mailboxes: ClassVar[dict[str, Mailbox]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str = "default") -> None:
        self.name = name

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult, context: TransportContext) -> Self:
        refuse_password(url)
        query_options(url, allowed=())
        if url.netloc or url.fragment or "/" in url.path:
            raise TransportConfigError(f"{safe_url(url)}: expected memory: or memory:NAME")
        return cls(urllib.parse.unquote(url.path) or "default")

    def describe(self) -> str:
        return "memory:" if self.name == "default" else f"memory:{urllib.parse.quote(self.name, safe='')}"

    @property
    def messages(self) -> list[OutgoingMessage]:
        """A snapshot of this transport's mailbox."""
        return self.outbox(self.name)

    @classmethod
    def _mailbox(cls, name: str) -> Mailbox:
        return cls._mailboxes.setdefault(name, Mailbox())

    @classmethod
    def outbox(cls, name: str = "default") -> list[OutgoingMessage]:
        """A snapshot of the messages sent to mailbox ``name``, oldest first."""
        with cls._lock:
            return list(cls._mailbox(name).messages)

    @classmethod
    def reset(cls) -> None:
        """Empty every mailbox and forget every injected fault."""
        with cls._lock:
            cls._mailboxes.clear()

    @classmethod
    def fail_next(cls, exc: BaseException, *, name: str = "default", delivered: bool = False) -> None:
        """Make the next send to mailbox ``name`` raise ``exc``; queued calls apply in order.

        ``delivered=True`` keeps the message before raising, as when a connection drops after
        the server accepted it (pair it with ConnectionLost to test duplicate reporting).
        """
        with cls._lock:
            cls._mailbox(name).next_faults.append((exc, delivered))

    @classmethod
    def fail_recipient(cls, recipient: str, exc: BaseException | None, *, name: str = "default") -> None:
        """Make every send to ``recipient`` raise ``exc`` (``None`` lifts the fault)."""
        with cls._lock:
            faults = cls._mailbox(name).faults
            if exc is None:
                faults.pop(recipient, None)
            else:
                faults[recipient] = exc

    def _send(self, message: OutgoingMessage) -> SendResult:
        with self._lock:
            box = self._mailbox(self.name)
            fault, delivered = box.next_faults.popleft() if box.next_faults else (None, False)
            if fault is None:
                fault = box.faults.get(message.recipient)
            if fault is None or delivered:
                box.messages.append(message)
        if fault is not None:
            raise fault.with_traceback(None)  # the same instance may be raised many times
        return SendResult(message.message_id, None, f"kept in {self.describe()}")
