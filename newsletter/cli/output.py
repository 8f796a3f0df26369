"""Printing: tables for people, JSON for machines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")(func)


def server_options(default_port: int) -> Callable[[F], F]:
    """--host and --port for a command that runs a server for development on this machine."""

    def decorate(func: F) -> F:
        func = click.option(
            "--port",
            default=default_port,
            show_default=True,
            type=click.IntRange(0, 65535),
            help="Port to listen on (0: any free one).",
        )(func)
        return click.option(
            "--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it local)."
        )(func)

    return decorate


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def console(stderr: bool = False) -> Console:
    from rich.console import Console  # imported on first use: most commands print no table

    # highlight=False: rich would otherwise colour numbers and addresses in plain messages.
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    """A table on a terminal; plain tab-separated rows when stdout is a pipe or a file.

    Nothing is ever cut short: an address that does not fit its column wraps onto the next line.
    """
    if not sys.stdout.isatty():
        if title:
            click.echo(title)
        click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join("" if v is None else str(v) for v in row))
        return
    console().print(make_table(title, columns, rows))


def make_table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Text, not str: a subscriber's name must never be read as rich markup.
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    return table


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
