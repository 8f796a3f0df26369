"""``newsletter serve`` and ``newsletter web ...``: thin doors onto :mod:`newsletter.web`."""

from __future__ import annotations

import click

from newsletter.cli.app import App
from newsletter.cli.output import server_options


@click.command()
@server_options(default_port=8000)
@click.pass_obj
def serve(app: App, host: str, port: int) -> None:
    """Run the web endpoint for development.

    Signup, confirm, unsubscribe, preferences, the archive and the FAQ: the pages campaign emails link
    to. NEWSLETTER_SECRET_KEY and from_address are required; `make serve` passes the development key
    that `make demo` made.

    On a loopback host (the default, 127.0.0.1) the links in the emails it sends point at this server
    itself, in plain http, since nobody else can reach it; on any other host they point at
    public_base_url. Emails go out through the transport setting, and each one is listed as it goes
    (the .eml file it was written to, with the default file: transport), never its recipient.

    This is Werkzeug's development server; in production run a WSGI server, e.g.
    gunicorn 'newsletter.web:wsgi()'. Stop with Ctrl-C.
    """
    from newsletter.web.devserver import dev_server

    settings = app.settings
    server = dev_server(settings, store=app.store, host=host, port=port, report=lambda line: click.echo(line, err=True))
    click.echo(f"Serving on {server.url}/subscribe (Ctrl-C to stop)")
    if server.local:
        click.echo(
            f"Links in the emails it sends point here, {server.settings.public_base_url}: only this machine can "
            f"reach {host}. (public_base_url, {settings.public_base_url}, is for the real site.)"
        )
    else:
        click.echo(f"Links in the emails it sends point to public_base_url, {settings.public_base_url}.")
    click.echo(f"Emails go through {server.transport}; each is listed below.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.")
    finally:
        server.close()


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
