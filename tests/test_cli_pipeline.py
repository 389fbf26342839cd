"""`sla-worker run-once`, `explain` and the fake servers, typed as a user would, against the
loopback fakes (the worker runs as a subprocess on the real clock)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
import requests

from tests.e2e.world import RealClock, World, make_world
from tests.test_cli import run

SCRIPT = Path(sys.executable).parent / "sla-worker"


@pytest.fixture
def world(tmp_path: Path, sqlite_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, sqlite_url, clock=RealClock())


def test_run_once_dry_run_shows_the_dm_and_sends_nothing(world: World, tmp_path: Path) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    done = run("run-once", "--dry-run", cwd=tmp_path, env=world.env())
    assert done.returncode == 0, done.stderr
    assert "would send to email:lena@example.com" in done.stdout
    assert "Maria Lopez" in done.stdout
    assert world.slack.messages == []


def test_a_dry_run_shows_text_as_a_person_reads_it_and_when_each_message_would_go(
    tmp_path: Path, sqlite_url: str
) -> None:
    from tests.test_escalation_ladder import DIGESTS

    # The manager's level (1 h to the deadline, 30 min more) fell due after the last digest
    # slot (09:00 or 14:00 UTC, the calendar always open), so its digest waits for the next.
    now = datetime.now(UTC)
    slots = [
        datetime.combine(now.date() - timedelta(days=back), time(hour), UTC)
        for back in (0, 1)
        for hour in (9, 14)
    ]
    last_slot = max(slot for slot in slots if slot <= now)
    level_due = now - min(timedelta(minutes=1), (now - last_slot) / 2)
    assigned_ago = now - level_due + timedelta(hours=1, minutes=30)
    for world in make_world(tmp_path, sqlite_url, clock=RealClock(), config=DIGESTS):
        world.add_rep()
        world.add_lead(assigned_ago=assigned_ago, name="Bob <!channel>", company="A & B")
        done = run("run-once", "--dry-run", cwd=tmp_path, env=world.env())
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "Bob <!channel>" in out and "(A & B)" in out  # not &lt;!channel&gt; nor &amp;
        assert "&lt;" not in out and "&amp;" not in out
        assert "--- would send to email:lena@example.com now ---" in out
        held = re.search(
            r"--- would send to email:mike.manager@example.com at \w+ \d+ \w+ (\d\d:\d\d) UTC "
            r"\(held until then: the next digest time\) ---\n(.*)",
            out,
        )
        assert held, out
        assert held.group(1) in ("09:00", "14:00")
        assert f"{held.group(1)} UTC" in held.group(2)  # the digest is dated by its slot
        assert world.slack.messages == []


def test_run_once_sends_and_explain_tells_the_story(world: World, tmp_path: Path) -> None:
    world.add_rep()
    lead = world.add_lead(assigned_ago=timedelta(hours=2))
    done = run("run-once", cwd=tmp_path, env=world.env())
    assert done.returncode == 0, done.stderr
    assert len(world.slack.dms_to("U0LENA")) == 1
    assert '"rows_sent": 1' in done.stdout

    explained = run("explain", lead, cwd=tmp_path, env=world.env())
    assert explained.returncode == 0, explained.stderr
    text = explained.stdout.lower()
    assert f"lead {lead}" in text and "policy default" in text
    assert "first touch" in text and "breach" in text
    assert "assigned to lena fischer (101)" in text


def test_explain_an_unknown_lead_says_so(world: World, tmp_path: Path) -> None:
    run("db", "upgrade", cwd=tmp_path, env=world.env())
    done = run("explain", "999", cwd=tmp_path, env=world.env())
    assert done.returncode == 1
    assert "lead 999 is not in the store" in done.stderr


@pytest.mark.parametrize(
    ("command", "probe"),
    [
        ("fake-hubspot", ("/crm/v3/owners", "demo-hubspot-token")),
        ("fake-slack", ("/api/auth.test", "xoxb-demo-token")),
    ],
)
def test_a_fake_can_be_started_alone_for_a_real_worker(
    command: str, probe: tuple[str, str]
) -> None:
    process = subprocess.Popen(
        [str(SCRIPT), command, "--seed"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split()[line.split().index("on") + 1]
        base = url.removesuffix("/api/")
        path, token = probe
        answer = (
            requests.post(base + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)
            if command == "fake-slack"
            else requests.get(base + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        )
        assert answer.status_code == 200
        if command == "fake-hubspot":
            assert len(answer.json()["results"]) == 6  # the demo's reps and managers
        else:
            assert answer.json()["ok"] is True
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_recycle_dry_run_then_recycle_then_undo(tmp_path: Path, sqlite_url: str) -> None:
    from tests.test_recycle import RECYCLE_CONFIG, _worked_lead

    config = RECYCLE_CONFIG.replace("%(cap)s", "200")
    for world in make_world(tmp_path, sqlite_url, clock=RealClock(), config=config):
        world.add_rep()
        lead = _worked_lead(world, "Stale Lead")
        env = world.env()
        assert run("run-once", cwd=tmp_path, env=env).returncode == 0
        dry = run("recycle", "--dry-run", cwd=tmp_path, env=env)
        assert (
            "would recycle  lead" in dry.stdout and "hs_lead_status OPEN → RECYCLED" in dry.stdout
        )
        assert world.hubspot.contact(lead)["hs_lead_status"] == "OPEN"
        done = run("recycle", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert world.hubspot.contact(lead)["hs_lead_status"] == "RECYCLED"
        run_id = done.stdout.split("--undo ")[1].strip()
        undone = run("recycle", "--undo", run_id, cwd=tmp_path, env=env)
        assert "1 leads restored" in undone.stdout
        assert world.hubspot.contact(lead)["hs_lead_status"] == "OPEN"


def test_backtest_shows_what_a_policy_change_would_do(world: World, tmp_path: Path) -> None:
    from tests.e2e.world import CONFIG

    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2), name="Two Hours")
    world.add_lead(assigned_ago=timedelta(minutes=10), name="Ten Minutes")
    assert run("run-once", cwd=tmp_path, env=world.env()).returncode == 0
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(
        (CONFIG % {"send_resolved": "true"}).replace("first_touch: 1h", "first_touch: 4h")
    )
    done = run("backtest", str(candidate), cwd=tmp_path, env=world.env())
    assert done.returncode == 0, done.stderr
    assert "over 2 judged leads" in done.stdout
    assert "first_touch breached                      1          0" in done.stdout
    assert "Two Hours: first_touch breached → pending" in done.stdout
    assert len(world.slack.messages) == 1  # the backtest itself sent nothing
