"""What a message that came back is, and whom it names: a :class:`Reading`.

In this order, the first that applies wins:

1. **A complaint**: an ARF report (RFC 5965, ``message/feedback-report``). ``Feedback-Type: not-spam``
   and authentication-failure reports are not complaints.
2. **A delivery report (DSN)**: RFC 3464 ``message/delivery-status``, which Postfix, Microsoft 365,
   Exchange and most MTAs send. Each recipient's ``Status`` and ``Diagnostic-Code`` decide hard, soft
   or blocked through :mod:`newsletter.delivery.outcomes`, not its ``Action``; ``Action: delayed`` is a
   delay. The text around the report is never read for this.
3. **A text bounce** (Exim, qmail, older MTAs): from a mailer daemon, or with ``X-Failed-Recipients``,
   or a bounce subject with the null sender. flufl.bounce finds the failed addresses; an address is
   kept only if the bounce's own text (not the returned copy, not ``>`` quotes) names it. The status
   code and words next to the address decide hard, soft or blocked.
4. **An auto-reply**: ``Auto-Submitted`` (other than ``no``), ``X-Autoreply``, ``Precedence:
   auto_reply``, or a subject such as "Out of Office" or "Automatic reply". Only a message that is not
   a report can be one: MTAs mark their own bounces ``Auto-Submitted: auto-replied`` too.
5. **Anything else**, such as a person writing "please remove me": kept for staff to read; it changes
   nothing.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from flufl.bounce import all_failures

from newsletter.delivery.outcomes import Severity, classify, enhanced_status
from newsletter.feedback import parse, records
from newsletter.store.models import FeedbackKind
from newsletter.subscribers.addresses import one_line

SEVERITY_KIND = {
    Severity.HARD: FeedbackKind.HARD,
    Severity.SOFT: FeedbackKind.SOFT,
    Severity.BLOCKED: FeedbackKind.BLOCKED,
}


class _NoDetectorTracebacks(logging.Filter):
    """flufl.bounce logs a traceback for each detector that fails, then raises; we catch that
    (:func:`_flufl_failures`), so the traceback would only fill the log with untrusted text."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Exception in detector")


logging.getLogger("flufl.bounce").addFilter(_NoDetectorTracebacks())

_DAEMONS = frozenset({"mailer-daemon", "mailer_daemon", "mail-daemon", "postmaster", "mail-delivery-system"})
_DAEMON_NAME = re.compile(r"mail delivery (?:system|subsystem)|postmaster|mailer.daemon", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|returning message|delivery (?:status notification|failure|failed|has failed|problem)"
    r"|mail delivery failed|failure notice|non-?delivery|could not be delivered|delayed mail|delivery delayed"
    r"|^warning: message .* delayed",
    re.IGNORECASE,
)
_DELAY_WORDS = re.compile(
    r"has not yet been delivered|not been delivered yet|will (?:keep|continue) (?:on )?trying|still being retried"
    r"|delivery attempts will continue|this is a warning only|delivery (?:is|has been) delayed",
    re.IGNORECASE,
)
_FAILURE_WORDS = re.compile(
    r"permanent(?:ly)? (?:error|fatal|failure)|i've given up|could not be delivered to one or more|following address\(es\) failed"
    r"|delivery has failed|couldn't be delivered",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"out of (?:the )?office|automatic reply|auto[- ]?reply|auto[- ]?response|autoresponse|away from (?:the|my) office"
    r"|on vacation|abwesenheit|réponse automatique|respuesta automática|resposta automática|risposta automatica",
    re.IGNORECASE,
)
_NOT_COMPLAINTS = frozenset({"not-spam", "auth-failure"})
DIAGNOSTIC_LIMIT = 1000


@dataclass(frozen=True)
class Finding:
    """What a report says about one recipient (named by its final and, if given, original address)."""

    addresses: tuple[str, ...]
    kind: FeedbackKind
    status_code: str | None = None
    diagnostic: str = ""
    reason: str = ""

    @property
    def address(self) -> str:
        return self.addresses[0]


@dataclass
class Reading:
    """A message that came back, read: what it is, about whom, and where to look for the original."""

    key: str  # the idempotency key: the same message always gives the same key
    kind: FeedbackKind  # of the message as a whole (for a report: of its first finding)
    reason: str
    findings: list[Finding] = field(default_factory=list)
    envelope: list[str] = field(default_factory=list)  # addresses it was delivered to: VERP candidates
    message_ids: list[str] = field(default_factory=list)  # of the original message
    subject: str = ""
    sender: str = ""

    @property
    def is_report(self) -> bool:
        """A delivery report or complaint: something that may change a subscriber once matched."""
        return self.kind in records.REPORT_KINDS


def read(raw: bytes) -> Reading:
    """Classify one RFC 5322 message (bytes as received)."""
    message = parse.read_message(raw)
    structure = parse.parts(message)
    reading = Reading(
        key=parse.message_key(message, raw),
        kind=FeedbackKind.OTHER,
        reason="",
        envelope=parse.envelope_addresses(message),
        subject=parse.header(message, "subject")[:200],
        sender=parse.address_of(parse.header(message, "from")),
    )
    # A text bounce and the search for its returned headers both read the message's own words.
    own_words = functools.cache(lambda: parse.report_text(structure))
    if not (
        _complaint(message, structure, reading)
        or _delivery_report(message, structure, reading)
        or _text_bounce(message, own_words, reading)
        or _auto_reply(message, structure, reading)
    ):
        reading.reason = "not a delivery report, complaint or auto-reply: kept for staff to read"
    original = parse.returned_headers(structure)
    if original is None and reading.is_report:
        original = parse.headers_in(own_words().returned)
    _original_references(message, original, reading)
    return reading


def _original_references(message: parse.Message, original: parse.Message | None, reading: Reading) -> None:
    """Message-IDs and envelope senders of the original message, where a report or reply gives them."""
    ids: list[str] = []
    if original is not None:
        ids += [parse.header(original, "message-id")]
        for name in ("return-path", "x-original-from"):
            for address in parse.addresses(original, name):
                if address not in reading.envelope:
                    reading.envelope.append(address)
    ids += parse.header(message, "in-reply-to").split() + parse.header(message, "references").split()
    reading.message_ids = list(dict.fromkeys(i for i in ids if i))


def finish(reading: Reading, findings: list[Finding], fallback: FeedbackKind, reason: str) -> bool:
    """Set the findings, and the reading's kind and reason from the first (else from ``fallback`` and ``reason``)."""
    reading.findings = findings
    reading.kind = findings[0].kind if findings else fallback
    reading.reason = findings[0].reason if findings else reason
    return True


def _complaint(message: parse.Message, structure: parse.Parts, reading: Reading) -> bool:
    part = parse.find_part(structure, "message/feedback-report")
    if part is None:
        return False
    fields = parse.field_blocks(part)
    report = fields[0] if fields else parse.Message()
    feedback_type = parse.header(report, "feedback-type").lower() or "abuse"
    if feedback_type in _NOT_COMPLAINTS:
        reading.kind = FeedbackKind.OTHER
        reading.reason = f"a feedback report of type {feedback_type!r}, not a complaint"
        return True
    for address in parse.addresses(report, "original-mail-from"):
        reading.envelope.append(address)
    reason = f"a complaint (ARF Feedback-Type: {feedback_type})"
    recipients = parse.addresses(report, "original-rcpt-to")
    findings = [Finding((a,), FeedbackKind.COMPLAINT, reason=reason) for a in recipients]
    return finish(reading, findings, FeedbackKind.COMPLAINT, reason)


def _delivery_report(message: parse.Message, structure: parse.Parts, reading: Reading) -> bool:
    part = parse.find_part(structure, "message/delivery-status")
    if part is None:
        return False
    failed: list[Finding] = []
    delayed: list[Finding] = []
    other_actions: set[str] = set()
    blocks = parse.field_blocks(part)
    for block in blocks[1:] or blocks:
        names = (parse.header(block, "final-recipient"), parse.header(block, "original-recipient"))
        found = tuple(dict.fromkeys(a for a in map(parse.address_of, names) if "@" in a))
        action = parse.header(block, "action").lower()
        status = parse.header(block, "status")
        diagnostic = parse.header(block, "diagnostic-code")[:DIAGNOSTIC_LIMIT]
        if not found:
            continue
        if action.startswith("delayed"):
            reason = f"delivery report, Action: delayed, Status: {status or 'none'}; still being tried"
            delayed.append(Finding(found, FeedbackKind.DELAYED, enhanced_status(status), diagnostic, reason))
        elif action.startswith(("fail", "error")):
            outcome = classify(status=status, diagnostic=diagnostic)
            reason = f"delivery report, Action: {action}; {outcome.reason}"
            failed.append(Finding(found, SEVERITY_KIND[outcome.severity], outcome.status, diagnostic, reason))
        else:
            other_actions.add(action or "none")
    if failed or delayed:
        return finish(reading, failed or delayed, FeedbackKind.OTHER, "")
    actions = ", ".join(sorted(other_actions)) or "none"
    reading.kind = FeedbackKind.OTHER
    reading.reason = f"a delivery report without failures (Action: {actions})"
    return True


def _is_text_bounce(message: parse.Message) -> bool:
    if message.get("x-failed-recipients") is not None:
        return True
    sender = parse.header(message, "from")
    local = parse.address_of(sender).partition("@")[0].lower()
    if local in _DAEMONS or _DAEMON_NAME.search(sender.partition("<")[0]):
        return True
    null_sender = parse.header(message, "return-path").replace(" ", "") == "<>"
    return null_sender and bool(_BOUNCE_SUBJECT.search(parse.header(message, "subject")))


def _text_bounce(message: parse.Message, own_words: Callable[[], parse.ReportText], reading: Reading) -> bool:
    if not _is_text_bounce(message):
        return False
    own = own_words().text
    lowered = own.lower()
    named = _flufl_failures(message) | set(parse.addresses(message, "x-failed-recipients"))
    # Only addresses the bounce's own words name: never one that appears in quoted or returned text.
    failed = sorted(a for a in named if a.lower() in lowered or a in parse.header(message, "x-failed-recipients"))
    subject = parse.header(message, "subject")
    delayed = not _FAILURE_WORDS.search(own) and bool(_DELAY_WORDS.search(own) or re.search("delay", subject, re.I))
    findings = []
    for address in failed:
        diagnostic = _diagnostic_near(own, address)
        if delayed:
            reason = "a delay warning; still being tried"
            findings.append(Finding((address,), FeedbackKind.DELAYED, enhanced_status(diagnostic), diagnostic, reason))
            continue
        outcome = classify(diagnostic=diagnostic)
        kind = SEVERITY_KIND[outcome.severity]
        findings.append(Finding((address,), kind, outcome.status, diagnostic, f"text bounce; {outcome.reason}"))
    fallback = FeedbackKind.DELAYED if delayed else FeedbackKind.SOFT
    return finish(reading, findings, fallback, "a bounce that names no address it failed for")


def _flufl_failures(message: parse.Message) -> set[str]:
    """The addresses flufl.bounce's detectors say failed. They are heuristics over untrusted text:
    some raise on a malformed message (one without From:, say), which then names nobody this way,
    and some take a stray word or control character for an address, which is dropped."""
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001 - a library's bug on one message must not lose it
        return set()
    return {found for a in temporary | permanent if parse.is_address(found := a.decode("ascii", "replace"))}


def _diagnostic_near(text: str, address: str) -> str:
    """The lines from the one naming the address to the next blank line: what the bounce says about it."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if address.lower() in line.lower():
            block: list[str] = []
            for following in lines[index : index + 12]:
                if block and not following.strip():
                    break
                block.append(following.strip())
            return one_line(" ".join(block))[:DIAGNOSTIC_LIMIT]
    return one_line(text)[:DIAGNOSTIC_LIMIT]


def _auto_reply(message: parse.Message, structure: parse.Parts, reading: Reading) -> bool:
    auto_submitted = parse.header(message, "auto-submitted").lower()
    signs = []
    if auto_submitted and auto_submitted != "no":
        signs.append(f"Auto-Submitted: {auto_submitted}")
    for name in ("x-autoreply", "x-autorespond", "x-auto-reply"):
        if message.get(name) is not None:
            signs.append(name.title())
    if parse.header(message, "precedence").lower() == "auto_reply":
        signs.append("Precedence: auto_reply")
    subject = _AUTO_SUBJECT.search(parse.header(message, "subject"))
    if subject:
        signs.append(f"subject says {subject[0]!r}")
    if not signs:
        return False
    reading.kind = FeedbackKind.AUTO_REPLY
    reading.reason = "an auto-reply (" + ", ".join(signs) + "); never counted as a bounce"
    return True
