"""``newsletter serve`` and ``newsletter web ...``: thin doors onto :mod:`newsletter.web`."""

from __future__ import annotations

import click

from newsletter.cli.app import App


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.pass_obj
def serve(app: App, host: str, port: int) -> None:
    """Run the web endpoint for development.

    Signup, confirm, unsubscribe, preferences and the archive. It serves Subscribe for Updates and the pages that campaign emails link to. Emails link to
    public_base_url and confirmation emails go out through the transport setting, so set
    NEWSLETTER_PUBLIC_BASE_URL and NEWSLETTER_TRANSPORT for a real deployment; NEWSLETTER_SECRET_KEY
    and from_address are required. This is Werkzeug's development server; in production run a
    WSGI server, e.g. gunicorn 'newsletter.web:wsgi()'. Stop with Ctrl-C.
    """
    from werkzeug.serving import make_server

    from newsletter.web import close_app, create_app

    settings = app.settings
    web = create_app(settings, store=app.store)
    server = make_server(host, port, web, threaded=True)
    click.echo(
        f"Serving on http://{host}:{server.server_port}/subscribe; emails link to "
        f"{settings.public_base_url} (Ctrl-C to stop)"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.")
    finally:
        server.server_close()
        close_app(web)


@click.group()
def web() -> None:
    """Helpers for the web endpoint.

    Run the endpoint itself with `newsletter serve`.
    """


@web.command()
@click.pass_obj
def snippet(app: App) -> None:
    """Print the signup form as HTML.

    Paste it into the clinic's website.

    The form posts to public_base_url/subscribe, so set public_base_url first. It carries the
    consent wording and topics in force now: print it again whenever either changes.
    """
    from newsletter.web.snippet import signup_snippet

    click.echo(signup_snippet(app.settings), nl=False)
