"""`sla-worker backtest CANDIDATE --since 30d`: a period replayed under the current and a
candidate config, with counts worked out by hand (always-open calendar: first touch 1 h, warned
15 min before; the rep at the breach, the manager 2 h after it)."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e.world import CONFIG, World, cli_after_a_run
from worker.cli import main


def seed(world: World) -> None:
    world.add_rep()
    now = world.clock.now

    def lead(name: str, assigned_ago: timedelta, touched_after: timedelta | None) -> None:
        lead_id = world.add_lead(assigned_ago=assigned_ago, name=name)
        if touched_after is not None:
            world.add_call(lead_id, at=now - assigned_ago + touched_after)

    lead("Anna Early", timedelta(days=5), timedelta(minutes=20))  # on time under both
    lead("Ben Fifty", timedelta(days=4), timedelta(minutes=50))  # late only under 30 min
    lead("Cora Ninety", timedelta(days=3), timedelta(minutes=90))  # late under both
    lead("Dan Never", timedelta(days=2), None)  # breached, the manager paged
    lead("Eva Old", timedelta(days=40), None)  # breached before the period


def replay(world: World, monkeypatch: pytest.MonkeyPatch, candidate: Path) -> str:
    at = world.clock.now.isoformat()
    return cli_after_a_run(
        world, monkeypatch, "backtest", str(candidate), "--since", "30d", "--at", at
    )


def row(text: str, title: str) -> tuple[str, str]:
    found = re.search(rf"^  {re.escape(title)}\s+(\S+)\s+(\S+)$", text, re.MULTILINE)
    assert found, f"no row {title!r} in:\n{text}"
    return found.group(1), found.group(2)


def config(tmp_path: Path, first_touch: str = "1h") -> Path:
    path = tmp_path / "candidate.yaml"
    text = CONFIG % {"send_resolved": "true"}
    path.write_text(text.replace("first_touch: 1h", f"first_touch: {first_touch}"))
    return path


def test_a_config_against_itself_changes_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seed(world)
    text = replay(world, monkeypatch, config(tmp_path))

    assert "over 5 judged leads" in text and "(30 days)" in text
    assert row(text, "warnings") == ("3", "3")  # Ben, Cora, Dan: not Anna, not Eva (before)
    assert row(text, "breaches") == ("2", "2")  # Cora, Dan
    assert row(text, "escalations (above the rep)") == ("1", "1")  # Dan's manager
    # 3 warnings + 2 breach notices to the rep + 1 to the manager.
    assert row(text, "messages") == ("6", "6")
    assert "0 leads would change outcome" in text


def test_a_stricter_first_touch_shows_more_breaches_and_names_the_leads(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seed(world)
    text = replay(world, monkeypatch, config(tmp_path, "30m"))

    assert row(text, "warnings") == ("3", "4")  # Anna touched 5 min after her new warning
    assert row(text, "breaches") == ("2", "3")  # Ben too
    assert row(text, "escalations (above the rep)") == ("1", "1")
    assert row(text, "messages") == ("6", "8")
    assert "1 lead would change outcome" in text
    assert re.search(r"lead \d+ Ben Fifty: first_touch breached in the period", text)
    assert "busiest (candidate): Lena Fischer on" in text


def test_a_bad_since_is_named(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    assert main(["backtest", str(config(tmp_path)), "--since", "a month"]) == 2


def test_the_shipped_config_replayed_against_itself_changes_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seed(world)
    replay(world, monkeypatch, config(tmp_path))  # syncs and judges the world's leads
    shipped = Path(__file__).resolve().parent.parent / "config/sla.yaml"
    monkeypatch.setenv("SLA_CONFIG", str(shipped))
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    at = world.clock.now.isoformat()
    assert main(["backtest", str(shipped), "--since", "30d", "--at", at]) == 0
    text = out.getvalue()
    assert "over 5 judged leads" in text and "0 leads would change outcome" in text
    assert row(text, "breaches")[0] == row(text, "breaches")[1]
