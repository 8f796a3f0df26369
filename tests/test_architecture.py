"""The layout's promises, checked: arrows point down only, no import cycle, light front doors.

The layers are stated once, in pyproject.toml's [tool.importlinter] contracts. grimp sees every
import, those under ``if TYPE_CHECKING:`` and inside functions included: a cycle hidden that way is
still a cycle in the design.
"""

from __future__ import annotations

import graphlib
import subprocess
import sys
from collections.abc import Mapping, Set
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]


def first_cycle(imports: Mapping[str, Set[str]]) -> list[str] | None:
    """A cycle in a module graph (module -> modules it imports), or None."""
    try:
        tuple(graphlib.TopologicalSorter(imports).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def module_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("newsletter", cache_dir=None)
    return {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}


def test_the_layer_contracts_hold() -> None:
    # In a process of its own: import-linter configures logging, which would disable our loggers here.
    check = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True))"
    result = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]


def test_no_module_imports_itself_through_others() -> None:
    graph = module_graph()
    assert len(graph) > 50  # the whole package was seen
    assert first_cycle(graph) is None


def test_the_cycle_check_can_fail() -> None:
    assert first_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert first_cycle({"a": {"b"}, "b": set()}) is None


def test_every_package_says_what_lives_there_and_what_it_may_import() -> None:
    for init in sorted((REPO / "newsletter").glob("*/__init__.py")):
        text = init.read_text(encoding="utf-8")
        assert text.startswith('"""'), init
        if init.parent.name not in ("cli", "web"):
            assert "May import" in text, init


def test_the_web_endpoint_does_not_load_the_rendering_or_sending_stack() -> None:
    """A WSGI worker serves forms and links: loading mjml, lint or the delivery engine would only cost."""
    heavy = ["mjml", "newsletter.campaigns.lint", "newsletter.campaigns.deid", "newsletter.delivery.engine"]
    probe = f"import sys, newsletter.web; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "[]"


def test_help_does_not_load_the_database_or_rendering_stack() -> None:
    """``newsletter --help`` answers at once: each command imports what it needs when it runs."""
    heavy = {"sqlalchemy", "mjml", "newsletter.delivery.engine"}
    run = [sys.executable, "-X", "importtime", "-m", "newsletter", "--help"]
    result = subprocess.run(run, check=True, capture_output=True, text=True)
    imported = {
        line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    assert "newsletter.cli" in imported  # the probe sees the imports
    assert imported & heavy == set()


def test_a_command_runs_with_the_collector_on_and_its_code_frozen(tmp_path: Path) -> None:
    """``main`` holds the garbage collector off while a command's code loads (start-up walks hundreds of
    thousands of objects otherwise), then freezes what loaded and hands the collector back: a send or the
    web server must not run for hours without it."""
    probe = (
        "import atexit, gc, sys\n"
        "from newsletter.cli import main\n"
        "atexit.register(lambda: print('collector', gc.isenabled(), gc.get_freeze_count() > 1000))\n"
        f"sys.argv = ['newsletter', '--project', {str(tmp_path)!r}, 'config', 'show', '--json']\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "collector True True"


def test_listing_subscribers_does_not_load_the_orm(tmp_path: Path) -> None:
    """``subscribers list`` is what staff run most: it reads with Core, so it starts without the ORM,
    the models or the subscriber service."""
    base = [sys.executable, "-m", "newsletter", "--project", str(tmp_path), "--db", f"sqlite:///{tmp_path / 's.db'}"]
    subprocess.run([*base, "init"], check=True, capture_output=True)
    subprocess.run(
        [*base, "subscribers", "add", "lee@example.org", "--tag", "faq-updates"], check=True, capture_output=True
    )
    run = [base[0], "-X", "importtime", *base[1:], "subscribers", "list"]
    result = subprocess.run(run, check=True, capture_output=True, text=True)
    imported = {
        line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    assert "lee@example.org" in result.stdout and "faq-updates" in result.stdout
    assert "sqlalchemy.engine" in imported  # the probe sees the store's imports
    assert imported & {"sqlalchemy.orm", "newsletter.store.models", "newsletter.subscribers.service"} == set()
