"""Celery beat, following the config file: when ``schedules`` (or recycle's or marketing's
schedule) change on disk, the running beat takes the new schedule within ``CHECK_EVERY``
seconds, without a restart; an invalid file is refused (logged by key path) and the running
schedule kept. ``celery_app`` names this class as ``beat_scheduler``."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from celery.beat import PersistentScheduler

from worker.celery_app import beat_schedule, current_settings
from worker.config_source import ConfigSource

log = logging.getLogger(__name__)

#: Seconds between looks at the config file (a stat call; the file is read only when changed).
CHECK_EVERY = 10.0


class ReloadingScheduler(PersistentScheduler):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._source = ConfigSource(current_settings().config_path)
        self._next_look = time.monotonic() + CHECK_EVERY
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if time.monotonic() >= self._next_look:
            self._next_look = time.monotonic() + CHECK_EVERY
            self.follow_config()
        interval: float = super().tick(*args, **kwargs)
        return min(interval, CHECK_EVERY)

    def follow_config(self) -> bool:
        """Take the schedule from the config file if it changed and is valid."""
        if not self._source.refresh(datetime.now(UTC)):
            return False
        schedule = beat_schedule(self._source.agreement.config)
        self.merge_inplace(schedule)
        self.app.conf.beat_schedule = schedule
        log.warning("beat: schedule reloaded from %s", self._source.path)
        return True
