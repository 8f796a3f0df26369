"""Request bodies are read whole, up to a limit, before the app sees them; a longer one is a 413.

A body with a ``Content-Length`` over the limit is refused by Werkzeug before it is read. A body sent
without one (``Transfer-Encoding: chunked``) is another matter: Werkzeug reads it only up to the
limit and hands the app what it got, without a word, so a 10 MB body was cut to its first 16 KiB
and then acted on. :class:`BufferedBodies` reads such a body itself, at most one byte past the
largest limit, and gives the app a body with a ``Content-Length``: Werkzeug's own check then refuses
it with a 413 when it is over the limit of its route, like any other body.

What is left of a refused body on the connection is the server's to deal with: PEP 3333 forbids an
application ``Connection: close`` (waitress refuses it), and the servers do (Werkzeug's reads it and
closes, gunicorn skips it before the next request, waitress buffers the whole body first).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.wsgi import get_content_length

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_READ = 64 * 1024


class BufferedBodies:
    """WSGI middleware: give every streamed body a ``Content-Length``, reading at most ``limit + 1`` bytes.

    ``limit`` is the largest body any route accepts; each route's own limit (Flask's
    ``MAX_CONTENT_LENGTH``, or ``request.max_content_length``) is then checked by Werkzeug.
    """

    def __init__(self, app: WSGIApplication, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # Servers that decode chunked bodies say so with wsgi.input_terminated (PEP 3333's extension);
        # without a length, the body then ends where the stream does.
        if get_content_length(environ) is None and environ.get("wsgi.input_terminated"):
            body = _read_at_most(environ["wsgi.input"], self.limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)  # decoded: Werkzeug would ignore the length
        return self.app(environ, start_response)


def _read_at_most(stream: Any, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(_READ, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
