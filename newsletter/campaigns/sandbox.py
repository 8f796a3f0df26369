"""The Jinja2 sandbox for email templates, with a budget for every render.

Templates render in an immutable sandbox with autoescape and ``StrictUndefined``. On top of that,
each render has a budget: items produced by ``range``, characters produced by expressions, filters
and operators, size of the output and wall-clock time. A template that loops for ever or builds a
huge string then stops with a one-line error instead of hanging a send or producing half an email.
Checks run *before* the allocation where the size is known in advance (``"x" * 10**9``,
``center(10**9)``, ``"%0999999999d"``), because a 1 GB string is itself the damage.

What is not bounded: nested ``for`` loops over data (not ``range``) with no output; they are as
long as the data is, and campaign data is small.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from newsletter.campaigns import plaintext


class RenderLimitExceeded(jinja2.exceptions.SecurityError):
    """Raised inside a render; reported as a :class:`newsletter.campaigns.templating.TemplateRenderError`."""


@dataclasses.dataclass(frozen=True)
class RenderLimits:
    max_output: int = 2_000_000  # characters of one rendered template
    max_work: int = 20_000_000  # characters made by expressions, filters and operators in one render
    max_range: int = 100_000  # items of all range() calls in one render, so nested loops count too
    max_int_bits: int = 4096  # size of numbers made by * and **
    max_seconds: float = 10.0


@dataclasses.dataclass
class RenderBudget:
    limits: RenderLimits
    deadline: float
    items: int = 0
    work: int = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(f"rendering took longer than {self.limits.max_seconds:g} seconds")

    def spend_items(self, count: int) -> None:
        self.items += count
        if self.items > self.limits.max_range:
            raise RenderLimitExceeded(
                f"range() would produce {self.items:,} items in this render; the limit is {self.limits.max_range:,}"
            )
        self.tick()

    def spend_work(self, chars: int) -> None:
        if chars > self.limits.max_output:
            raise RenderLimitExceeded(
                f"a value of {chars:,} characters is larger than the limit of {self.limits.max_output:,}"
            )
        self.work += chars
        if self.work > self.limits.max_work:
            raise RenderLimitExceeded(f"the template produced more than {self.limits.max_work:,} characters of values")
        self.tick()


# The budget of the render in progress; a context variable so threads and tasks each have their own.
_BUDGET: contextvars.ContextVar[RenderBudget | None] = contextvars.ContextVar("newsletter_render_budget", default=None)


@contextlib.contextmanager
def render_budget(limits: RenderLimits) -> Iterator[RenderBudget]:
    """Make a fresh budget the active one for the renders inside the ``with`` block."""
    budget = RenderBudget(limits, time.monotonic() + limits.max_seconds)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def _current() -> RenderBudget | None:
    # None outside render_template, e.g. while Jinja finalizes constants at compile time.
    return _BUDGET.get()


def _budget_for_filter() -> RenderBudget:
    budget = _BUDGET.get()
    if budget is None:
        # Jinja calls filters with constant arguments at compile time to fold them; refusing makes it
        # leave the call for render time, where the budget applies ("x"|center(1000000000)).
        raise RuntimeError("email template filters run only inside render_template()")
    return budget


def _limited_range(*args: int) -> range:
    values = range(*args)
    budget = _current()
    if budget is not None:
        budget.spend_items(len(values))
    return values


class _LimitedNamespace(Namespace):
    """``namespace()`` is the one way a template can carry a value across loop iterations, so it is
    where repeated doubling (``{% set ns.s = ns.s ~ ns.s %}``) has to be stopped."""

    def __setitem__(self, name: str, value: Any) -> None:
        budget = _current()
        if budget is not None and isinstance(value, str | list | tuple):
            budget.spend_work(len(value))
        super().__setitem__(name, value)


def _finalize(value: Any) -> Any:
    budget = _current()
    if budget is not None:
        budget.spend_work(len(value) if isinstance(value, str) else 0)
    return value


def _guard_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse absurd numeric arguments before a filter allocates (``center(10**9)``), and count the
    size of what it returns."""
    skip = 2 if getattr(func, "jinja_pass_arg", None) is not None else 1  # context/env, then the value

    @functools.wraps(func)  # also copies jinja_pass_arg, which Jinja reads to pass the context
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget_for_filter()
        for arg in (*args[skip:], *kwargs.values()):
            if isinstance(arg, int) and abs(arg) > budget.limits.max_output:
                raise RenderLimitExceeded(f"filter argument {arg:,} is larger than the output limit")
        result = func(*args, **kwargs)
        if isinstance(result, str):
            budget.spend_work(len(result))
        return result

    return guarded


def _autoescape(name: str | None) -> bool:
    # Text templates feed the text/plain part, where "&amp;" would be a visible mistake, not safety.
    return not (name or "").endswith((".txt.j2", ".txt"))


class _BudgetedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` into a call the budget sees. Jinja joins concatenations inline
    (``str_join``/``markup_join``), out of reach of the sandbox's operator hooks, so a recursive macro
    doubling a string with ``~`` could otherwise build a gigabyte that is never output."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.budgeted_concat(context, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class CampaignSandbox(ImmutableSandboxedEnvironment):
    """An immutable sandbox whose operators, calls, filters, concatenations and output draw on the
    active budget. The work budget is the memory ceiling of one render: every string a template
    makes is counted before it is made, and the deadline bounds its time."""

    code_generator_class = _BudgetedCodeGenerator

    # Intercepting also stops Jinja from constant-folding these at compile time, outside any budget.
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, loader: jinja2.BaseLoader, limits: RenderLimits):
        super().__init__(
            loader=loader,
            autoescape=_autoescape,
            undefined=jinja2.StrictUndefined,
            finalize=_finalize,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.limits = limits
        self.globals["range"] = _limited_range
        self.globals["namespace"] = _LimitedNamespace
        self.globals.pop("lipsum", None)  # generates text of any requested size
        self.filters["wrap"] = plaintext.wrap
        self.filters["underline"] = plaintext.underline
        self.filters = {name: _guard_filter(f) for name, f in self.filters.items()}
        self.filters["format"] = _guard_format(self.filters["format"])

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        budget = _current()
        if budget is not None:
            _check_binop(budget, operator, left, right)
        result = super().call_binop(context, operator, left, right)
        if budget is not None and isinstance(result, str | list | tuple):
            budget.spend_work(len(result))
        return result

    def budgeted_concat(self, context: jinja2.runtime.Context, parts: tuple[Any, ...]) -> str:
        """``a ~ b ~ ...``, counted against the budget before the joined string exists."""
        budget = _current()
        texts = [part if isinstance(part, str) else str(part) for part in parts]
        if budget is not None:
            budget.spend_work(sum(map(len, texts)))
        join = markup_join if context.eval_ctx.autoescape else str_join
        return join(parts)

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = _current()
        if budget is not None:
            budget.tick()
        return super().call(context, obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        budget = _current()
        if budget is not None:
            budget.tick()
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        pattern = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            budget = _current()
            if budget is not None:
                _check_format(budget, pattern, (*args, *kwargs.values()))
            return wrapped(*args, **kwargs)

        return checked


def _check_binop(budget: RenderBudget, operator: str, left: Any, right: Any) -> None:
    limits = budget.limits
    if isinstance(left, bool) or isinstance(right, bool):
        return
    if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        if max(abs(left), 2).bit_length() * right > limits.max_int_bits:
            raise RenderLimitExceeded(f"{left} ** {right} is too large a number")
    elif operator == "*":
        both_ints = isinstance(left, int) and isinstance(right, int)
        if both_ints and left.bit_length() + right.bit_length() > limits.max_int_bits:
            raise RenderLimitExceeded("the product is too large a number")
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                budget.spend_work(len(seq) * max(times, 0))
    elif operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        budget.spend_work(len(left) + len(right))
    elif operator == "%" and isinstance(left, str):
        _check_format(budget, left, right if isinstance(right, tuple) else (right,))


_NUMBER_RE = re.compile(r"\d+")


def _check_format(budget: RenderBudget, pattern: str, args: Any) -> None:
    """Widths and precisions ("%0999999999d", "{:>999999999}", "%*d") allocate before any other check
    could see the result, so refuse them up front."""
    values = [*args, *(v for a in args if isinstance(a, Mapping) for v in a.values())]
    numbers = [int(n) for n in _NUMBER_RE.findall(pattern) if len(n) <= 12] + [v for v in values if isinstance(v, int)]
    if any(len(n) > 12 for n in _NUMBER_RE.findall(pattern)) or any(abs(n) > budget.limits.max_output for n in numbers):
        raise RenderLimitExceeded("a format width or precision is larger than the output limit")


def _guard_format(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            _check_format(_budget_for_filter(), value, (*args, *kwargs.values()))
        return func(value, *args, **kwargs)

    return checked
