"""Benchmark: sync 100,000 contacts from the fake HubSpot at a realistic rate limit.

The fake enforces HubSpot's limits (search 5 per second, 100 requests per rolling 10 s) on a
virtual clock that the worker's rate limiter and retry sleeps share: waiting advances the clock
instead of the wall, so the run takes seconds, not the ~20 minutes HubSpot would. It prints the
share of the allowed search rate the sync actually used (the bar is >= 0.90), how often the
fake still had to answer 429, and how many pages of contacts are missing or stale in the store.

    .venv/bin/python benchmarks/sync.py [--contacts 100000] [--database-url sqlite:///...]

The last line is machine-readable: ``contacts=100000 rate_share=0.98 lost_pages=0 ...``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from worker.crm.hubspot import HubSpotClient
from worker.fakes.hubspot import FakeHubSpot
from worker.pipeline.sync import sync
from worker.ratelimit import Budget, LocalRateLimiter
from worker.store.db import make_engine, make_sessionmaker, upgrade
from worker.store.models import Lead

TOKEN = "benchmark-token"
SEARCH_PER_S = 5
BURST_PER_10S = 100
PAGE = 200


class VirtualClock:
    """The one clock of the run: the fake's rate windows, the limiter and retry sleeps."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    clock = VirtualClock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    fake = FakeHubSpot(
        TOKEN, clock=clock, search_rate_per_s=SEARCH_PER_S, burst_per_10s=BURST_PER_10S
    )
    fake.add_owner("101", "rep@example.com", "Rita", "Rep")
    for i in range(args.contacts):
        fake.upsert_contact(firstname=f"c{i}", hubspot_owner_id="101", hs_lead_status="NEW")
        if i % 3 == 0:
            clock.sleep(0.001)
    clock.sleep(60)
    search_at: list[datetime] = []
    fake.during_search(lambda kind, body: search_at.append(clock()))

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        limiter = LocalRateLimiter(
            {
                "burst": Budget(BURST_PER_10S, timedelta(seconds=10)),
                "search": Budget(SEARCH_PER_S, timedelta(seconds=1)),
            },
            clock=clock,
            sleep=clock.sleep,
        )
        fake.start()
        try:
            client = HubSpotClient(
                fake.base_url,
                TOKEN,
                page_size=PAGE,
                max_retries=5,
                sleep=clock.sleep,
                limiter=limiter,
            )
            wall = time.perf_counter()
            summary = sync(
                client,
                sessions,
                clock(),
                touch_kinds=(),
                cursor_prefix="hubspot",
                overlap=timedelta(minutes=5),
            )
            wall = time.perf_counter() - wall
        finally:
            fake.stop()
        with sessions() as session:
            stored: dict[str, Any] = {
                row.id: row for row in session.execute(select(Lead.id, Lead.first_name))
            }
        engine.dispose()

    expected = fake.contacts()
    lost = {
        index // PAGE
        for index, (contact_id, props) in enumerate(sorted(expected.items()))
        if contact_id not in stored or stored[contact_id].first_name != props["firstname"]
    }
    searches = len(search_at)
    span = (search_at[-1] - search_at[0]).total_seconds() if searches > 1 else 0.0
    # Requests sent per second between the first and last search, over the allowed rate.
    rate_share = (searches - 1) / span / SEARCH_PER_S if span else 0.0
    print(f"sync: {summary.as_dict()}")
    print(
        f"searches={searches} over {span:.1f}s of virtual time, "
        f"other requests={fake.counts['other']}, answered 429={fake.counts['rate_limited']}, "
        f"wall time {wall:.1f}s"
    )
    print(
        f"contacts={len(stored)} rate_share={rate_share:.2f} lost_pages={len(lost)} "
        f"throttled={fake.counts['rate_limited']} wall_s={wall:.0f}"
    )
    # A figure over a store that lost contacts would be meaningless: say so in the exit code.
    return 0 if not lost and len(stored) == len(expected) else 1


if __name__ == "__main__":
    sys.exit(main())
