"""The clinic's theme on the web pages: ``/theme.css`` and the ``theme`` every template sees.

``static/site.css`` lays the pages out with ``var(--accent)``, ``var(--paper)``, ``var(--font-heading)``...;
``/theme.css``, made once from the :class:`newsletter.theme.Theme` when the app starts, gives them their
values, light and dark. Both are stylesheets from our own origin, so the pages keep a Content-Security-Policy
without inline styles. ``base.html`` links the sheet with the theme's fingerprint in its URL: browsers
may keep it for a year, and a new theme is a new URL. A page that extends ``base.html`` is themed.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response

from newsletter.config import Settings
from newsletter.theme import Theme, sender_line

YEAR = 365 * 24 * 3600


def register_theme(app: Flask, theme: Theme, settings: Settings) -> None:
    css = str(theme.css_variables())
    bp = Blueprint("look", __name__)

    @bp.get("/theme.css")
    def theme_css() -> Response:
        response = Response(css, mimetype="text/css")
        response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
        return response

    app.register_blueprint(bp)
    footer = sender_line(settings.organisation, settings.postal_address)

    @app.context_processor
    def look() -> dict[str, object]:
        return {"theme": theme, "sender_line": footer}
