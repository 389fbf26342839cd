"""The *Logged a touch* button of a rep's reminder, end to end (issue 17, part 3): the rep
clicks it in the DM they received; the worker syncs the CRM and evaluates now, then says
whether the touch is there: found, the reminder's line says so and the breach is over; not
found, the rep alone is told what to log, and nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e.world import Clock, make_world, outbox_rows
from tests.test_web_snooze import MAX_3D, TUESDAY_1030, Reminder, _actions, _reminder
from worker.explain import explain_text
from worker.pipeline import slack_actions
from worker.pipeline.context import Context
from worker.store.models import Finding


@pytest.fixture
def tuesday(tmp_path: Path, database_url: str) -> Iterator[Reminder]:
    for world in make_world(tmp_path, database_url, clock=Clock(TUESDAY_1030), config=MAX_3D):
        yield from _reminder(world, TUESDAY_1030)


def _finding(reminder: Reminder) -> tuple[str, object]:
    with reminder.web.ctx.sessions() as session:
        finding = session.get(Finding, (reminder.lead_id, "first_touch"))
        assert finding is not None
        return finding.state, finding.met_at


def test_with_the_touch_in_the_crm_the_reminder_is_resolved_and_says_so(
    tuesday: Reminder,
) -> None:
    world = tuesday.world
    world.clock.advance(timedelta(minutes=5))  # 10:35: Lena calls, logs it, clicks
    call_at = world.clock.now - timedelta(minutes=2)
    world.add_call(tuesday.lead_id, owner_id="101", at=call_at)
    response_url = tuesday.click("U0LENA", "touched")
    update = world.slack.await_update(tuesday.message.ts)
    assert _actions(update.blocks) == []  # the buttons are gone
    assert (
        ":white_check_mark: Touch found: Tue 24 Nov 10:33 CET. No more reminders about it."
        in str(update.blocks)
    )
    assert _finding(tuesday) == ("met_late", call_at)  # synced and judged at the click
    (action,) = tuesday.web.actions()
    assert action.outcome == f"touch found: {call_at.isoformat()}"
    assert world.slack.responses_to(response_url) == []
    # No more reminders: the 11:00 repeat is not written; Lena hears "done, late".
    assert tuesday.dms_at(TUESDAY_1030 + timedelta(minutes=30)) == 2
    assert "done, late" in world.slack.dms_to("U0LENA")[-1].text
    assert "touch found" in explain_text(tuesday.web.ctx, tuesday.lead_id, world.clock.now)


def test_without_the_touch_the_rep_is_told_and_nothing_changes(tuesday: Reminder) -> None:
    world = tuesday.world
    world.clock.advance(timedelta(minutes=5))
    text = tuesday.reply(tuesday.click("U0LENA", "touched"))
    assert text == (
        "*Maria Lopez*: no touch on this lead in the CRM since Tue 24 Nov 09:00 CET. Log it in "
        "the CRM (a call, e-mail or meeting by you) and click again."
    )
    assert world.slack.updates == []
    assert _finding(tuesday) == ("breached", None)
    assert [a.outcome for a in tuesday.web.actions()] == ["no touch in the CRM"]
    assert len(outbox_rows(tuesday.web.ctx)) == 1
    assert tuesday.dms_at(TUESDAY_1030 + timedelta(minutes=30)) == 2  # the repeat goes out


def test_a_stranger_s_click_runs_nothing(
    tuesday: Reminder, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[Context] = []
    monkeypatch.setattr(slack_actions, "refresh", lambda ctx, **kw: ran.append(ctx))
    text = tuesday.reply(tuesday.click("U0EVE", "touched"))
    assert text.startswith(f"You may not act on lead {tuesday.lead_id}")
    assert ran == []


def test_it_waits_for_a_sync_another_worker_runs_a_bounded_time(
    tuesday: Reminder, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = tuesday.web.ctx
    busy = {"sync": 3, "evaluate": 100}  # sync frees up after 3 polls; evaluate never does
    calls: list[str] = []

    class Busy:
        def __init__(self, running: bool) -> None:
            self.already_running = running

    def run_stage(ctx_: Context, name: str) -> Busy:
        calls.append(name)
        busy[name] -= 1
        return Busy(busy[name] >= 0)

    monkeypatch.setattr("worker.pipeline.stages.run_stage", run_stage)
    slept: list[float] = []
    slack_actions.refresh(ctx, sleep=slept.append, wait_for=timedelta(seconds=10))
    # 3 polls for sync, then evaluate until 10 s are spent in all; then it goes on
    assert calls == ["sync"] * 4 + ["evaluate"] * 8
    assert slept == [1.0] * 10
