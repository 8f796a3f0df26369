from __future__ import annotations

import click

from newsletter.cli.app import App
from newsletter.cli.output import json_option, print_json
from newsletter.config import mask_url
from newsletter.store.engine import init_store


@click.command()
@json_option
@click.pass_obj
def init(app: App, as_json: bool) -> None:
    """Create or upgrade the subscriber store.

    Safe to run any number of times: an up-to-date store is left as it is.
    """
    url = app.settings.resolved_database_url
    before, after = init_store(url)
    shown = mask_url(url)
    if as_json:
        print_json({"database": shown, "revision_before": before, "revision": after})
    elif before == after:
        click.echo(f"Store at {shown} is up to date (schema {after}).")
    elif before is None:
        click.echo(f"Created the store at {shown} (schema {after}).")
    else:
        click.echo(f"Upgraded the store at {shown} from schema {before} to {after}.")
