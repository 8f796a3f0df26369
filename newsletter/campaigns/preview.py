"""``campaign preview``: the campaign at desktop and mobile widths side by side, re-rendered on save.

A tiny standard-library HTTP server on localhost. The page polls ``/version``; when the campaign file
or a template changes, the next poll re-renders, and the page reloads its two frames. A render that
fails shows its error in place of the email, so a typo does not kill the server.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from newsletter.errors import NewsletterError

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Preview: {title}</title>
<style>
 body {{ font: 14px system-ui, sans-serif; margin: 16px; background: #eceae6; color: #222; }}
 .panes {{ display: flex; gap: 24px; align-items: flex-start; }}
 figure {{ margin: 0; }} figcaption {{ margin-bottom: 6px; font-weight: 600; }}
 iframe {{ border: 1px solid #bbb; background: #fff; height: 85vh; }}
 #desktop {{ width: 800px; }} #mobile {{ width: 375px; }}
 #state {{ color: #555; margin-left: 8px; font-weight: normal; }}
</style></head>
<body>
<h1>{title} <span id="state">watching for changes</span></h1>
<div class="panes">
 <figure><figcaption>Desktop, 800 px</figcaption><iframe id="desktop" src="/email.html" title="Desktop preview"></iframe></figure>
 <figure><figcaption>Mobile, 375 px</figcaption><iframe id="mobile" src="/email.html" title="Mobile preview"></iframe></figure>
</div>
<script>
let seen = null;
async function poll() {{
  try {{
    const v = (await (await fetch('/version', {{cache: 'no-store'}})).json()).version;
    if (seen !== null && v !== seen) {{
      for (const id of ['desktop', 'mobile']) document.getElementById(id).contentWindow.location.reload();
      document.getElementById('state').textContent = 'reloaded ' + new Date().toLocaleTimeString();
    }}
    seen = v;
  }} catch (e) {{ document.getElementById('state').textContent = 'server stopped'; }}
  setTimeout(poll, 1000);
}}
poll();
</script></body></html>
"""


class PreviewState:
    """Renders on demand and re-renders when any watched file's modification time changes."""

    def __init__(self, render: Callable[[], str], watched: Callable[[], list[Path]]) -> None:
        self._render = render
        self._watched = watched
        self._lock = threading.Lock()
        self._stamp: tuple[float, ...] | None = None
        self.version = 0
        self.html = ""

    def _current_stamp(self) -> tuple[float, ...]:
        stamps = []
        for path in self._watched():
            try:
                stamps.append(path.stat().st_mtime)
            except OSError:
                stamps.append(-1.0)
        return tuple(stamps)

    def refresh(self) -> None:
        with self._lock:
            stamp = self._current_stamp()
            if stamp == self._stamp:
                return
            self._stamp = stamp
            self.version += 1
            try:
                self.html = self._render()
            except NewsletterError as exc:
                self.html = f"<!doctype html><meta charset=utf-8><pre style='color:#a00;white-space:pre-wrap'>{html.escape(str(exc))}</pre>"


def make_server(state: PreviewState, title: str, host: str = "127.0.0.1", port: int = 8025) -> ThreadingHTTPServer:
    page = PAGE.format(title=html.escape(title)).encode("utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.refresh()
            if self.path == "/":
                body, kind = page, "text/html; charset=utf-8"
            elif self.path == "/email.html":
                body, kind = state.html.encode("utf-8"), "text/html; charset=utf-8"
            elif self.path == "/version":
                body, kind = json.dumps({"version": state.version}).encode(), "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per poll every second would drown the terminal

    return ThreadingHTTPServer((host, port), Handler)
