from __future__ import annotations

import click

from newsletter.cli.app import App
from newsletter.cli.output import json_option, print_json, print_table
from newsletter.config import Settings, masked


@click.group()
def config() -> None:
    """Inspect the resolved settings."""


@config.command("show")
@json_option
@click.pass_obj
def show(app: App, as_json: bool) -> None:
    """Show every setting and where it came from.

    Secrets are masked.
    Precedence, lowest first: default < newsletter.toml < NEWSLETTER_<NAME> < command-line flag.
    """
    resolved = app.resolved
    rows = [
        (name, masked(name, getattr(resolved.settings, name)), resolved.sources[name])
        for name in Settings.setting_names()
    ]
    if as_json:
        print_json(
            {
                "project_dir": str(resolved.settings.project_dir),
                "settings": {name: {"value": value, "source": source} for name, value, source in rows},
            }
        )
    else:
        print_table(f"Settings for {resolved.settings.project_dir}", ["setting", "value", "from"], rows)
