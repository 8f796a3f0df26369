"""The preferences page: topics (tags from the form's topic choices) and pausing."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy.orm import Session

from .. import subscribers
from ..models import EventKind, Subscriber, SubscriberTag, utcnow
from .forms import PreferencesForm

ACTOR = "web"


def topics_of(subscriber: Subscriber, topic_choices: Collection[str]) -> set[str]:
    return {t.tag for t in subscriber.tags if t.tag in topic_choices}


def update_preferences(
    session: Session, subscriber: Subscriber, form: PreferencesForm, topic_choices: Collection[str]
) -> dict[str, Any]:
    """Apply the form; returns what changed (empty: nothing, and nothing is logged).

    Only tags among ``topic_choices`` are touched: a tag staff gave (say, from an import) is not the
    subscriber's to see or remove here.
    """
    current = topics_of(subscriber, topic_choices)
    added = sorted(form.topics - current)
    removed = sorted(current - form.topics)
    for tag in subscriber.tags[:]:
        if tag.tag in removed:
            subscriber.tags.remove(tag)
    for tag in added:
        subscriber.tags.append(SubscriberTag(tag=tag))
    changes: dict[str, Any] = {}
    if added:
        changes["topics_added"] = added
    if removed:
        changes["topics_removed"] = removed
    if form.paused != subscriber.paused:
        subscriber.paused = form.paused
        changes["paused"] = form.paused
    if changes:
        subscriber.updated_at = utcnow()
        subscribers.log_event(session, subscriber, EventKind.PREFERENCES, ACTOR, **changes)
    return changes
