"""Going live (issue 15): the first run over a portal with history — hundreds of leads breached
days ago, every escalation level and several repeats long due — sends one grouped message per
recipient, each lead named once, and the next run sends nothing more."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e.world import CONFIG, World, make_world
from worker.pipeline.stages import run_once

REPS = 5
LEADS_PER_REP = 60

HISTORY = CONFIG.replace("  group_wait: 0s", "  group_wait: 0s\n  repeat_every: 1d").replace(
    "  - {after: 2h, notify: manager}",
    '  - {after: 2h, notify: manager}\n  - {after: 1d, notify: "channel:#sales-escalations"}',
)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, database_url, config=HISTORY)


def _count(text: str) -> int:
    match = re.search(r"(\d+) (?:overdue )?leads?", text)
    assert match, text
    return int(match.group(1))


def test_the_first_run_over_a_portal_with_history_sends_one_message_per_recipient(
    world: World,
) -> None:
    reps = []
    for rep in range(REPS):
        owner = str(400 + rep)
        world.add_rep(owner, f"Rep{rep} Seller", f"U0REP{rep}")
        reps.append(f"U0REP{rep}")
        for n in range(LEADS_PER_REP):
            world.add_lead(
                owner_id=owner,
                assigned_ago=timedelta(days=3 + n % 8, seconds=n),  # breached days ago
                name=f"History{rep}x{n} Lead",
            )
    with world.context() as ctx:
        run_once(ctx)
        for rep in reps:
            (dm,) = world.slack.dms_to(rep)  # one list, not one message per lead or repeat
            assert _count(dm.text) == LEADS_PER_REP  # each lead once, though long repeated
        (manager,) = world.slack.dms_to("U0MIKE")
        assert _count(manager.text) == REPS * LEADS_PER_REP
        (channel,) = world.slack.messages_in("#sales-escalations")
        assert _count(channel.text) == REPS * LEADS_PER_REP
        sent = len(world.slack.messages)
        world.clock.advance(timedelta(minutes=5))
        run_once(ctx)
        assert len(world.slack.messages) == sent  # nothing more until the next repeat falls due
        # An hour later the daily repeats of the rep's and the channel's levels fall due, for
        # every lead within a minute: one list each again, not sixty thread replies.
        world.clock.advance(timedelta(hours=1))
        run_once(ctx)
        for rep in reps:
            assert len(world.slack.dms_to(rep)) == 2
            assert _count(world.slack.dms_to(rep)[-1].text) == LEADS_PER_REP
        assert len(world.slack.messages_in("#sales-escalations")) == 2
        assert len(world.slack.dms_to("U0MIKE")) == 1  # the manager's repeat is an hour later
