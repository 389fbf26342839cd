"""Request budgets shared by every process that talks to one remote API: sliding-window limiters.

A limiter answers one question before each request — "may I send now, and if not, how long must
I wait?" — for a named bucket (HubSpot: ``burst`` for the ten-secondly limit, ``search`` for the
search endpoint's own per-second limit). With a Redis URL the window lives in Redis, updated
atomically by one Lua script, so several workers on several machines share one budget; without
one (the embedded default setup) it lives in this process. Time comes from an injected clock and
waiting goes through an injected sleep, so tests and benchmarks never wait for real. It never
sends a request itself and knows nothing of the API it guards.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from worker import metrics

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

#: A window is held this much longer than the remote API's own: a request is stamped here when
#: it leaves, and HubSpot counts it when it arrives, so two requests a whole window apart on our
#: clock may be a little less than a window apart on theirs. 2 % keeps 98 % of the budget.
WINDOW_SLACK = 0.02


@dataclass(frozen=True)
class Budget:
    """At most ``requests`` within any rolling ``window`` (HubSpot counts rolling windows)."""

    requests: int
    window: timedelta

    def __post_init__(self) -> None:
        if self.requests < 1 or self.window <= timedelta(0):
            raise ValueError("a budget needs at least one request per positive window")


class RateLimiter(Protocol):
    def acquire(self, bucket: str) -> None:
        """Return once one request may be sent in ``bucket`` (waiting if need be); a bucket
        without a budget is unlimited."""

    def pause(self, bucket: str, wait: timedelta) -> None:
        """The remote API said "too many" (a 429 with Retry-After): nobody sharing this
        limiter sends in ``bucket`` for ``wait``, not just the process that was told."""


class Unlimited:
    """No budget at all (clients built without a limiter, tests of other things)."""

    def acquire(self, bucket: str) -> None:
        return None

    def pause(self, bucket: str, wait: timedelta) -> None:
        return None


class _WindowLimiter:
    """The waiting loop shared by both limiters; subclasses implement one atomic attempt."""

    def __init__(
        self,
        budgets: Mapping[str, Budget],
        *,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None],
    ) -> None:
        self.budgets = dict(budgets)
        self._clock = clock
        self._sleep = sleep
        for name, budget in self.budgets.items():
            metrics.budget_set(name, budget.requests / budget.window.total_seconds())

    def acquire(self, bucket: str) -> None:
        budget = self.budgets.get(bucket)
        if budget is None:
            return
        window_us = int(budget.window * (1 + WINDOW_SLACK) / _US)
        waited_us = 0
        while True:
            now_us = self._now_us()
            paused_us = self._paused_until(bucket) - now_us
            if paused_us > 0:
                waited_us += paused_us
                self._sleep(paused_us / 1_000_000)
                continue
            wait_us = self._try(bucket, budget.requests, window_us, now_us)
            if wait_us <= 0:
                metrics.budget_spent(bucket, waited_us * _US)
                return
            waited_us += wait_us
            self._sleep(wait_us / 1_000_000)

    def pause(self, bucket: str, wait: timedelta) -> None:
        if bucket in self.budgets and wait > timedelta(0):
            self._pause_until(bucket, self._now_us() + wait // _US)

    def _now_us(self) -> int:
        return (self._clock() - _EPOCH) // _US

    def _try(self, bucket: str, limit: int, window_us: int, now_us: int) -> int:
        """Take a slot at ``now_us`` and return 0, or return the microseconds until one frees."""
        raise NotImplementedError

    def _paused_until(self, bucket: str) -> int:
        raise NotImplementedError

    def _pause_until(self, bucket: str, until_us: int) -> None:
        """Record a pause; a later end wins over an earlier one."""
        raise NotImplementedError


class LocalRateLimiter(_WindowLimiter):
    """A sliding-window log per bucket in this process (thread-safe, not shared)."""

    def __init__(
        self,
        budgets: Mapping[str, Budget],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(budgets, clock=clock, sleep=sleep)
        self._lock = threading.Lock()
        self._sent: dict[str, deque[int]] = {name: deque() for name in self.budgets}
        self._paused: dict[str, int] = {}

    def _paused_until(self, bucket: str) -> int:
        with self._lock:
            return self._paused.get(bucket, 0)

    def _pause_until(self, bucket: str, until_us: int) -> None:
        with self._lock:
            self._paused[bucket] = max(self._paused.get(bucket, 0), until_us)

    def _try(self, bucket: str, limit: int, window_us: int, now_us: int) -> int:
        with self._lock:
            sent = self._sent[bucket]
            # Same rule as HubSpot's rolling window (and the fake's): a request exactly one
            # window old no longer counts.
            while sent and sent[0] <= now_us - window_us:
                sent.popleft()
            if len(sent) < limit:
                sent.append(now_us)
                return 0
            return sent[0] + window_us - now_us


# KEYS[1]: the bucket's sorted set of send instants (µs); ARGV: now, window, limit, a unique
# member. Integers in µs stay exact in Lua's doubles for the next few centuries.
_SLIDING_WINDOW_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tonumber(oldest[2]) + window - now
"""


# KEYS[1]: the bucket's pause; ARGV[1]: its end (µs). Keeps the later end; expires itself.
_PAUSE_LUA = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', 3600000)
end
return 0
"""


class RedisRateLimiter(_WindowLimiter):
    """The same sliding window in Redis, shared by every process using the same ``prefix``.

    The instants come from the callers' clocks (not Redis' TIME) so that a virtual clock drives
    it in tests; hosts are expected to run NTP, and WINDOW_SLACK absorbs small skews.
    """

    def __init__(
        self,
        redis_url: str,
        budgets: Mapping[str, Budget],
        *,
        prefix: str = "sla-worker:ratelimit",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import redis

        super().__init__(budgets, clock=clock, sleep=sleep)
        self._redis: Any = redis.Redis.from_url(redis_url, socket_timeout=5)
        self._script = self._redis.register_script(_SLIDING_WINDOW_LUA)
        self._pause_script = self._redis.register_script(_PAUSE_LUA)
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"RedisRateLimiter(prefix={self._prefix!r})"  # the URL may hold a password

    def _try(self, bucket: str, limit: int, window_us: int, now_us: int) -> int:
        member = f"{now_us}:{uuid.uuid4().hex}"
        key = f"{self._prefix}:{bucket}"
        return int(self._script(keys=[key], args=[now_us, window_us, limit, member]))

    def _paused_until(self, bucket: str) -> int:
        value = self._redis.get(f"{self._prefix}:{bucket}:paused-until")
        return int(value) if value else 0

    def _pause_until(self, bucket: str, until_us: int) -> None:
        self._pause_script(keys=[f"{self._prefix}:{bucket}:paused-until"], args=[until_us])


def make_rate_limiter(
    broker_url: str | None,
    budgets: Mapping[str, Budget],
    *,
    prefix: str = "sla-worker:ratelimit",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> RateLimiter:
    """Shared through Redis when the broker is Redis (production), else in this process
    (the embedded setup runs one worker process, so nothing else spends the budget)."""
    if broker_url and broker_url.startswith(("redis://", "rediss://")):
        return RedisRateLimiter(broker_url, budgets, prefix=prefix, clock=clock, sleep=sleep)
    return LocalRateLimiter(budgets, clock=clock, sleep=sleep)
