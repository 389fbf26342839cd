"""The config file as a running worker sees it: reloaded when it changes on disk, and when the
new file is invalid, refused — the last good config keeps running, the error is logged by key
path, and ``sla-worker health`` says "config invalid since …" until the file is fixed. This is
Alertmanager's reload: a bad edit never stops enforcement, and never goes unnoticed.

A stage calls :meth:`ConfigSource.refresh` at its start (``worker.pipeline.stages``), so each
run judges, sends and recycles under the file as it is now; beat follows the file the same way
(``worker.beat``). A file that is invalid when the process starts is still an error at start.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path

from worker.config import Agreement, load_agreement
from worker.errors import ConfigError

log = logging.getLogger(__name__)

#: What changes when the file is replaced or edited (an atomic rename changes the inode).
_Stamp = tuple[int, int, int] | None


def _stamp(path: Path) -> _Stamp:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class ConfigSource:
    """The current :class:`Agreement` read from ``path``, refreshed on demand."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._stamp = _stamp(self.path)
        self.agreement: Agreement = load_agreement(self.path)
        #: The error of the file on disk when it is invalid (the agreement is the last good).
        self.error: str | None = None
        #: When the file on disk was first seen invalid (None while it is valid).
        self.invalid_since: datetime | None = None

    def refresh(self, now: datetime) -> bool:
        """Read the file again if it changed on disk; True when a different valid config was
        taken. An invalid file is refused and remembered (:attr:`error`, :attr:`invalid_since`)."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            agreement = load_agreement(self.path)
        except ConfigError as e:
            if str(e) != self.error:
                log.error(
                    "%s changed but is invalid; the last good config keeps running until it "
                    "is fixed:\n%s",
                    self.path,
                    e,
                )
            self.error = str(e)
            self.invalid_since = self.invalid_since or now
            return False
        if self.error is not None:
            log.warning("%s is valid again", self.path)
        self.error = None
        self.invalid_since = None
        if agreement.config == self.agreement.config:
            return False  # edited comments or layout: the same agreement
        log.warning("%s changed: the new config applies from this run on", self.path)
        self.agreement = agreement
        return True
