"""The web endpoint's work after the answer: its one-off emails, and what depends on an address.

The public forms must look and *take* the same time whatever the address's state: if the response
waited for the SMTP server only when an email goes out, or for the database work that differs per
state, its timing would tell who is on the list and who is suppressed (bounced, complained, erased).
So a request queues a job (:meth:`Mailer.defer`), which looks the address up, applies the request
and builds the message on one thread per process, after the answer; that thread sends it too.

A signup is kept in the store before it is answered (:mod:`newsletter.subscribers.intake`): a job
lost with a process that died is run again by the next process's first job (:meth:`Mailer.on_start`).
A message built but not yet sent when the process dies is lost; the person sees no email and submits
the form again. Failures are logged without the address.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from collections.abc import Callable

from newsletter.delivery.transports import OutgoingMessage, TransportError, TransportFactory

log = logging.getLogger(__name__)


# Work deferred off the request: returns the message to send, or None when there is none to send.
Job = Callable[[], OutgoingMessage | None]


class Mailer:
    """Queues messages and sends them on a background thread, one connection per message.

    The thread starts on first use in each process (the web app starts it with its first request),
    so a server that forks workers after building the app (gunicorn ``--preload``) gets a live
    thread in every worker, and no thread or connection crosses a fork.
    """

    def __init__(self, transport: TransportFactory) -> None:
        self._transport = transport
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._first: Job | None = None
        self._ended = False
        self.failures = 0

    def on_start(self, job: Job) -> None:
        """Run ``job`` first on each process's mail thread, when the thread starts."""
        self._first = job

    def defer(self, job: Job) -> None:
        """Run ``job`` on the mail thread and send the message it returns, if any."""
        self._put(job)

    def start(self) -> None:
        """Start this process's mail thread if it is not running (and with it, its first job)."""
        with self._lock:
            if not self._ended and (self._thread is None or self._pid != os.getpid()):
                self._start()

    def _put(self, job: Job) -> None:
        with self._lock:
            if self._ended:
                # The app is closed and its store released: a thread started now would hold a
                # connection that nobody closes. A kept signup is applied by the next start.
                log.warning("work for the mail thread arrived after the app was closed; left for the next start")
                return
            if self._thread is None or self._pid != os.getpid():
                self._start()
            self._queue.put(job)

    def _start(self) -> None:
        self._queue = queue.Queue()  # after a fork, the parent's queue and thread are not ours
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="newsletter-web-mailer", daemon=True)
        self._thread.start()
        if self._first is not None:
            self._queue.put(self._first)
        atexit.register(self.close)

    def _run(self) -> None:
        jobs = self._queue
        while True:
            job = jobs.get()
            try:
                if job is None:
                    return
                message = self._run_job(job)
                if message is not None:
                    self._send(message)
            finally:
                jobs.task_done()

    def _run_job(self, job: Job) -> OutgoingMessage | None:
        try:
            return job()
        except Exception:  # the thread serves every later request: log (no address) and go on
            self.failures += 1
            log.exception("a deferred email job failed")
            return None

    def _send(self, message: OutgoingMessage) -> None:
        try:
            with self._transport() as transport:
                transport.send(message)
        except TransportError as exc:
            self.failures += 1
            # The reply code, not the text: servers echo the address in their replies.
            log.warning("could not send %s: %s (code %s)", message.message_id, type(exc).__name__, exc.code)
        except Exception:  # a broken transport must not kill the thread that serves every later signup
            self.failures += 1
            log.exception("could not send %s", message.message_id)

    def join(self) -> None:
        """Wait until every job deferred so far has run and its message has been sent or has failed."""
        with self._lock:
            thread = self._thread if self._pid == os.getpid() else None
        if thread is not None:
            self._queue.join()

    def close(self, *, end: bool = False) -> None:
        """Send what is queued, then stop the thread. The mailer starts again if used later, unless
        ``end`` (the app is closing for good)."""
        with self._lock:
            self._ended = self._ended or end
            thread, self._thread = self._thread, None
            if thread is None or self._pid != os.getpid():
                return
            self._queue.put(None)
        thread.join()
        atexit.unregister(self.close)
