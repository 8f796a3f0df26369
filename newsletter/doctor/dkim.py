"""DKIM: the selector's record is published, holds the public half of our key, and the key is long enough.

Messages are signed with ``dkim_key_path`` as ``d=`` the From domain and ``s=`` ``dkim_selector``
(:mod:`newsletter.delivery.dkim`), so receivers fetch ``SELECTOR._domainkey.FROM-DOMAIN``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator

import dkim.crypto
import dkim.util

from newsletter.config import Settings
from newsletter.doctor.report import Check, fail, ok, warn
from newsletter.doctor.resolver import Resolver

# The checks that follow a lookup, in order (dkim.signing, about the settings, comes before any).
CHECK_IDS = ("dkim.record", "dkim.key_match", "dkim.key_size")
MIN_BITS = 1024  # RFC 8301: verifiers must reject shorter RSA keys
GOOD_BITS = 2048
PUBLIC_KEY_COMMAND = "openssl rsa -in {key} -pubout -outform der | base64 -w0"


def _private_numbers(pem: bytes) -> tuple[int, int]:
    key = dkim.crypto.parse_pem_private_key(pem)
    return key["modulus"], key["publicExponent"]


def _public_numbers(tags: dict[bytes, bytes]) -> tuple[int, int] | None:
    """The RSA public numbers in a record's p= (None for a key of another type)."""
    if tags.get(b"k", b"rsa").strip().lower() != b"rsa":
        return None
    key = dkim.crypto.parse_public_key(base64.b64decode(b"".join(tags[b"p"].split()), validate=True))
    return key["modulus"], key["publicExponent"]


def dkim_checks(settings: Settings, resolver: Resolver, domain: str) -> Iterator[Check]:
    if not settings.dkim_key_path:
        yield warn(
            "dkim.signing",
            "Messages are not DKIM-signed; Gmail, Yahoo and Outlook require DKIM from bulk senders.",
            "Make a key (openssl genrsa -traditional -out dkim.pem 2048), set dkim_key_path and dkim_selector, "
            "and publish its public half (see the README's 'Before your first send').",
        )
        return
    if not settings.dkim_selector:
        yield fail("dkim.signing", "dkim_key_path is set but dkim_selector is empty.", "Set dkim_selector.")
        return
    path = settings.resolve_path(settings.dkim_key_path)
    try:
        private = _private_numbers(path.read_bytes())
    except OSError as exc:
        yield fail("dkim.signing", f"Cannot read the DKIM key {path}: {exc.strerror}.", "Fix dkim_key_path.")
        return
    except (dkim.crypto.UnparsableKeyError, binascii.Error, ValueError) as exc:
        yield fail(
            "dkim.signing",
            f"{path} is not a PEM RSA private key ({exc}).",
            "Point dkim_key_path at an RSA key in PEM form (openssl genrsa -traditional -out dkim.pem 2048).",
        )
        return
    name = f"{settings.dkim_selector}._domainkey.{domain}"
    publish = (
        f"Publish a TXT record at {name}: v=DKIM1; k=rsa; p=<the output of: {PUBLIC_KEY_COMMAND.format(key=path)}>"
    )
    records = resolver.txt(name)
    if not records:
        yield fail("dkim.record", f"No DKIM record at {name}: receivers cannot verify our signatures.", publish)
        return
    if len(records) > 1:
        yield fail("dkim.record", f"{len(records)} TXT records at {name}; there must be exactly one.", publish)
        return
    try:
        tags = dkim.util.parse_tag_value(records[0].encode("ascii", "replace"))
        if not tags.get(b"p", b"").strip():
            yield fail("dkim.record", f"The DKIM record at {name} has an empty p=: the key is revoked.", publish)
            return
        public = _public_numbers(tags)
    except (dkim.util.InvalidTagValueList, dkim.crypto.UnparsableKeyError, binascii.Error, ValueError) as exc:
        yield fail("dkim.record", f"The DKIM record at {name} does not parse ({exc}).", publish)
        return
    yield ok("dkim.record", f"DKIM record found at {name}.")
    if public is None:
        yield warn(
            "dkim.key_match",
            f"The record at {name} holds a {tags[b'k'].decode(errors='replace')} key; dkim_key_path holds RSA.",
            publish,
        )
        return
    if public != private:
        yield fail(
            "dkim.key_match",
            f"The key published at {name} is not the public half of {path}: every signature would fail.",
            publish + ", or point dkim_key_path at the key that was published.",
        )
        return
    yield ok("dkim.key_match", f"The key published at {name} matches {path}.")
    bits = public[0].bit_length()
    if bits < MIN_BITS:
        yield fail(
            "dkim.key_size",
            f"The DKIM key has {bits} bits; receivers reject keys under {MIN_BITS}.",
            f"Make a {GOOD_BITS}-bit key (openssl genrsa -traditional -out dkim.pem {GOOD_BITS}), publish it under a "
            "new selector, then switch dkim_key_path and dkim_selector.",
        )
    elif bits < GOOD_BITS:
        yield warn(
            "dkim.key_size",
            f"The DKIM key has {bits} bits; {GOOD_BITS} is the recommended size.",
            f"Make a {GOOD_BITS}-bit key, publish it under a new selector, then switch dkim_key_path and "
            "dkim_selector.",
        )
    else:
        yield ok("dkim.key_size", f"The DKIM key has {bits} bits.")
