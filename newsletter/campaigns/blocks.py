"""The body of a campaign: Markdown with typed ``:::`` blocks, parsed once by markdown-it.

::

    ::: faq Can I get addicted to ketamine?
    The answer, in Markdown.
    :::

    ::: faq ref=can-i-get-addicted
    :::

Free Markdown between typed blocks becomes a block of kind ``prose``, so the body is one sequence of
blocks in file order. The tokens stay on each :class:`Block`, so rendering never parses again.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.container import container_plugin

BLOCK_KINDS = ("faq", "vignette")  # what an author may write after ":::"
PROSE = "prose"

_CONTAINER = "block"
_OPEN, _CLOSE = f"container_{_CONTAINER}_open", f"container_{_CONTAINER}_close"
_MARKER_ONLY_RE = re.compile(r"^\s*:{3,}\s*$")
# The id of an FAQ entry: the slug of its file in faq/ (see newsletter.campaigns.faq).
FAQ_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_REF_PREFIX = "ref="


class BodyError(Exception):
    """A mistake in the body at a file line; :mod:`newsletter.campaigns.content` adds the file's name."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message, self.line = message, line


@dataclasses.dataclass(frozen=True)
class Block:
    """One part of a campaign body, in file order.

    ``source`` is the author's Markdown verbatim (for a typed block: the lines between the markers),
    and ``source_line`` is the file line where it starts, so a finding at offset ``i`` of ``source`` is
    on file line ``source_line + source.count("\\n", 0, i)``.
    """

    kind: str  # "prose", "faq" or "vignette"
    argument: str  # the text after the kind: the question of a faq, "" otherwise
    source: str
    line: int  # first line of the block (the ``:::`` line of a typed block)
    source_line: int
    end_line: int  # last line of the block (the closing ``:::`` of a typed block)
    tokens: tuple[Token, ...] = dataclasses.field(repr=False, compare=False)
    # ``::: faq ref=ID``: the FAQ entry the block carries. Parsed empty; the loader fills in the entry's
    # question (``argument``), answer (``source``) and tokens.
    ref: str = ""

    @property
    def question(self) -> str:
        return self.argument if self.kind == "faq" else ""


def markdown_parser() -> MarkdownIt:
    """The one Markdown dialect of campaigns and the FAQ: CommonMark, raw HTML shown as text, ``:::``
    blocks, and typographic quotes ("straight" becomes “curly”, it's becomes it’s).

    The typographer changes only the text tokens that are rendered: a block's ``source`` stays as it
    was typed, so vignette sign-off hashes and the de-identification gate read the author's own
    characters. Only smartquotes is on: markdown-it's other replacements turn "(c)" into "©", which
    would garble a list such as "(a), (b), (c)".
    """
    md = MarkdownIt("commonmark", {"html": False, "typographer": True}).enable("smartquotes")
    # One catch-all container, so that an unknown kind is reported instead of silently becoming text.
    container_plugin(md, _CONTAINER, validate=lambda params, *_: bool(params.strip()))
    return md


def parse_body(body: str, lines_before: int) -> tuple[Block, ...]:
    """The blocks of ``body``, which starts after ``lines_before`` lines of the file."""
    tokens = markdown_parser().parse(body)
    parser = _BodyParser(body.split("\n"), lines_before)
    return parser.blocks(tokens)


@dataclasses.dataclass
class _BodyParser:
    lines: list[str]
    lines_before: int

    def file_line(self, body_index: int) -> int:
        return self.lines_before + body_index + 1

    def blocks(self, tokens: Sequence[Token]) -> tuple[Block, ...]:
        blocks: list[Block] = []
        prose: list[Token] = []
        i = 0
        while i < len(tokens):
            if tokens[i].type != _OPEN:
                self.check_stray_marker(tokens[i])
                prose.append(tokens[i])
                i += 1
                continue
            if prose:
                blocks.append(self.prose_block(prose))
                prose = []
            end = _matching_close(tokens, i)
            blocks.append(self.typed_block(tokens[i], tokens[i + 1 : end]))
            i = end + 1
        if prose:
            blocks.append(self.prose_block(prose))
        return tuple(blocks)

    def typed_block(self, opening: Token, inner: Sequence[Token]) -> Block:
        assert opening.map is not None
        first, closing = opening.map
        kind, _, argument = opening.info.strip().partition(" ")
        argument = argument.strip()
        where = self.file_line(first)

        if kind not in BLOCK_KINDS:
            close = difflib.get_close_matches(kind.lower(), BLOCK_KINDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BodyError(f"unknown block kind {kind!r}{hint}; known kinds: {', '.join(BLOCK_KINDS)}", where)
        if closing >= len(self.lines) or not _MARKER_ONLY_RE.match(self.lines[closing]):
            raise BodyError(f"the {kind} block opened here is never closed: add a line ':::' after it", where)
        for token in inner:
            if token.type == _OPEN:
                raise BodyError(
                    f"blocks cannot be nested: this block is inside the {kind} block opened on line {where}",
                    self.file_line(token.map[0]) if token.map else where,
                )
            self.check_stray_marker(token)
        if kind == "faq" and not argument:
            raise BodyError(
                "a faq block needs its question after the kind: '::: faq Can I get addicted to ketamine?', "
                "or an FAQ entry's id: '::: faq ref=can-i-get-addicted'",
                where,
            )
        if kind == "vignette" and argument:
            raise BodyError(f"a vignette block takes nothing after its kind, got {argument!r}", where)
        if kind == "faq" and argument.startswith(_REF_PREFIX):
            return self.ref_block(argument.removeprefix(_REF_PREFIX).strip(), inner, where, closing)
        if not inner:
            raise BodyError(f"the {kind} block is empty", where)

        return Block(
            kind=kind,
            argument=argument,
            source="\n".join(self.lines[first + 1 : closing]),
            line=where,
            source_line=self.file_line(first + 1),
            end_line=self.file_line(closing),
            tokens=tuple(inner),
        )

    def ref_block(self, ref: str, inner: Sequence[Token], where: int, closing: int) -> Block:
        if not FAQ_ID_RE.fullmatch(ref):
            raise BodyError(
                f"'ref=' takes the id of an FAQ entry (lowercase letters, digits and hyphens), got {ref!r}", where
            )
        if inner:
            raise BodyError(
                f"a faq block with ref={ref} takes its question and answer from the FAQ: leave its body empty, "
                "or write '::: faq QUESTION' to give your own answer",
                where,
            )
        return Block(
            kind="faq",
            argument="",
            source="",
            line=where,
            source_line=where + 1,
            end_line=self.file_line(closing),
            tokens=(),
            ref=ref,
        )

    def prose_block(self, tokens: Sequence[Token]) -> Block:
        spans = [t.map for t in tokens if t.map]
        first, last = min(s[0] for s in spans), max(s[1] for s in spans)
        return Block(
            kind=PROSE,
            argument="",
            source="\n".join(self.lines[first:last]),
            line=self.file_line(first),
            source_line=self.file_line(first),
            end_line=self.file_line(last - 1),
            tokens=tuple(tokens),
        )

    def check_stray_marker(self, token: Token) -> None:
        """A ':::' line that closes nothing is almost always a typo of a block opener; say so."""
        if token.type != "inline" or not token.map or ":::" not in token.content:
            return
        for n, text in enumerate(token.content.split("\n")):
            if _MARKER_ONLY_RE.match(text):
                raise BodyError(
                    "this ':::' line closes no block (a block starts with '::: faq QUESTION' or '::: vignette')",
                    self.file_line(token.map[0] + n),
                )


def _matching_close(tokens: Sequence[Token], start: int) -> int:
    depth = 0
    for j in range(start, len(tokens)):
        if tokens[j].type == _OPEN:
            depth += 1
        elif tokens[j].type == _CLOSE:
            depth -= 1
            if depth == 0:
                return j
    raise AssertionError("markdown-it always closes a container")  # pragma: no cover
