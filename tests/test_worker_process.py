"""A worker process, once its context is open, keeps what it holds out of the garbage
collector's way (``gc.freeze``): checked in a process of its own, as a worker's is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import gc
import worker.tasks as tasks

before = gc.get_freeze_count()
context = tasks._ctx()
after = gc.get_freeze_count()
assert tasks._ctx() is context  # opened once per process
print(before, after)
"""


def test_a_worker_process_freezes_what_its_context_keeps(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SLA_CONFIG": str(ROOT / "config" / "sla.yaml"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before, after = (int(n) for n in done.stdout.split())
    assert before == 0
    assert after > 10_000  # the modules, the configuration, the database metadata
