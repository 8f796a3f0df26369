"""Every command explains itself and is in the README's command reference."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from newsletter.cli import cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
# Commands that serve or print a document rather than report: no --json.
NO_JSON = {"serve", "campaign preview", "web snippet", "subscribers export"}


def commands(group: click.Group = cli, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            yield from commands(command, path + " ")
        else:
            yield path, command


ALL = list(commands())


def test_the_tree_is_what_the_readme_documents() -> None:
    documented = set(re.findall(r"^\| `newsletter ([a-z-]+(?: [a-z-]+)?)", README, flags=re.M))
    assert {path for path, _ in ALL} == documented


@pytest.mark.parametrize(("path", "command"), ALL, ids=[p for p, _ in ALL])
def test_every_command_has_help(path: str, command: click.Command) -> None:
    assert command.help and len(command.help.split()) >= 4, path
    assert "..." not in command.get_short_help_str(limit=45), "the first line of the help is too long for the list"
    result = CliRunner().invoke(cli, [*path.split(), "--help"])
    assert result.exit_code == 0 and "Usage: " in result.output
    for option in command.params:
        if isinstance(option, click.Option) and not option.hidden and option.name != "help":
            assert option.help, f"{path} {option.opts[0]} has no help"


@pytest.mark.parametrize(("path", "command"), ALL, ids=[p for p, _ in ALL])
def test_every_reporting_command_has_json(path: str, command: click.Command) -> None:
    names = {opt for p in command.params for opt in getattr(p, "opts", [])}
    if path in NO_JSON:
        assert "--json" not in names or path == "subscribers export"
    else:
        assert "--json" in names, path


def test_the_top_level_help_explains_the_precedence() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "newsletter.toml" in result.output and "NEWSLETTER_SECRET_KEY" in result.output


def test_the_top_level_list_of_commands_matches_their_help() -> None:
    """``newsletter --help`` lists commands without importing them, from a table that must not drift."""
    from newsletter.cli import LazyGroup

    context = click.Context(cli)
    for name in cli.list_commands(context):
        command = cli.get_command(context, name)
        assert command is not None
        assert LazyGroup.summaries[name] == command.get_short_help_str(limit=300), name
    listing = CliRunner().invoke(cli, ["--help"]).output
    assert all(f"{name}  " in listing and LazyGroup.summaries[name] in listing for name in LazyGroup.summaries)
