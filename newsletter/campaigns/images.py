"""Images from the project folder, carried inside every message (CID) instead of loaded from a server.

An image loaded from a server when the email is opened tells that server who read it and when: a
tracking pixel, whatever its intent. A small image the campaign needs (a photo of the garden, the
clinic's logo) can travel in the message itself instead: write it as a path relative to the project
folder, ``![Our garden in spring](images/garden.jpg)`` in Markdown (a campaign or an FAQ answer) or
``<mj-image src="images/logo.png" alt="Harvest">`` in a template. :func:`embed` finds such images in
the campaign's HTML, once per campaign, reads and checks each, and points the HTML at it as
``cid:...``; the message factory (:mod:`newsletter.delivery.mime`) adds each image once, as a part of
a ``multipart/related`` with its Content-ID, to every message. The text part shows the alt text.

The limits keep messages light for every reader and every send: PNG, JPEG or GIF (judged by the
bytes, not the name; WebP and SVG are not shown by Outlook, and SVG can carry scripts), at most
100 KB each and 300 KB for all of a campaign's images, and only files under the project folder (a
path that leaves it, even through a link, is refused). An image that breaks a rule is left as it was
and reported; lint makes each an error, so no such campaign is sent.

A web page cannot use ``cid:``: the archive's web version, the built preview files and the preview
server show the same images as ``data:`` URIs (:func:`with_data_uris`), still loading nothing from
elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

MAX_IMAGE_BYTES = 100 * 1024
MAX_TOTAL_BYTES = 300 * 1024
# (subtype, file signature): the types every mail app shows.
IMAGE_TYPES = (
    ("png", (b"\x89PNG\r\n\x1a\n",)),
    ("jpeg", (b"\xff\xd8\xff",)),
    ("gif", (b"GIF87a", b"GIF89a")),
)
HOW_TO_EMBED = (
    "save it in the project folder (e.g. images/) and write its path, ![alt text](images/name.png), "
    f"to carry it inside the email (PNG, JPEG or GIF, up to {MAX_IMAGE_BYTES // 1024} KB)"
)
# The src of an <img> in MJML's output (always double-quoted) or in Markdown's (likewise).
_IMG_SRC = re.compile(r'(<img\b[^>]*?\ssrc=")([^"]*)(")', re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class InlineImage:
    """One image carried in every message, under its Content-ID."""

    path: Path
    subtype: str  # image/<subtype>
    content_id: str  # without the angle brackets
    data: bytes = field(repr=False)

    @property
    def filename(self) -> str:
        """An ASCII name for the part: mail apps show it when the image is saved."""
        stem = _SAFE_NAME.sub("-", self.path.stem).strip("-.") or "image"
        return f"{stem[:60]}.{'jpg' if self.subtype == 'jpeg' else self.subtype}"

    def data_uri(self) -> str:
        return f"data:image/{self.subtype};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class ImageProblem:
    """A local image that cannot be embedded, and why; ``src`` as written, to find its line."""

    check: str
    src: str
    message: str


@dataclass(frozen=True)
class Embedded:
    html: str
    images: tuple[InlineImage, ...]
    problems: tuple[ImageProblem, ...]


def is_local(src: str) -> bool:
    """A path, not a URL: ``images/garden.jpg``, not ``https://...``, ``cid:...`` or ``//host/...``."""
    src = src.strip()
    return bool(src) and not src.startswith(("//", "#")) and not _SCHEME.match(src)


def embed(document: str, project: Path, domain: str) -> Embedded:
    """``document`` with each local image's src turned into ``cid:``, the images, and the problems."""
    root = project.resolve()
    by_path: dict[Path, InlineImage] = {}
    problems: dict[str, ImageProblem] = {}
    total = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal total
        written = match[2]
        src = html.unescape(written).strip()
        if not is_local(src):
            return match[0]
        path = _resolve(src, root)
        if isinstance(path, ImageProblem):
            problems.setdefault(src, path)
            return match[0]
        image = by_path.get(path)
        if image is None:
            found = _load(src, path, root, domain)
            if isinstance(found, ImageProblem):
                problems.setdefault(src, found)
                return match[0]
            if total + len(found.data) > MAX_TOTAL_BYTES:
                problems.setdefault(
                    src,
                    ImageProblem(
                        "image.total",
                        src,
                        f"image {src!r} would bring the email's images to {(total + len(found.data)) // 1024} KB; "
                        f"keep them to {MAX_TOTAL_BYTES // 1024} KB together (every reader downloads them)",
                    ),
                )
                return match[0]
            image = by_path[found.path] = found
            total += len(found.data)
        return f"{match[1]}cid:{image.content_id}{match[3]}"

    embedded = _IMG_SRC.sub(replace, document)
    return Embedded(embedded, tuple(by_path.values()), tuple(problems.values()))


def _resolve(src: str, root: Path) -> Path | ImageProblem:
    """The file a local ``src`` names, so that an image used twice is read once."""
    relative = urllib.parse.unquote(urllib.parse.urlsplit(src).path)
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        return ImageProblem(
            "image.outside", src, f"image {src!r} is outside the project folder; only images in it are embedded"
        )
    return path


def _load(src: str, path: Path, root: Path, domain: str) -> InlineImage | ImageProblem:
    if not path.is_file():
        where = path.relative_to(root)
        return ImageProblem(
            "image.missing", src, f"image {src!r} not found: there is no file {where} in the project folder"
        )
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        return ImageProblem(
            "image.too-large",
            src,
            f"image {src!r} is {size // 1024} KB; an embedded image may be {MAX_IMAGE_BYTES // 1024} KB at most "
            "(make it smaller: 600 px wide is the width of the email)",
        )
    data = path.read_bytes()
    subtype = next((name for name, magic in IMAGE_TYPES if data.startswith(magic)), None)
    if subtype is None:
        return ImageProblem(
            "image.type", src, f"image {src!r} is not a PNG, JPEG or GIF file; save it as one of those to embed it"
        )
    # Unique to the bytes; readable in a message's source; only characters a cid: URL takes as they are.
    digest = hashlib.sha256(data).hexdigest()[:16]
    stem = _SAFE_NAME.sub("-", path.stem).strip("-.")[:40] or "image"
    host = _SAFE_NAME.sub("-", domain).strip("-.") or "localhost"
    return InlineImage(path, subtype, f"{digest}.{stem}@{host}", data)


def with_data_uris(document: str, images: Iterable[InlineImage]) -> str:
    """A web page's version of ``document``: each ``cid:`` image as a ``data:`` URI."""
    for image in images:
        document = document.replace(f'src="cid:{image.content_id}"', f'src="{image.data_uri()}"')
    return document
