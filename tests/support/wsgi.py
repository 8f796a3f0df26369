"""A WSGI helper for tests and benchmarks; it imports nothing of the package, so a benchmark can use
it against another version of it."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.wsgi import ClosingIterator

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class InFlight:
    """WSGI middleware counting requests until the server closes their response, which is when the
    app hands its deferred work to the mail thread: only then can a test (or a benchmark) wait for it."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.count = 0
        self.idle = threading.Condition()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self.idle:
            self.count += 1
        return ClosingIterator(self.app(environ, start_response), self._closed)

    def _closed(self) -> None:
        with self.idle:
            self.count -= 1
            self.idle.notify_all()

    def wait(self, timeout: float = 30) -> None:
        with self.idle:
            assert self.idle.wait_for(lambda: self.count == 0, timeout), "a request never finished"
