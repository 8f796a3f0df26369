"""``campaign preview``: what a subscriber will see and what a reviewer must check, on one page.

The page shows the inbox line (From, Subject, preheader), the email at desktop and mobile widths
side by side, the plain-text part, every lint and de-identification finding marked at its place in
the campaign file, and where each vignette's sign-off stands. It re-renders when the campaign file,
a template or the theme is saved: the page polls ``/version`` and reloads.

A tiny standard-library HTTP server on localhost. It answers only requests addressed to a loopback
name (the Host header), so a web page elsewhere cannot reach it through DNS rebinding.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jinja2
import markupsafe

from newsletter.campaigns import vignette
from newsletter.campaigns.content import Campaign, load_campaign
from newsletter.campaigns.lint import lint_campaign, render_or_error
from newsletter.campaigns.service import sample
from newsletter.config import Settings, is_loopback
from newsletter.errors import CannotListen, NewsletterError
from newsletter.theme import THEME_FILENAME


@dataclasses.dataclass(frozen=True)
class Finding:
    severity: str  # "error" or "warning"
    check: str
    message: str
    line: int | None


@dataclasses.dataclass(frozen=True)
class SourceLine:
    number: int
    text: str
    findings: tuple[Finding, ...]


@dataclasses.dataclass(frozen=True)
class Preview:
    """Everything the page shows, built once per change of the watched files."""

    title: str
    sender: str = ""
    subject: str = ""
    preheader: str = ""
    html: str = ""
    text: str = ""
    findings: tuple[Finding, ...] = ()
    source: tuple[SourceLine, ...] = ()
    signoffs: tuple[str, ...] = ()
    error: str | None = None


def _signoff_states(campaign: Campaign) -> tuple[str, ...]:
    if not campaign.vignettes:
        return ()
    try:
        review = vignette.read_review(campaign)
    except NewsletterError as exc:
        return (f"The deid section cannot be read: {exc}",)
    problems = {p.vignette: p.message for p in vignette.signoff_problems(campaign, review)}
    latest = {s.vignette: s for s in review.signoffs}
    states = []
    for number in range(1, len(campaign.vignettes) + 1):
        if number in problems:
            states.append(f"Vignette {number}: {problems[number].removeprefix(f'vignette {number} ')}")
        else:
            signoff = latest[number]
            states.append(f"Vignette {number}: signed off by {signoff.reviewer} on {signoff.date}")
    return tuple(states)


def build_preview(ref: str | Path, settings: Settings) -> Preview:
    """Load, render once, lint the rendering, and lay out the findings on the campaign's lines."""
    try:
        campaign = load_campaign(ref, settings)
    except NewsletterError as exc:
        return Preview(title=str(ref), error=str(exc))
    rendered = render_or_error(campaign, settings)
    report = lint_campaign(campaign, settings, rendered=rendered, draft=True)
    findings = tuple(
        Finding(severity, issue.check, issue.message, issue.line)
        for severity, issues in (("error", report.errors), ("warning", report.warnings))
        for issue in issues
    )
    by_line: dict[int, list[Finding]] = {}
    for finding in findings:
        if finding.line is not None:
            by_line.setdefault(finding.line, []).append(finding)
    source = tuple(
        SourceLine(number, text, tuple(by_line.get(number, ())))
        for number, text in enumerate(campaign.source.split("\n"), 1)
    )
    sender = f"{settings.organisation} <{settings.from_address}>" if settings.from_address else settings.organisation
    preview = Preview(
        title=campaign.slug,
        sender=sender,
        subject=campaign.subject,
        preheader=campaign.preheader,
        findings=findings,
        source=source,
        signoffs=_signoff_states(campaign),
    )
    if isinstance(rendered, NewsletterError):
        return dataclasses.replace(preview, error=str(rendered))
    html, text = sample(rendered)
    return dataclasses.replace(preview, html=html, text=text)


PAGE = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Preview: {{ p.title }}</title>
<style>
 body { font: 14px system-ui, sans-serif; margin: 16px; background: #f3f1ec; color: #222; }
 h1 { font-size: 18px; } h2 { font-size: 15px; margin: 20px 0 6px; }
 .inbox { background: #fff; border: 1px solid #ccc; padding: 8px 12px; max-width: 1200px; }
 .inbox .from { font-weight: 600; } .inbox .preheader { color: #555; }
 .panes { display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }
 figure { margin: 0; } figcaption { margin-bottom: 6px; font-weight: 600; }
 iframe { border: 1px solid #bbb; background: #fff; height: 70vh; }
 #desktop { width: 800px; } #mobile { width: 375px; }
 pre.text { background: #fff; border: 1px solid #ccc; padding: 12px; max-width: 80ch; white-space: pre-wrap; }
 .error { color: #8a1010; } .warning { color: #6b4a00; }
 ol.source { background: #fff; border: 1px solid #ccc; padding: 8px 8px 8px 48px; font: 13px ui-monospace, monospace; }
 ol.source li { white-space: pre-wrap; } ol.source li.flagged { background: #fdecc8; }
 ol.source li .note { display: block; font: 12px system-ui, sans-serif; }
 #state { color: #555; margin-left: 8px; font-weight: normal; font-size: 13px; }
</style></head>
<body>
<h1>{{ p.title }} <span id="state">watching for changes</span></h1>
{% if p.subject %}
<div class="inbox" aria-label="Inbox line">
 <div class="from">{{ p.sender }}</div>
 <div><span class="subject">{{ p.subject }}</span> <span class="preheader">— {{ p.preheader or "(no preheader)" }}</span></div>
</div>
{% endif %}
{% if p.error %}<p class="error" role="alert">{{ p.error }}</p>{% endif %}
<h2>Checks</h2>
{% if p.findings %}
<ul class="findings">
{% for f in p.findings %}
 <li class="{{ f.severity }}">{{ f.severity }} [{{ f.check }}]{% if f.line %} <a href="#line-{{ f.line }}">line {{ f.line }}</a>{% endif %}: {{ f.message }}</li>
{% endfor %}
</ul>
{% else %}<p>No findings: lint passed.</p>{% endif %}
{% if p.signoffs %}
<h2>Vignette sign-off</h2>
<ul class="signoffs">{% for s in p.signoffs %}<li>{{ s }}</li>{% endfor %}</ul>
{% endif %}
{% if p.html %}
<div class="panes">
 <figure><figcaption>Desktop, 800 px</figcaption><iframe id="desktop" src="/email.html" title="Desktop preview"></iframe></figure>
 <figure><figcaption>Mobile, 375 px</figcaption><iframe id="mobile" src="/email.html" title="Mobile preview"></iframe></figure>
</div>
<h2>Plain-text part</h2>
<pre class="text">{{ p.text }}</pre>
{% endif %}
{% if p.source %}
<h2>The campaign file, with findings at their place</h2>
<ol class="source">
{% for line in p.source %}
 <li id="line-{{ line.number }}"{% if line.findings %} class="flagged"{% endif %}>{{ line.text }}
{%- for f in line.findings %}<span class="note {{ f.severity }}">{{ f.severity }} [{{ f.check }}]: {{ f.message }}</span>{% endfor %}</li>
{% endfor %}
</ol>
{% endif %}
<script>
let seen = null;
async function poll() {
  try {
    const v = (await (await fetch('/version', {cache: 'no-store'})).json()).version;
    if (seen !== null && v !== seen) location.reload();
    seen = v;
  } catch (e) { document.getElementById('state').textContent = 'server stopped'; }
  setTimeout(poll, 1000);
}
poll();
</script></body></html>
"""
)


class PreviewState:
    """Builds the preview on demand and again whenever a watched file's modification time changes."""

    def __init__(self, build: Callable[[], Preview], watched: Callable[[], list[Path]]) -> None:
        self._build = build
        self._watched = watched
        self._lock = threading.Lock()
        self._stamp: tuple[float, ...] | None = None
        self.version = 0
        self.preview = Preview(title="")

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
            self.preview = self._build()

    @property
    def html(self) -> str:
        """The email's HTML, or the error in its place, so a typo does not kill the server."""
        if self.preview.html:
            return self.preview.html
        error = markupsafe.escape(self.preview.error or "")
        return f"<!doctype html><meta charset=utf-8><pre style='color:#a00;white-space:pre-wrap'>{error}</pre>"


def watched_files(campaign_path: Path, settings: Settings) -> list[Path]:
    """What a rendering of the campaign reads, so that saving any of them re-renders the preview.

    The theme file is watched whether or not it exists: creating it changes the email too.
    """
    templates_path = settings.templates_path
    templates = sorted(templates_path.rglob("*.j2")) if templates_path.is_dir() else []
    answers = sorted(settings.faq_path.glob("*.md")) if settings.faq_path.is_dir() else []  # ::: faq ref=ID
    return [campaign_path, templates_path / THEME_FILENAME, *templates, *answers]


def is_loopback_host(header: str | None) -> bool:
    """Whether a Host header names this machine by a loopback name (with or without a port)."""
    if not header:
        return False
    host = header.strip().lower()
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return is_loopback(host)


def make_server(state: PreviewState, host: str = "127.0.0.1", port: int = 8025) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not is_loopback_host(self.headers.get("Host")):
                # DNS rebinding: a name that resolves to 127.0.0.1 must not read the campaign.
                self.send_error(421, "This preview answers only to 127.0.0.1 or localhost")
                return
            state.refresh()
            if self.path == "/":
                body, kind = PAGE.render(p=state.preview).encode("utf-8"), "text/html; charset=utf-8"
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

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise CannotListen(host, port, exc) from None
