"""The ``newsletter`` command: a thin layer that parses, calls the services and prints."""

from __future__ import annotations

import gc
import importlib
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import click

from newsletter import __version__
from newsletter.errors import NewsletterError

EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, not the user's fault


class NewsletterGroup(click.Group):
    """Turns the project's errors into one line on stderr and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if _is_store_error(exc):
                detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                click.echo(f"Error: the store failed: {detail}", err=True)
                ctx.exit(1)
            if os.environ.get("NEWSLETTER_DEBUG"):
                raise
            click.echo(
                f"Internal error: {type(exc).__name__}: {exc} (set NEWSLETTER_DEBUG=1 for the traceback)",
                err=True,
            )
            ctx.exit(EXIT_INTERNAL)


def _is_store_error(exc: Exception) -> bool:
    # SQLAlchemy is only loaded by commands that open the store; a command that did not load it
    # cannot have raised one of its errors.
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.SQLAlchemyError)


class LazyGroup(NewsletterGroup):
    """Imports a command's module only when that command runs, so ``subscribers stats`` does not pay
    for loading the rendering stack, and ``--help`` lists everything without importing any of them."""

    commands_by_module: ClassVar[dict[str, str]] = {
        "bounces": "bounces_cmd:bounces",
        "init": "store_cmd:init",
        "config": "config_cmd:config",
        "doctor": "doctor_cmd:doctor",
        "subscribers": "subscribers_cmd:subscribers",
        "campaign": "campaign_cmd:campaign_group",
        "faq": "faq_cmd:faq_group",
        "send-due": "schedule_cmd:send_due",
        "retention": "retention_cmd:retention",
        "serve": "web_cmd:serve",
        "web": "web_cmd:web",
    }

    # The first line of each command's help, for ``newsletter --help`` (a test keeps them equal).
    summaries: ClassVar[dict[str, str]] = {
        "bounces": "Read bounces, complaints and auto-replies.",
        "init": "Create or upgrade the subscriber store.",
        "config": "Inspect the resolved settings.",
        "doctor": "Check deliverability: DNS, relay and list.",
        "subscribers": "Add, import, list, export and remove subscribers.",
        "campaign": "Write, check, preview and send campaigns.",
        "faq": "Check the FAQ and see what changed since it was sent.",
        "send-due": "Send what is due, welcomes included.",
        "retention": "Remove personal data kept longer than needed.",
        "serve": "Run the web endpoint for development.",
        "web": "Helpers for the web endpoint.",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands_by_module)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.summaries[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.commands_by_module.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        module = importlib.import_module(f"{__name__}.{module_name}")
        _loaded()
        command: click.Command = getattr(module, attribute)
        return command


def _loaded() -> None:
    # The code a command needs is loaded now: it stays until the process ends, so the collector is
    # told never to look at it again (gc.freeze), and collects from here on, as usual.
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Project folder holding newsletter.toml, campaigns/ and templates/ (default: the current folder).",
)
@click.option("--db", "database_url", metavar="URL", help="Database URL; overrides database_url.")
@click.pass_context
def cli(ctx: click.Context, project_dir: Path | None, database_url: str | None) -> None:
    """Harvest's newsletter: subscribers, campaigns and delivery.

    Settings come from built-in defaults, then newsletter.toml in the project folder, then
    NEWSLETTER_* environment variables, then command-line flags; `newsletter config show` tells which
    won. Secrets (NEWSLETTER_SECRET_KEY, NEWSLETTER_SMTP_PASSWORD) come from the environment only.
    """
    from newsletter.cli.app import App  # not for --help: it loads the settings and the store's code

    if not isinstance(ctx.obj, App):
        ctx.obj = App(project_dir=project_dir)
    if database_url is not None:
        ctx.obj.overrides["database_url"] = database_url
    ctx.call_on_close(ctx.obj.close)


def main() -> None:
    # Loading a command creates a few hundred thousand long-lived objects (SQLAlchemy's and ours) and
    # almost no garbage, yet the collector would walk them over and over while they load and once more
    # at exit: a third of a short command's time. It waits until the command is loaded (_loaded).
    gc.disable()
    try:
        cli.main(prog_name="newsletter")
    finally:
        gc.enable()  # for a caller that catches the exit (--help and --version load no command)
    sys.exit(0)
