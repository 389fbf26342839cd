"""The daily request quota: HubSpot's own figure when its headers give one, else the requests
this worker sent since midnight UTC, and a warning once the configured share is spent."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.test_fake_hubspot import T0, TOKEN, Clock
from worker.crm.hubspot import HubSpotClient
from worker.crm.quota import DailyQuota, DailyUse
from worker.errors import TransientError
from worker.fakes.hubspot import FakeHubSpot


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_without_the_crm_s_figure_requests_are_counted_per_utc_day(clock: Clock) -> None:
    quota = DailyQuota(10, 0.8, clock=clock)
    for _ in range(7):
        quota.sent()
    assert quota.use() == DailyUse(used=7, limit=10, counted=True, warn_at_share=0.8)
    assert not quota.use().warning
    clock.now = T0.replace(hour=23, minute=59)
    quota.sent()
    assert quota.use().warning  # 8 of 10
    clock.advance(minutes=1)  # midnight UTC
    assert quota.use().used == 0


def test_the_warning_is_logged_once_a_day_when_the_share_is_passed(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    quota = DailyQuota(10, 0.5, clock=clock)
    with caplog.at_level(logging.WARNING, logger="worker.crm.quota"):
        for _ in range(9):
            quota.sent()
        clock.advance(days=1)
        for _ in range(5):
            quota.sent()
    warnings = [r.getMessage() for r in caplog.records]
    assert (
        warnings
        == [
            "CRM daily request quota: 50% of today's 10 requests spent (5; counted by this worker "
            "since 00:00 UTC), past the warning share of 50%: at 100% the CRM refuses every "
            "request until its midnight"
        ]
        * 2
    )


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(TOKEN, clock=clock, daily_limit=1_000) as hubspot:
        yield hubspot


def test_hubspot_s_own_daily_figures_are_preferred_to_counting(
    fake: FakeHubSpot, clock: Clock
) -> None:
    fake.spend_daily_requests(600)  # other apps of the portal
    client = HubSpotClient(
        fake.base_url, TOKEN, quota=DailyQuota(250_000, 0.8, clock=clock), page_size=10
    )
    client.list_owners()  # two requests, both answered with the daily headers
    assert client.daily_use() == DailyUse(used=602, limit=1_000, counted=False, warn_at_share=0.8)
    # Search answers carry no rate-limit headers: those requests are added to HubSpot's figure.
    client.search_leads_changed_since(T0 - timedelta(days=1))
    use = client.daily_use()
    assert use is not None and (use.used, use.counted) == (603, False)


def test_a_spent_daily_limit_is_a_429_daily_handed_to_the_caller_at_once(
    fake: FakeHubSpot, clock: Clock
) -> None:
    fake.spend_daily_requests(1_000)
    slept: list[float] = []
    client = HubSpotClient(fake.base_url, TOKEN, max_retries=3, sleep=slept.append)
    with pytest.raises(TransientError, match="You have reached your daily limit") as info:
        client.list_owners()
    assert info.value.retry_after == timedelta(hours=1)  # not worth blocking a worker for
    assert slept == []
