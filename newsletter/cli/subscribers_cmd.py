from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from newsletter.cli.app import App
from newsletter.cli.output import interactive, json_option, print_json, print_table
from newsletter.errors import InputError
from newsletter.files import write_private
from newsletter.store.values import Source, Status
from newsletter.subscribers import export as export_file
from newsletter.subscribers import listing
from newsletter.subscribers.csv_input import check_encoding

# The commands that change a subscriber, or read all of one, import the subscriber service (and so
# the ORM and the models) when they run: `list` and `export` read with Core alone and start faster.

F = TypeVar("F", bound=Callable[..., Any])
STATUS = click.Choice([s.value for s in Status])


def _tag_option(help: str) -> Callable[[F], F]:
    return click.option("--tag", "tags", multiple=True, metavar="TAG", help=help)


@click.group()
def subscribers() -> None:
    """Add, import, list, export and remove subscribers."""


@subscribers.command()
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name.")
@_tag_option("Topic tag (repeatable), e.g. faq-updates.")
@click.option("--confirmed", is_flag=True, help="Consent is already confirmed (e.g. given in person).")
@click.option(
    "--resubscribe",
    is_flag=True,
    help="Bring back an address that unsubscribed, bounced, complained or was erased. Logged as a staff action.",
)
@json_option
@click.pass_obj
def add(
    app: App, email: str, name: str, tags: tuple[str, ...], confirmed: bool, resubscribe: bool, as_json: bool
) -> None:
    """Add one subscriber by hand.

    Consent is recorded as 'manual'.
    An address already on the list gets the new name and tags. A suppressed address is refused unless
    --resubscribe is given.
    """
    from newsletter.subscribers import service
    from newsletter.subscribers.consent import ConsentInfo

    settings = app.settings
    with app.store.session() as session:
        result = service.add(
            session,
            email,
            consent=ConsentInfo(Source.MANUAL, settings.consent_version, origin="newsletter subscribers add"),
            name=name,
            tags=tags,
            confirmed=confirmed,
            resubscribe=resubscribe,
            secret_key=settings.secret_key,
        )
        record = listing.summary(result.subscriber)
    if as_json:
        print_json({"outcome": result.outcome, **record})
    else:
        click.echo(f"{result.outcome.capitalize()}: {record['email']} ({record['status']})")


def _encoding(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else check_encoding(value)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None


@subscribers.command("import")
@click.argument("file", metavar="FILE")
@click.option("--confirmed", is_flag=True, help="The people in the file already confirmed (double opt-in done).")
@_tag_option("Tag every imported subscriber (repeatable), on top of the topics they chose.")
@click.option(
    "--email-column", metavar="C", help="Header of the address column (default: Email, Email Address, E-mail)."
)
@click.option(
    "--name-column", metavar="C", help="Header of the name column (default: Name, or First Name + Last Name)."
)
@click.option("--topics-column", metavar="C", help="Header of the topics column (default: Topics, Interests, Lists).")
@click.option(
    "--consent-column", metavar="C", help='Header of the consent column (default: Consent, Opt-in, GDPR, "I agree...").'
)
@click.option(
    "--submitted-column",
    metavar="C",
    help="Header of the signup time column (default: Submitted At, Signup Date, Timestamp, Created).",
)
@click.option(
    "--topic-map",
    "topic_map",
    multiple=True,
    metavar="LABEL=TAG",
    help='A topic label in the file and the tag it stands for, e.g. "Clinic news=clinic-news" (repeatable).',
)
@click.option(
    "--encoding",
    metavar="NAME",
    callback=_encoding,
    help="The file's encoding when it is not UTF-8, e.g. cp1252 (Excel's plain CSV on Windows) or latin-1. "
    "Default: UTF-8 (UTF-16 with a byte-order mark is recognised).",
)
@click.option("--dry-run", is_flag=True, help="Report what would happen and change nothing.")
@json_option
@click.pass_obj
def import_(
    app: App,
    file: str,
    confirmed: bool,
    tags: tuple[str, ...],
    email_column: str | None,
    name_column: str | None,
    topics_column: str | None,
    consent_column: str | None,
    submitted_column: str | None,
    topic_map: tuple[str, ...],
    encoding: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Import a CSV export of the signup form.

    FILE is the CSV file, or - for standard input: UTF-8 (what "CSV UTF-8" saves), its cells separated
    by commas, semicolons or tabs (found from the header).
    Each person gets the topics they chose (labels matching a topic's title map on their own), a
    consent record with their signup time, and is imported only if their consent cell says yes.
    Rows are new (imported), already known (updated or unchanged), repeated in the file (duplicates),
    without consent, unusable (invalid, with line numbers) or suppressed: addresses that left the list
    are never re-added. The import is one transaction; importing the same file twice changes nothing
    the second time.
    """
    settings = app.settings
    origin = "stdin" if file == "-" else Path(file).name
    # The importer's parsing rules load only for an import, not for every subscribers command.
    from newsletter.subscribers.importer import import_csv, open_csv, parse_topic_map

    labels = parse_topic_map(topic_map)
    with open_csv(file, encoding=encoding) as stream, app.store.session(commit=not dry_run) as session:
        if not as_json and interactive():
            click.echo(f"Importing {origin}...", err=True)
        report = import_csv(
            session,
            stream,
            origin=origin,
            wording_version=settings.consent_version,
            confirmed=confirmed,
            tags=tags,
            email_column=email_column,
            name_column=name_column,
            topics_column=topics_column,
            consent_column=consent_column,
            submitted_column=submitted_column,
            topic_map=labels,
            topic_choices=settings.topic_choices,
            zone=settings.zone,
            secret_key=settings.secret_key,
        )
        report.dry_run = dry_run
    if as_json:
        print_json(report.as_dict())
        return
    verb = "Would import" if dry_run else "Imported"
    click.echo(
        f"{verb} {report.imported}, updated {report.updated}, unchanged {report.unchanged}, "
        f"duplicates in file {report.duplicates}, suppressed {report.suppressed}, "
        f"without consent {len(report.no_consent)}, invalid {len(report.invalid)}."
    )
    _some("without consent, not imported", [f"line {r['line']}" for r in report.no_consent])
    _some("invalid", [f"line {p['line']}: {p['reason']}" for p in report.invalid])
    if report.unknown_topics:
        click.echo(
            f"  unknown topics (not given to anyone; map them with --topic-map): {', '.join(report.unknown_topics)}",
            err=True,
        )
    if report.ignored_columns:
        click.echo(f"  ignored columns: {', '.join(report.ignored_columns)}", err=True)


def _some(what: str, lines: list[str], limit: int = 20) -> None:
    for line in lines[:limit]:
        click.echo(f"  {what}: {line}", err=True)
    if len(lines) > limit:
        click.echo(f"  ... and {len(lines) - limit} more {what} (use --json for all)", err=True)


def _filters(func: Any) -> Any:
    func = click.option("--status", type=STATUS, help="Only subscribers with this status.")(func)
    return click.option("--tag", help="Only subscribers with this tag.")(func)


@subscribers.command("list")
@_filters
@json_option
@click.pass_obj
def list_(app: App, status: str | None, tag: str | None, as_json: bool) -> None:
    """List subscribers, by status or tag."""
    with app.store.engine.connect() as db:
        records = [listing.summary(s) for s in listing.rows(db, status=status, tag=tag)]
    if as_json:
        print_json(records)
        return
    print_table(
        f"{len(records)} subscriber(s)",
        ["email", "name", "status", "tags", "created"],
        [(r["email"], r["name"], r["status"], ", ".join(r["tags"]), r["created_at"][:10]) for r in records],
    )


@subscribers.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="CSV for spreadsheets, JSON for programs.",
)
@_filters
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE instead of standard output."
)
@click.pass_obj
def export(app: App, fmt: str, status: str | None, tag: str | None, output: Path | None) -> None:
    """Export subscribers as CSV or JSON.

    Fields: email, name, status, tags, source and dates. In CSV, a cell that a spreadsheet would run
    as a formula (it starts with =, +, -, @) gets a leading apostrophe. A file written with -o is
    readable by you only.
    """
    write = export_file.json_chunks if fmt == "json" else export_file.csv_chunks
    with app.store.engine.connect() as db:
        records = (listing.summary(s) for s in listing.rows(db, status=status, tag=tag))
        if output is None:
            for chunk in write(records):
                click.echo(chunk, nl=False)
            return
        write_private(output, write(records))
    click.echo(f"Wrote {output}", err=True)


@subscribers.command()
@click.argument("email")
@json_option
@click.pass_obj
def show(app: App, email: str, as_json: bool) -> None:
    """Show everything stored about one person.

    Events and consent included: the answer to a GDPR access request. The access itself is logged.
    """
    from newsletter.subscribers import queries, service

    with app.store.session() as session:
        report = queries.access_report(session, service.get(session, email), actor="cli")
    if as_json:
        print_json(report)
        return
    for key in ("email", "name", "status", "source", "created_at", "confirmed_at", "unsubscribed_at"):
        click.echo(f"{key:>16}: {report[key] or ''}")
    click.echo(f"{'tags':>16}: {', '.join(report['tags'])}")
    print_table(
        "Consent",
        ["given", "method", "wording", "origin", "confirmed"],
        [
            (c["given_at"], c["method"], c["wording_version"], c["origin"], c["confirmed_at"])
            for c in report["consents"]
        ],
    )
    print_table(
        "Events",
        ["at", "event", "by", "detail"],
        [(e["at"], e["kind"], e["actor"], json.dumps(e["detail"], ensure_ascii=False)) for e in report["events"]],
    )


@subscribers.command()
@click.argument("email")
@json_option
@click.pass_obj
def unsubscribe(app: App, email: str, as_json: bool) -> None:
    """Stop all mail to EMAIL.

    The address stays suppressed: no add or import brings it back.
    """
    from newsletter.subscribers import service

    with app.store.session() as session:
        subscriber = service.get(session, email)
        changed = service.unsubscribe(session, subscriber, actor="cli", via="newsletter subscribers unsubscribe")
        record = listing.summary(subscriber)
    if as_json:
        print_json({"changed": changed, **record})
    elif changed:
        click.echo(f"Unsubscribed {record['email']}.")
    else:
        click.echo(f"{record['email']} was already {record['status']}; nothing changed.")


@subscribers.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@json_option
@click.pass_obj
def forget(app: App, email: str, yes: bool, as_json: bool) -> None:
    """Erase a person under GDPR Article 17.

    Deletes all their data and keeps only a keyed hash of the address, so it stays suppressed. The
    outbox keeps its counts but loses their rows' error texts, and the .eml files the file:
    transport wrote for them are deleted where still there.
    Needs NEWSLETTER_SECRET_KEY. Rotating that key later lets erased addresses be added again.
    """
    from newsletter.delivery import erasure

    app.settings.require_secret_key()
    if not yes and interactive():
        click.confirm(f"Erase everything stored about {email.strip()}? This cannot be undone", abort=True)
    erased = erasure.forget(app.store, app.settings, email)
    if as_json:
        print_json({"erased": True, "files_removed": erased.files_removed})
    else:
        files = f" {erased.files_removed} copies of their messages were deleted." if erased.files_removed else ""
        click.echo(f"Erased. Only a keyed hash of the address remains, to keep it suppressed.{files}")


@subscribers.command()
@json_option
@click.pass_obj
def stats(app: App, as_json: bool) -> None:
    """Count subscribers by status and by tag."""
    from newsletter.subscribers import queries

    with app.store.session() as session:
        data = queries.stats(session)
    if as_json:
        print_json(data)
        return
    print_table(
        f"{data['total']} subscriber(s), {data['erased']} erased",
        ["status", "count"],
        list(data["by_status"].items()),
    )
    if data["tags"]:
        print_table(None, ["tag", "count"], list(data["tags"].items()))
