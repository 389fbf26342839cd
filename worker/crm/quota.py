"""The CRM's daily request quota: how much of today's is spent, and a warning once a share is.

HubSpot refuses every request of a portal for the rest of the day once its daily limit is spent
(429 ``policyName: DAILY``; usage guidelines, see ../shared/API-FACTS.md), so the sync would stop
with no other sign. Where the CRM says how much is left (HubSpot: ``X-HubSpot-RateLimit-Daily``
and ``-Daily-Remaining`` on private-app responses) its figure is taken, plus the requests sent
since it said so (search responses carry no such headers); without it, the requests this
process sent since midnight UTC are counted against the configured limit. It only observes: it
never delays or refuses a request, and it knows nothing of the API it watches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DailyUse:
    """Requests spent today out of ``limit``; ``counted``: by this process since midnight UTC
    (the CRM did not say), else the CRM's own figure (every process and app of the portal)."""

    used: int
    limit: int
    counted: bool
    warn_at_share: float

    @property
    def share(self) -> float:
        return self.used / self.limit

    @property
    def warning(self) -> bool:
        return self.share >= self.warn_at_share

    def describe(self) -> str:
        source = "counted by this worker since 00:00 UTC" if self.counted else "the CRM's count"
        text = (
            f"{self.share:.0%} of today's {self.limit:,} requests spent ({self.used:,}; {source})"
        )
        if self.warning:
            text += (
                f", past the warning share of {self.warn_at_share:.0%}: at 100% the CRM refuses "
                "every request until its midnight"
            )
        return text


class DailyQuota:
    """Thread-safe: the sync reads the next page on another thread while it stores this one."""

    def __init__(
        self,
        limit: int,
        warn_at_share: float,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if limit < 1 or not 0 < warn_at_share <= 1:
            raise ValueError("a daily quota needs a positive limit and a share in (0, 1]")
        self._limit = limit
        self._warn_at_share = warn_at_share
        self._clock = clock
        self._lock = threading.Lock()
        self._day: date | None = None
        self._sent = 0  # today, by this process
        #: The CRM's last word today: (its limit, what it said was spent, our count then).
        self._told: tuple[int, int, int] | None = None
        self._warned = False

    def sent(self) -> None:
        """One request is about to leave (every attempt counts, refused ones too)."""
        with self._lock:
            self._roll_over()
            self._sent += 1
            self._maybe_warn()

    def told(self, limit: int, remaining: int) -> None:
        """The CRM's own figures for today, from a response that carried them."""
        if limit < 1:
            return
        with self._lock:
            self._roll_over()
            self._told = (limit, max(0, limit - remaining), self._sent)
            self._maybe_warn()

    def use(self) -> DailyUse:
        with self._lock:
            self._roll_over()
            return self._use()

    def _use(self) -> DailyUse:
        if self._told is None:
            return DailyUse(self._sent, self._limit, True, self._warn_at_share)
        limit, spent, sent_then = self._told
        return DailyUse(spent + self._sent - sent_then, limit, False, self._warn_at_share)

    def _roll_over(self) -> None:
        # Per UTC day: HubSpot's day ends at midnight in the portal's time zone, which the API
        # does not say; its next headers correct the figure within a request or two.
        today = self._clock().astimezone(UTC).date()
        if today != self._day:
            self._day, self._sent, self._told, self._warned = today, 0, None, False

    def _maybe_warn(self) -> None:
        use = self._use()
        if use.warning and not self._warned:
            self._warned = True
            log.warning("CRM daily request quota: %s", use.describe())
