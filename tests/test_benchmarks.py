"""The benchmarks still measure what they say: each runs at a small size and exits 0.

No figure is asserted here (speed is the benchmarks' business, printed, never a test); what is
checked is that the run did its work — every lead judged, every notice sent, every contact
stored — so that a change elsewhere cannot leave a benchmark timing an empty loop.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


def figures(line: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in line.split())


def test_engine_benchmark_judges_every_lead() -> None:
    last = figures(run("engine.py", "--leads", "3000"))
    assert last["leads"] == "3000" and int(last["leads_per_s"]) > 0


@pytest.mark.slow
def test_delivery_benchmark_sends_one_message_per_recipient() -> None:
    last = figures(run("delivery.py", "--breaches", "60", "--reps", "6", "--managers", "2"))
    assert last["recipients"] == "8" and last["messages"] == "8" and last["retried"] == "0"


@pytest.mark.slow
def test_sync_benchmark_stores_every_contact() -> None:
    last = figures(run("sync.py", "--contacts", "1500"))
    assert last["contacts"] == "1500" and last["lost_pages"] == "0"


@pytest.mark.slow
def test_evaluate_benchmark_judges_every_stored_lead() -> None:
    last = figures(run("evaluate.py", "--stored", "300", "--due", "0.1"))
    # The script exits non-zero unless the first pass judged all 300; the second, the 30 due.
    assert last["stored"] == "300" and last["due"] == "30" and float(last["pass_s"]) > 0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_e2e_benchmark_delivers_every_reminder_once(postgres_server: str, redis_url: str) -> None:
    # The benchmark flushes its broker database before each run: its own, never the tests'.
    broker = urlsplit(redis_url)._replace(path="/14").geturl()
    last = figures(
        run(
            "e2e.py",
            *("--leads", "200", "--reps", "4", "--workers", "1,2"),
            *("--database-url", postgres_server, "--broker-url", broker, "--timeout", "120"),
        )
    )
    # The script exits non-zero on a reminder lost or sent twice; the line must say so too.
    assert last["leads"] == "200" and last["workers"] == "1,2"
    assert last["duplicates"] == "0" and last["lost"] == "0"
    assert all(int(n) >= 4 for n in last["messages"].split(","))  # every rep heard, each run
