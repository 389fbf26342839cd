"""Benchmark: sync 100,000 contacts from the fake HubSpot at its rate limit, over a slow network.

The fake enforces HubSpot's limits (search 5 per second, 100 requests per rolling 10 s) on a
virtual clock that the worker's rate limiter, retry sleeps, network latency and page storing
share, so the run takes seconds, not the ~20 minutes HubSpot would. Each request takes
``--latency-ms`` (half on the way there, half back: HubSpot answers in 150-300 ms) and storing
each page ``--page-cost-ms`` (storing 200 contacts took a median ~100 ms in PostgreSQL here, 66 ms
in SQLite). Virtual time moves only when every thread of the run is waiting — on the clock or
on another thread — and then jumps to the earliest wake-up, so a request in flight on the
thread that reads ahead overlaps the storing of the page before as it does for real: two
requests in flight at once take one latency, not two. The client is built as
``make_crm_client`` builds it (200 records a page, 3 retries). It prints the share of the allowed
search rate the sync used (the bar is >= 0.95 at 200 ms), how often the fake still had to answer
429, and how many pages of contacts are missing or stale in the store. ``--calls N`` adds N
calls (one contact each) and syncs them too: their leads are read 1,000 calls a request.

    .venv/bin/python benchmarks/sync.py [--contacts 100000] [--calls 0] [--latency-ms 200]
        [--page-cost-ms 100] [--database-url sqlite:///...]

The last line is machine-readable: ``contacts=100000 rate_share=0.98 lost_pages=0 ...``.
"""

from __future__ import annotations

import argparse
import heapq
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import requests
from sqlalchemy import select

from worker.crm.hubspot import HubSpotClient
from worker.fakes.hubspot import FakeHubSpot
from worker.pipeline.sync import sync
from worker.ratelimit import Budget, LocalRateLimiter
from worker.store.db import make_engine, make_sessionmaker, upgrade
from worker.store.models import Lead, TouchLead

TOKEN = "benchmark-token"
SEARCH_PER_S = 5
BURST_PER_10S = 100
PAGE = 200  # make_crm_client's page size (search's maximum)
MAX_RETRIES = 3  # make_crm_client's default

P = ParamSpec("P")
R = TypeVar("R")


class VirtualClock:
    """Discrete-event time for the threads of one run.

    A thread taking part is running (its real work takes no virtual time), asleep on the clock
    until an instant, or waiting for another thread's result. Time moves only when none is
    running: it jumps to the earliest wake-up and wakes that sleeper. The main thread takes
    part from the start; a task given to :class:`VirtualExecutor` from its submission to its
    end. Threads that only read the time (the fake's server threads) do not take part.
    """

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._cond = threading.Condition()
        self._running = 1  # the main thread
        self._sleepers: list[tuple[datetime, int]] = []
        self._woken: set[int] = set()
        self._sequence = 0
        self._waiting: dict[int, int] = {}  # id(future) -> threads waiting for it

    def __call__(self) -> datetime:
        with self._cond:
            return self.now

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._cond:
            self._sequence += 1
            me = self._sequence
            heapq.heappush(self._sleepers, (self.now + timedelta(seconds=seconds), me))
            self._running -= 1
            self._advance()
            while me not in self._woken:
                self._cond.wait()
            self._woken.discard(me)

    def started(self) -> None:
        with self._cond:
            self._running += 1

    def wait_for(self, future: Future[Any]) -> None:
        """Block until ``future`` is done, not running meanwhile."""
        with self._cond:
            if future.done():
                return
            self._waiting[id(future)] = self._waiting.get(id(future), 0) + 1
            self._running -= 1
            self._advance()
            while not future.done():
                self._cond.wait()

    def ended(self, future: Future[R], settle: Callable[[], None]) -> None:
        """A task ends: ``settle`` completes its future; whoever waited for it runs again."""
        with self._cond:
            self._running += self._waiting.pop(id(future), 0)
            settle()
            self._running -= 1
            self._advance()
            self._cond.notify_all()

    def _advance(self) -> None:
        if self._running == 0 and self._sleepers:
            wake, sleeper = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            self._woken.add(sleeper)
            self._running += 1
            self._cond.notify_all()


class _VirtualFuture(Future[R]):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def result(self, timeout: float | None = None) -> R:
        self._clock.wait_for(self)
        return super().result(timeout)


class VirtualExecutor(Executor):
    """One thread, as the sync's own, whose tasks take part in the virtual clock."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-read-ahead")

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        future: _VirtualFuture[R] = _VirtualFuture(self._clock)
        self._clock.started()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                self._clock.ended(future, lambda: None)
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:
                failure = error
                self._clock.ended(future, lambda: future.set_exception(failure))
            else:
                self._clock.ended(future, lambda: future.set_result(result))

        self._pool.submit(run)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


class SlowNetwork(requests.Session):
    """Every request takes ``latency`` of virtual time, half before it reaches the fake."""

    def __init__(self, clock: VirtualClock, latency: timedelta) -> None:
        super().__init__()
        self._clock = clock
        self._half = latency.total_seconds() / 2

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        self._clock.sleep(self._half)
        response = super().request(*args, **kwargs)
        self._clock.sleep(self._half)
        return response


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--page-cost-ms", type=float, default=100.0)
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
    for i in range(args.calls):
        contact = str(1001 + i % args.contacts)  # the fake numbers records from 1001
        fake.add_engagement("calls", {"hs_timestamp": "2026-11-20T08:00:00Z"}, [contact])
        if i % 3 == 0:
            clock.sleep(0.001)
    clock.sleep(60)
    search_at: list[datetime] = []
    fake.during_search(lambda kind, body: search_at.append(clock()))
    page_cost = args.page_cost_ms / 1000

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
        executor = VirtualExecutor(clock)
        fake.start()
        try:
            client = HubSpotClient(
                fake.base_url,
                TOKEN,
                page_size=PAGE,
                max_retries=MAX_RETRIES,
                session=SlowNetwork(clock, timedelta(milliseconds=args.latency_ms)),
                sleep=clock.sleep,
                limiter=limiter,
            )
            wall = time.perf_counter()
            started_at = clock()
            summary = sync(
                client,
                sessions,
                clock(),
                touch_kinds=("call",) if args.calls else (),
                cursor_prefix="hubspot",
                overlap=timedelta(minutes=5),
                # Called once a page is committed: what storing it costs.
                heartbeat=lambda: clock.sleep(page_cost),
                executor=executor,
            )
            took = (clock() - started_at).total_seconds()
            wall = time.perf_counter() - wall
        finally:
            executor.shutdown()
            fake.stop()
        with sessions() as session:
            stored: dict[str, Any] = {
                row.id: row for row in session.execute(select(Lead.id, Lead.first_name))
            }
            calls = set(session.scalars(select(TouchLead.touch_id)))
        engine.dispose()

    expected = fake.contacts()
    lost = {
        index // PAGE
        for index, (contact_id, props) in enumerate(sorted(expected.items()))
        if contact_id not in stored or stored[contact_id].first_name != props["firstname"]
    }
    lost_calls = sum(
        1
        for i in range(args.calls)
        if f"call:{1001 + args.contacts + i}" not in calls  # call ids follow the contacts'
    )
    lead_reads = [r for r in fake.requests if r.path.startswith("/crm/v4/associations/")]
    searches = len(search_at)
    span = (search_at[-1] - search_at[0]).total_seconds() if searches > 1 else 0.0
    # Requests sent per second between the first and last search, over the allowed rate.
    rate_share = (searches - 1) / span / SEARCH_PER_S if span else 0.0
    print(f"sync: {summary.as_dict()}")
    print(
        f"searches={searches} over {span:.1f}s of virtual time (the pass: {took:.1f}s), "
        f"latency {args.latency_ms:g} ms, storing {args.page_cost_ms:g} ms a page, "
        f"other requests={fake.counts['other']} (of which association reads "
        f"{len(lead_reads)}), answered 429={fake.counts['rate_limited']}, wall time {wall:.1f}s"
    )
    print(
        f"contacts={len(stored)} rate_share={rate_share:.2f} lost_pages={len(lost)} "
        f"calls={args.calls - lost_calls} lost_calls={lost_calls} "
        f"throttled={fake.counts['rate_limited']} latency_ms={args.latency_ms:g} "
        f"virtual_s={took:.0f} wall_s={wall:.0f}"
    )
    # A figure over a store that lost records would be meaningless: say so in the exit code.
    return 0 if not lost and not lost_calls and len(stored) == len(expected) else 1


if __name__ == "__main__":
    sys.exit(main())
