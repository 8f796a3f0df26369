"""What every command shares: the resolved settings and the store, built once per invocation."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsletter.config import ResolvedSettings, Settings, load_settings
from newsletter.store.engine import Store, open_store


@dataclass
class App:
    """Collaborators for a command; tests may build one with ready-made settings."""

    project_dir: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _store: Store | None = None

    @functools.cached_property
    def resolved(self) -> ResolvedSettings:
        return load_settings(self.project_dir, overrides=self.overrides)

    @property
    def settings(self) -> Settings:
        return self.resolved.settings

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.resolved_database_url)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None
