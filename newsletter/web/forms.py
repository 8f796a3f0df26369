"""What the web forms accept: parsing and checking submitted fields, with no Flask in sight.

A refusal is either a :class:`FormError`, whose message is shown on a 400 page, or a
:class:`FieldErrors`, which sends the form back (also a 400) with each message next to its field and
what the visitor typed still filled in. Messages never repeat what was typed.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Mapping
from urllib.parse import parse_qsl

from werkzeug.datastructures import MultiDict

from newsletter.delivery.headers import HeaderError
from newsletter.errors import InputError, InvalidAddress, NewsletterError
from newsletter.subscribers.addresses import Address, clean_name, normalise_address
from newsletter.web.emails import usable_recipient

EMAIL_MAX = 320
NAME_INPUT_MAX = 400  # before cleaning; clean_name then holds the stored name to NAME_MAX
MAX_FIELDS = 64
# A field that people never see and bots fill in. Not type=hidden: bots skip those.
HONEYPOT_FIELD = "website"
# Line breaks and other controls in a name are an attempt at header injection, not a typo: the
# browser's text input cannot produce them. "=?" starts an RFC 2047 encoded word (CVE-2024-6923).
_INJECTION_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})


class FormError(NewsletterError):
    """Input a form cannot accept; the message is safe to show to the person who sent it."""


class TooManyFields(FormError):
    """More fields than any of our forms has: refused whole (a 413), never read in part."""


class FieldErrors(FormError):
    """Input to correct on the form itself: a message per field, and the fields as they were sent."""

    def __init__(self, errors: Mapping[str, str], values: MultiDict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = dict(errors)
        self.values = values


@dataclasses.dataclass(frozen=True)
class SignupForm:
    address: Address
    name: str
    topics: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PreferencesForm:
    topics: frozenset[str]
    paused: bool


def parse_urlencoded(body: bytes) -> MultiDict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, refusing bytes that are not UTF-8.

    Werkzeug would quietly turn them into an empty form or into U+FFFD; a clear 400 is better.
    """
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=MAX_FIELDS
        )
    except UnicodeDecodeError:
        raise FormError("The form was sent in an encoding we cannot read; please use UTF-8.") from None
    except ValueError:
        raise TooManyFields("The form has too many fields.") from None
    return MultiDict(pairs)


def check_decoded(form: MultiDict[str, str]) -> None:
    """Refuse a multipart form whose fields were not UTF-8 (Werkzeug replaced the bytes with U+FFFD)."""
    if any("\ufffd" in value for value in form.values()):
        raise FormError("The form was sent in an encoding we cannot read; please use UTF-8.")


def honeypot_filled(form: MultiDict[str, str]) -> bool:
    return bool(form.get(HONEYPOT_FIELD, "").strip())


def parse_address(raw_email: str) -> tuple[Address, str]:
    """The address typed, and the form it takes on the wire."""
    if not raw_email.strip():
        raise FormError("Please enter your email address.")
    if len(raw_email) > EMAIL_MAX:
        raise FormError("That email address is too long.")
    try:
        address = normalise_address(raw_email)
        return address, usable_recipient(address.email)
    except InvalidAddress:
        raise FormError("That does not look like an email address; please check it.") from None
    except HeaderError:
        raise FormError(
            "We cannot send email to this address yet (letters outside ASCII before the @); please use another address."
        ) from None


def parse_signup(form: MultiDict[str, str], topic_choices: Mapping[str, str]) -> SignupForm:
    """The signup form's fields, or :class:`FieldErrors` with every field to correct at once.

    Only what was typed is looked at, never the store: the form comes back the same whatever the
    state of the address.
    """
    errors: dict[str, str] = {}
    address = name = None
    try:
        address, _ = parse_address(form.get("email", ""))  # one we can send to, or sent back now
    except FormError as exc:
        errors["email"] = str(exc)
    try:
        name = _name(form.get("name", ""))
    except FormError as exc:
        errors["name"] = str(exc)
    topics = chosen_topics(form, topic_choices)
    # Consent must be given, not assumed (GDPR Recital 32): no box is ticked in advance, so a
    # request without a topic is sent back rather than read as "everything".
    if topic_choices and not topics:
        errors["topic"] = "Please choose at least one topic."
    if errors or address is None or name is None:
        raise FieldErrors(errors, form)
    return SignupForm(address, name, topics)


def _name(raw: str) -> str:
    if len(raw) > NAME_INPUT_MAX:
        raise FormError("Please keep the name shorter.")
    if "=?" in raw or any(unicodedata.category(c) in _INJECTION_CATEGORIES for c in raw):
        raise FormError("The name contains characters we cannot accept, such as line breaks.")
    try:
        return clean_name(raw)
    except InputError:
        raise FormError("Please keep the name shorter.") from None


def chosen_topics(form: MultiDict[str, str], topic_choices: Mapping[str, str]) -> tuple[str, ...]:
    """The topics ticked, in the settings' order. Unknown values are dropped, not refused: an
    embedded form made before a topic was retired must keep working."""
    ticked = set(form.getlist("topic"))
    return tuple(tag for tag in topic_choices if tag in ticked)


def parse_preferences(form: MultiDict[str, str], topic_choices: Mapping[str, str]) -> PreferencesForm:
    # The form always sends action=save; without it, a stray empty POST would untick every topic.
    if form.get("action") != "save":
        raise FormError("The preferences form was incomplete; please try again from the page.")
    return PreferencesForm(frozenset(chosen_topics(form, topic_choices)), form.get("paused") == "1")


def parse_link_request(form: MultiDict[str, str]) -> tuple[Address, str]:
    """The "email me my preferences link" form: the address, and the form it takes on the wire."""
    try:
        return parse_address(form.get("email", ""))
    except FormError as exc:
        raise FieldErrors({"email": str(exc)}, form) from None
