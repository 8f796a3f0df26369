"""The clinic's FAQ as an input of the pipeline: one Markdown file per question in ``faq/``.

::

    ---
    question: Can I get addicted to ketamine?
    id: can-i-get-addicted      # stable: campaigns and the outbox know the entry by it
    topics: [faq-updates]       # subscriber tags; a campaign drafted from the entry goes to them
    updated: 2026-11-24         # set by `newsletter campaign new --from-faq`
    ---
    The answer, in Markdown.

Files are read in name order, which is the order of the FAQ page; a number in front of the name
(``03-can-i-get-addicted.md``) orders them. The ``id`` is what names the entry, so renaming or
renumbering a file changes nothing else.

A campaign carries an entry with ``::: faq ref=ID`` (filled in by
:func:`newsletter.campaigns.content.load_campaign`). When it is sent, the outbox keeps each carried
entry as it went out (:mod:`newsletter.delivery.faq_history`), and :func:`changes` compares the FAQ with
that. A version of an answer is identified by :func:`content_hash`, which sees only its words: re-wrapping
or re-indenting an answer is not a change, and :func:`word_diff` shows what is.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markupsafe import Markup

from newsletter.campaigns.blocks import FAQ_ID_RE, PROSE, Block, BodyError, markdown_parser, parse_body
from newsletter.campaigns.images import is_local
from newsletter.campaigns.markdown_file import FileError, read_text, split_front_matter, yaml_type

if TYPE_CHECKING:
    from markdown_it.utils import EnvType, OptionsDict

    from newsletter.config import Settings

KNOWN_KEYS = ("question", "id", "topics", "updated")
NEW, CHANGED = "new", "changed"
DIFF_CONTEXT = 8  # words of unchanged text shown on each side of a change


class FaqError(FileError):
    """An FAQ file that cannot be used; the message names the file and, where known, the line."""


@dataclasses.dataclass(frozen=True)
class FaqEntry:
    """One question of the FAQ and its answer."""

    id: str
    question: str
    topics: tuple[str, ...]
    updated: date | None
    answer: str  # the Markdown of the answer, newlines normalised, outer blank lines removed
    path: Path
    answer_line: int  # file line where the answer starts
    tokens: tuple[Token, ...] = dataclasses.field(repr=False, compare=False, default=())

    @property
    def hash(self) -> str:
        return content_hash(self.answer)

    def line_of(self, needle: str) -> int | None:
        """The file line of the first ``needle`` in the answer, for pointing staff at it."""
        index = self.answer.find(needle)
        return None if index < 0 else self.answer_line + self.answer.count("\n", 0, index)


@dataclasses.dataclass(frozen=True)
class Faq:
    """Every entry of the FAQ folder, in file-name order."""

    folder: Path
    entries: tuple[FaqEntry, ...] = ()

    @property
    def ids(self) -> list[str]:
        return [entry.id for entry in self.entries]

    def get(self, entry_id: str) -> FaqEntry | None:
        return next((entry for entry in self.entries if entry.id == entry_id), None)

    def matching(self, question: str) -> FaqEntry | None:
        """The entry asking ``question``, ignoring case, spacing, punctuation and curly quotes."""
        wanted = question_key(question)
        return next((entry for entry in self.entries if question_key(entry.question) == wanted), None)


def question_key(question: str) -> str:
    """A question as compared with others: case, spacing, punctuation and curly quotes do not count."""
    return " ".join(re.sub(r"[\W_]+", " ", question.replace("’", "'").casefold()).split())


# --- reading -------------------------------------------------------------------------------------


def load_faq(folder: Path) -> Faq:
    """Every ``*.md`` entry in ``folder``. A missing folder is an FAQ without entries (a clinic may have
    none); an unreadable entry or two entries with one id are an error."""
    if not folder.exists():
        return Faq(folder)
    if not folder.is_dir():
        raise FaqError("the FAQ folder is a file; faq_dir must name a folder of Markdown files", path=folder)
    entries: list[FaqEntry] = []
    for path in faq_files(folder):
        entry = load_entry(path)
        first = next((e for e in entries if e.id == entry.id), None)
        if first is not None:
            raise FaqError(f"the id {entry.id!r} is also the id of {first.path.name}; ids must be unique", path=path)
        entries.append(entry)
    return Faq(folder, tuple(entries))


def faq_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("*.md") if path.is_file())


def load_entry(path: Path) -> FaqEntry:
    return parse_entry(read_text(path, FaqError), path)


def parse_entry(text: str, path: Path) -> FaqEntry:
    """One FAQ file's text; ``path`` is where it lives (and labels errors)."""
    meta, body, offset = split_front_matter(text, path, FaqError, example="question: ...")
    unknown = [str(key) for key in meta if key not in KNOWN_KEYS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], KNOWN_KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise FaqError(f"unknown front-matter key {unknown[0]!r}{hint}; known keys: {', '.join(KNOWN_KEYS)}", path=path)
    question = meta.get("question")
    if not isinstance(question, str) or not question.strip() or len(question.strip().splitlines()) > 1:
        raise FaqError("front matter needs the 'question', on one line", path=path)
    entry_id = meta.get("id")
    if not isinstance(entry_id, str) or not FAQ_ID_RE.fullmatch(entry_id):
        raise FaqError(
            f"front matter needs an 'id' of lowercase letters, digits and hyphens (e.g. {_suggest_id(path)!r}), "
            f"got {entry_id!r}; campaigns name the entry by it, so keep it once chosen",
            path=path,
        )
    blank = len(body) - len(body.lstrip("\n"))
    answer = body.strip("\n").rstrip()
    answer_line = offset + blank + 1
    if not answer:
        raise FaqError("the answer is missing: write it below the front matter", path=path)
    try:
        blocks = parse_body(answer, answer_line - 1)
    except BodyError as exc:
        raise FaqError(exc.message, path=path, line=exc.line) from None
    typed = next((b for b in blocks if b.kind != PROSE), None)
    if typed is not None:
        raise FaqError(
            f"an answer is plain Markdown; a '::: {typed.kind}' block cannot go in it", path=path, line=typed.line
        )
    return FaqEntry(
        id=entry_id,
        question=" ".join(question.split()),
        topics=_topics(meta.get("topics"), path),
        updated=_updated(meta.get("updated"), path),
        answer=answer,
        path=path,
        answer_line=answer_line,
        tokens=tuple(token for block in blocks for token in block.tokens),
    )


def _suggest_id(path: Path) -> str:
    return re.sub(r"^\d+-", "", path.stem) if FAQ_ID_RE.fullmatch(path.stem) else "can-i-get-addicted"


def _topics(value: Any, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        raise FaqError(f"'topics' must be a list of subscriber tags, e.g. [faq-updates], got {value!r}", path=path)
    return tuple(dict.fromkeys(t.strip() for t in value))


def _updated(value: Any, path: Path) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    raise FaqError(f"'updated' must be a date such as 2026-11-24, got {yaml_type(value)} {value!r}", path=path)


# --- versions and changes ------------------------------------------------------------------------


def content_hash(answer: str) -> str:
    """What identifies a version of an answer: its words. Whitespace (line breaks, indentation, blank
    lines) is not news to a subscriber, so it does not count."""
    return "sha256:" + hashlib.sha256(" ".join(answer.split()).encode("utf-8")).hexdigest()


def word_diff(old: str, new: str, *, context: int = DIFF_CONTEXT) -> str:
    """The words of ``new`` with what changed from ``old`` marked as ``git diff --word-diff`` does:
    ``[-removed-]`` and ``{+added+}``. Long unchanged runs are cut to ``context`` words each side (…).
    Empty when only whitespace differs."""
    before, after = old.split(), new.split()
    opcodes = difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()
    if all(tag == "equal" for tag, *_ in opcodes):
        return ""
    pieces: list[str] = []
    for n, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            pieces.append(_context(after[j1:j2], context, first=n == 0, last=n == len(opcodes) - 1))
            continue
        if i2 > i1:
            pieces.append("[-" + " ".join(before[i1:i2]) + "-]")
        if j2 > j1:
            pieces.append("{+" + " ".join(after[j1:j2]) + "+}")
    return " ".join(pieces)


def _context(words: list[str], context: int, *, first: bool, last: bool) -> str:
    head = [] if first else words[:context]
    tail = [] if last else words[-context:]
    if len(words) <= len(head) + len(tail) + 1:
        return " ".join(words)
    return " ".join([*head, "…", *tail])


@dataclasses.dataclass(frozen=True)
class Heard:
    """An FAQ entry as subscribers received it (or as another version of the FAQ holds it)."""

    id: str
    question: str
    hash: str
    answer: str


@dataclasses.dataclass(frozen=True)
class Change:
    """An entry that is new since, or whose answer changed since, what subscribers heard."""

    id: str
    question: str
    kind: str  # NEW or CHANGED
    diff: str  # see word_diff

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "question": self.question, "kind": self.kind, "diff": self.diff}


@dataclasses.dataclass(frozen=True)
class ChangeReport:
    """The changes, and what the FAQ was compared with, in words (empty: nothing was ever sent)."""

    changes: list[Change]
    since: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"changes": [change.as_dict() for change in self.changes]}


def changes(entries: Iterable[FaqEntry], heard: Mapping[str, Heard]) -> list[Change]:
    """The entries (in FAQ order) that ``heard`` lacks, or whose answer differs from it."""
    found = []
    for entry in entries:
        before = heard.get(entry.id)
        if before is None:
            found.append(Change(entry.id, entry.question, NEW, word_diff("", entry.answer)))
        elif before.hash != entry.hash:
            found.append(Change(entry.id, entry.question, CHANGED, word_diff(before.answer, entry.answer)))
    return found


def compare(current: Faq, older: Faq) -> ChangeReport:
    """What changed from another version of the FAQ (say, a pull request's base branch) to ``current``."""
    heard = {entry.id: Heard(entry.id, entry.question, entry.hash, entry.answer) for entry in older.entries}
    return ChangeReport(changes(current.entries, heard), f"the FAQ in {older.folder}")


def carried(blocks: Sequence[Block]) -> list[Heard]:
    """The FAQ entries a campaign carries by reference, as its email says them (blocks loaded with
    their answers filled in). Inline ``::: faq QUESTION`` blocks are the author's own words, not an entry."""
    seen: dict[str, Heard] = {}
    for block in blocks:
        if block.ref and block.ref not in seen:
            seen[block.ref] = Heard(block.ref, block.question, content_hash(block.source), block.source)
    return list(seen.values())


# --- showing and stamping ------------------------------------------------------------------------


def entry_url(settings: Settings, entry_id: str) -> str:
    """Where the full answer lives: ``faq_url`` with ``{id}`` filled in, or ``faq_url#ID``, or by default
    this product's own FAQ page (``public_base_url/faq#ID``)."""
    template = settings.faq_url.strip() or settings.public_base_url.rstrip("/") + "/faq"
    if "{id}" in template:
        return template.replace("{id}", entry_id)
    return template.rstrip("#") + "#" + entry_id


def _image_as_link(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env)
    if is_local(src):  # a file of the project, embedded in emails (campaigns.images): no URL to link to
        return escapeHtml(alt)
    return f'<a href="{escapeHtml(src)}">{escapeHtml(alt or src)}</a>'


def answer_html(entry: FaqEntry) -> Markup:
    """The answer as HTML for a web page: raw HTML escaped (as in emails), and images shown as links,
    so that reading the FAQ loads nothing from anywhere else (an image of the project, which emails
    carry inside them, by its alt text)."""
    md = markdown_parser()
    md.add_render_rule("image", _image_as_link)
    return Markup(md.renderer.render(list(entry.tokens), md.options, {}))  # html is off in the parser: escaped


def stamp_updated(entry: FaqEntry, when: date) -> None:
    """Set ``updated: WHEN`` in the entry's file, leaving every other byte as staff wrote it."""
    with entry.path.open(encoding="utf-8", newline="") as stream:  # keep the file's own line ends
        text = stream.read()
    front = re.match(r"\A(?:\ufeff)?---[ \t]*\r?\n(.*?)^---[ \t]*\r?$", text, flags=re.S | re.M)
    if front is None:
        raise FaqError("cannot find the front matter to set 'updated' in", path=entry.path)
    line = f"updated: {when.isoformat()}"
    existing = re.compile(r"^updated[ \t]*:[^\r\n]*", flags=re.M)
    if existing.search(front.group(1)):
        section = existing.sub(line, front.group(1), count=1)
    else:
        newline = "\r\n" if "\r\n" in front.group(0) else "\n"
        section = front.group(1) + line + newline
    entry.path.write_text(text[: front.start(1)] + section + text[front.end(1) :], encoding="utf-8", newline="")
