"""The request budget: sliding windows in this process and shared through Redis, the client
spending the right bucket, and a sync that stays inside the fake's limits without a 429."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.test_fake_hubspot import T0, TOKEN
from worker.crm.hubspot import HubSpotClient
from worker.errors import TransientError
from worker.fakes.hubspot import FakeHubSpot
from worker.pipeline.sync import sync
from worker.ratelimit import (
    Budget,
    LocalRateLimiter,
    RedisRateLimiter,
    make_rate_limiter,
)
from worker.store.models import Touch

SEARCH = {"search": Budget(5, timedelta(seconds=1))}


class VirtualClock:
    """Sleeping advances the clock: nothing in these tests waits for real."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def _sent_at(
    limiter: LocalRateLimiter | RedisRateLimiter, clock: VirtualClock, n: int
) -> list[float]:
    times = []
    for _ in range(n):
        limiter.acquire("search")
        times.append((clock.now - T0).total_seconds())
    return times


def _max_in_any_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


def test_a_full_window_waits_until_its_oldest_request_is_a_window_old() -> None:
    clock = VirtualClock()
    limiter = LocalRateLimiter(SEARCH, clock=clock, sleep=clock.sleep)
    times = _sent_at(limiter, clock, 6)
    assert times[:5] == [0.0] * 5
    assert 1.0 < times[5] <= 1.03  # one second, plus the small slack for network delay


def test_the_budget_is_used_almost_fully_and_never_exceeded() -> None:
    clock = VirtualClock()
    limiter = LocalRateLimiter(SEARCH, clock=clock, sleep=clock.sleep)
    times = _sent_at(limiter, clock, 100)
    assert _max_in_any_window(times, 1.0) <= 5
    assert 99 / times[-1] / 5 >= 0.95


def test_a_bucket_without_a_budget_never_waits() -> None:
    clock = VirtualClock()
    limiter = LocalRateLimiter(SEARCH, clock=clock, sleep=clock.sleep)
    for _ in range(50):
        limiter.acquire("burst")
    assert clock.slept == []


@pytest.mark.redis
def test_processes_sharing_redis_share_one_budget(redis_url: str) -> None:
    clock = VirtualClock()
    first = RedisRateLimiter(redis_url, SEARCH, prefix="t1", clock=clock, sleep=clock.sleep)
    second = RedisRateLimiter(redis_url, SEARCH, prefix="t1", clock=clock, sleep=clock.sleep)
    times = []
    for limiter in [first, second] * 10:
        limiter.acquire("search")
        times.append((clock.now - T0).total_seconds())
    assert _max_in_any_window(times, 1.0) <= 5
    assert times[:5] == [0.0] * 5 and times[5] > 1.0
    assert "redis://" not in repr(first)  # the URL may carry a password


@pytest.mark.redis
def test_the_limiter_is_shared_through_redis_only_when_the_broker_is_redis(
    redis_url: str,
) -> None:
    assert isinstance(make_rate_limiter(redis_url, SEARCH), RedisRateLimiter)
    assert isinstance(make_rate_limiter("sqla+sqlite:///broker.sqlite", SEARCH), LocalRateLimiter)
    assert isinstance(make_rate_limiter(None, SEARCH), LocalRateLimiter)


class RecordingLimiter:
    def __init__(self) -> None:
        self.buckets: list[str] = []

    def acquire(self, bucket: str) -> None:
        self.buckets.append(bucket)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def fake(clock: VirtualClock) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(TOKEN, clock=clock, search_rate_per_s=5, burst_per_10s=4) as hubspot:
        yield hubspot


def test_the_client_spends_search_and_burst_budgets_per_attempt(fake: FakeHubSpot) -> None:
    limiter = RecordingLimiter()
    client = HubSpotClient(
        fake.base_url, TOKEN, limiter=limiter, max_retries=1, sleep=lambda s: None
    )
    fake.upsert_contact(firstname="Ann")
    fake.fail_next(1, 502, path_contains="/search")
    client.search_leads_changed_since(T0 - timedelta(days=1))
    client.list_owners()
    assert limiter.buckets == ["search", "search", "burst", "burst"]


def test_a_sync_within_the_budget_gets_no_429(
    fake: FakeHubSpot, clock: VirtualClock, sessions: sessionmaker[Session]
) -> None:
    for i in range(300):
        fake.upsert_contact(firstname=f"n{i}")
        clock.sleep(0.01)
    for i in range(40):
        for kind in ("calls", "emails"):
            fake.add_engagement(kind, {"hs_timestamp": "2026-11-20T09:00:00Z"}, [str(1001 + i)])
    limiter = LocalRateLimiter(
        {"search": Budget(5, timedelta(seconds=1)), "burst": Budget(4, timedelta(seconds=10))},
        clock=clock,
        sleep=clock.sleep,
    )
    client = HubSpotClient(fake.base_url, TOKEN, page_size=10, limiter=limiter, sleep=clock.sleep)
    sync(
        client,
        sessions,
        clock.now,
        touch_kinds=("call", "email"),
        cursor_prefix="hubspot",
        overlap=timedelta(minutes=5),
    )
    with sessions() as session:
        stored = session.scalar(select(func.count()).select_from(Touch))
    assert stored == 80
    assert fake.counts["rate_limited"] == 0
    assert fake.counts["other"] > 4  # more than one ten-second window of the burst budget


def test_a_429_pauses_the_bucket_for_everyone_sharing_it() -> None:
    clock = VirtualClock()
    limiter = LocalRateLimiter(SEARCH, clock=clock, sleep=clock.sleep)
    limiter.pause("search", timedelta(seconds=10))
    limiter.pause("search", timedelta(seconds=2))  # an earlier end never shortens a pause
    limiter.acquire("search")
    assert (clock.now - T0).total_seconds() == 10.0


@pytest.mark.redis
def test_a_429_seen_by_one_process_pauses_the_others(redis_url: str) -> None:
    clock = VirtualClock()
    told = RedisRateLimiter(redis_url, SEARCH, prefix="t2", clock=clock, sleep=clock.sleep)
    other = RedisRateLimiter(redis_url, SEARCH, prefix="t2", clock=clock, sleep=clock.sleep)
    told.pause("search", timedelta(seconds=10))
    other.acquire("search")
    assert (clock.now - T0).total_seconds() == 10.0


def test_the_client_pauses_the_shared_budget_on_a_429() -> None:
    clock = VirtualClock()
    limiter = LocalRateLimiter(
        {"burst": Budget(100, timedelta(seconds=10))}, clock=clock, sleep=clock.sleep
    )
    with FakeHubSpot(TOKEN, clock=clock) as fake:
        client = HubSpotClient(fake.base_url, TOKEN, limiter=limiter)
        fake.fail_next(
            1,
            429,
            {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "policyName": "TEN_SECONDLY_ROLLING",
            },
            path_contains="/owners",
            headers={"Retry-After": "7"},
        )
        with pytest.raises(TransientError):
            client.list_owners()
        client.list_owners()  # waits out the pause first
    assert (clock.now - T0).total_seconds() >= 7.0
