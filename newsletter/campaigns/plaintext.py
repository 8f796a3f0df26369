"""The text/plain alternative, written from the Markdown token stream rather than by stripping HTML.

Stripping the compiled email HTML loses structure (list markers, where links point, headings) and
drags in layout text; walking the tokens gives text a person would have typed: paragraphs wrapped at
72 columns, ``- `` and ``1. `` lists, ``> `` quotes, links as "text (url)".
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

WIDTH = 72


def markdown_to_text(tokens: Sequence[Token], width: int = WIDTH) -> str:
    """Plain text for a run of block-level tokens, without a trailing newline."""
    root = SyntaxTreeNode(list(tokens))
    return _join_blocks(root.children, width, tight=False)


def wrap(text: str, width: int = WIDTH) -> str:
    """Fill each line of ``text`` to ``width`` columns; URLs and long words are never broken."""
    return "\n".join(
        textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False) if line.strip() else ""
        for line in text.split("\n")
    )


def underline(text: str, char: str = "-", width: int = WIDTH) -> str:
    """A heading: ``text`` wrapped, then a line of ``char`` as long as its longest line."""
    wrapped = wrap(" ".join(text.split()), width)
    longest = max(len(line) for line in wrapped.split("\n"))
    return f"{wrapped}\n{char * longest}"


def _join_blocks(nodes: Sequence[SyntaxTreeNode], width: int, *, tight: bool) -> str:
    parts = [_block(node, width) for node in nodes]
    return ("\n" if tight else "\n\n").join(p for p in parts if p)


def _block(node: SyntaxTreeNode, width: int) -> str:
    kind = node.type
    if kind == "paragraph":
        return wrap(_inline(node.children[0]) if node.children else "", width)
    if kind == "heading":
        return underline(_inline(node.children[0]), "=" if node.tag == "h1" else "-", width)
    if kind in ("bullet_list", "ordered_list"):
        return _list(node, width)
    if kind == "blockquote":
        inner = _join_blocks(node.children, max(width - 2, 20), tight=False)
        return "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))
    if kind in ("fence", "code_block"):
        # Code keeps its own line breaks; indenting sets it apart the way mail clients expect.
        return "\n".join(f"    {line}" if line else "" for line in node.content.rstrip("\n").split("\n"))
    if kind == "hr":
        return "* * *"
    return _inline(node) if kind == "inline" else node.content.strip()


def _list(node: SyntaxTreeNode, width: int) -> str:
    start = int(node.attrs.get("start", 1) or 1)
    # markdown-it hides the paragraphs of a tight list; a loose list keeps blank lines between items.
    tight = all(child.type != "paragraph" or child.hidden for item in node.children for child in item.children)
    items = []
    for n, item in enumerate(node.children):
        marker = "- " if node.type == "bullet_list" else f"{start + n}. "
        body = _join_blocks(item.children, max(width - len(marker), 20), tight=tight)
        lines = body.split("\n") or [""]
        pad = " " * len(marker)
        items.append("\n".join([marker + lines[0], *(pad + line if line else "" for line in lines[1:])]))
    return ("\n" if tight else "\n\n").join(items)


def _inline(node: SyntaxTreeNode) -> str:
    out: list[str] = []
    for child in node.children:
        kind = child.type
        if kind in ("text", "code_inline", "html_inline"):
            out.append(child.content)
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind == "link":
            label, href = _inline(child), str(child.attrs.get("href", ""))
            out.append(href if label in (href, href.removeprefix("mailto:")) or not label else f"{label} ({href})")
        elif kind == "image":
            out.append(_inline(child) or str(child.attrs.get("alt", "")))
        else:  # em, strong, s: plain text has no emphasis worth faking
            out.append(_inline(child))
    return "".join(out)
