"""Finding and rendering email templates: the project's ``templates/`` first, package defaults behind.

Lookup follows datasette: a name is looked up in the project's ``templates/`` folder, then in the
package's defaults, and ``default:NAME`` always reaches the package's version, so a project template
can ``{% extends "default:layout.mjml.j2" %}`` and change only what it needs. Rendering happens in
:class:`newsletter.campaigns.sandbox.CampaignSandbox` under a render budget; every failure, from a missing
template to a runaway loop, becomes one :class:`TemplateRenderError` line naming the template and line.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from newsletter.campaigns.sandbox import CampaignSandbox, RenderBudget, RenderLimitExceeded, RenderLimits, render_budget
from newsletter.errors import NewsletterError

__all__ = [
    "DEFAULT_PREFIX",
    "PACKAGE_TEMPLATES",
    "RenderLimitExceeded",
    "RenderLimits",
    "TemplateEnvironment",
    "TemplateRenderError",
    "make_environment",
    "render_template",
]

PACKAGE_TEMPLATES = Path(__file__).with_name("templates")
DEFAULT_PREFIX = "default"


class TemplateRenderError(NewsletterError):
    """A template that cannot be found, parsed or rendered, or that exceeded a render limit."""


class TemplateEnvironment(CampaignSandbox):
    """The sandbox plus the template folders it searches, to name templates in error messages."""

    def __init__(self, loader: jinja2.BaseLoader, limits: RenderLimits, roots: Mapping[Path, str]):
        super().__init__(loader, limits)
        self.roots = roots

    def describe(self, filename: str | None) -> str:
        """A template file as the user knows it: ``templates/x.j2`` or ``default:x.j2``."""
        if not filename:
            return "<template>"
        path = Path(filename).resolve()
        for root, label in self.roots.items():
            if path.is_relative_to(root):
                rel = path.relative_to(root).as_posix()
                return f"{DEFAULT_PREFIX}:{rel}" if label == DEFAULT_PREFIX else f"{label}/{rel}"
        return filename


def make_environment(templates_path: Path, limits: RenderLimits | None = None) -> TemplateEnvironment:
    """The environment for one project: ``templates_path`` first, then the package's defaults."""
    defaults = jinja2.FileSystemLoader(PACKAGE_TEMPLATES)
    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(templates_path),
            jinja2.PrefixLoader({DEFAULT_PREFIX: defaults}, delimiter=":"),
            defaults,
        ]
    )
    roots = {PACKAGE_TEMPLATES.resolve(): DEFAULT_PREFIX, templates_path.resolve(): templates_path.name}
    return TemplateEnvironment(loader, limits or RenderLimits(), roots)


def render_template(env: TemplateEnvironment, name: str | jinja2.Template, context: Mapping[str, Any]) -> str:
    """Render one template within the environment's limits; any failure is a TemplateRenderError."""
    label = name if isinstance(name, str) else env.describe(name.filename)
    try:
        with render_budget(env.limits) as budget:
            return _render_capped(env, env.get_template(name), context, budget, label)
    except TemplateRenderError:
        raise
    except jinja2.TemplateNotFound as exc:
        raise TemplateRenderError(f"template {exc.name!r} not found in {_search_list(env)}") from exc
    except jinja2.TemplateSyntaxError as exc:
        where = f"{env.describe(exc.filename) if exc.filename else label}:{exc.lineno}"
        raise TemplateRenderError(f"{where}: {exc.message}") from exc
    except RecursionError as exc:
        raise TemplateRenderError(
            f"{label}: templates include or extend each other without end; a project template that "
            f"replaces a default reaches the original as '{DEFAULT_PREFIX}:NAME'"
        ) from exc
    except Exception as exc:  # a template bug, reported with its position rather than a traceback
        message = str(exc) if isinstance(exc, jinja2.TemplateError) else f"{type(exc).__name__}: {exc}"
        raise TemplateRenderError(f"{_position(env, exc) or label}: {message}") from exc


def _render_capped(
    env: TemplateEnvironment,
    template: jinja2.Template,
    context: Mapping[str, Any],
    budget: RenderBudget,
    label: str,
) -> str:
    """Render chunk by chunk, so a runaway template stops at the cap instead of after it."""
    chunks: list[str] = []
    size = 0
    stream = template.generate(context)
    try:
        for chunk in stream:
            size += len(chunk)
            if size > env.limits.max_output:
                raise TemplateRenderError(
                    f"{label}: the output is larger than {env.limits.max_output:,} characters; "
                    "does a loop run too long?"
                )
            budget.tick()
            chunks.append(chunk)
    finally:
        close = getattr(stream, "close", None)  # a generator: stop it now, not when collected
        if close is not None:
            close()
    return "".join(chunks)


def _search_list(env: TemplateEnvironment) -> str:
    project = [str(root) for root, label in env.roots.items() if label != DEFAULT_PREFIX]
    return " or ".join([*project, "the package defaults"])


def _position(env: TemplateEnvironment, exc: BaseException) -> str | None:
    """Jinja rewrites tracebacks so template frames carry the template's file and line."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2") or frame.filename == "<template>":
            return f"{env.describe(frame.filename)}:{frame.lineno}"
    return None
