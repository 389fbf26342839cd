"""Delivery under faults (issue 14, rows 2–6): a slow Slack, a failed digest part, an unexpected
lookup error, and CRM text that would push a message past Slack's limits. Each test counts what
Slack received: nothing lost, nothing twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.world import CONFIG, World, make_world, outbox_rows
from worker.errors import TransientError
from worker.pipeline.context import Context
from worker.pipeline.deliver import deliver
from worker.pipeline.stages import run_once, run_stage
from worker.slack.client import SentMessage, SlackUser
from worker.slack.sender import SlackSender


class _Slow:
    """A Slack client whose every post takes ``per_post`` of the world's time and which can
    run something (another worker) in the middle of its ``n``-th post."""

    def __init__(self, inner: SlackSender, world: World, per_post: timedelta) -> None:
        self.inner, self.world, self.per_post = inner, world, per_post
        self.posts = 0
        self.during: dict[int, Callable[[], object]] = {}

    def lookup_user_by_email(self, email: str) -> SlackUser | None:
        return self.inner.lookup_user_by_email(email)

    def post_message(
        self,
        channel: str,
        text: str,
        *,
        blocks: list[dict[str, object]] | None = None,
        thread_ts: str | None = None,
    ) -> SentMessage:
        self.posts += 1
        self.world.clock.advance(self.per_post)
        if self.posts in self.during:
            self.during[self.posts]()
        return self.inner.post_message(channel, text, blocks=blocks, thread_ts=thread_ts)


def _reps_with_overdue_leads(world: World, count: int) -> list[str]:
    slack_ids = []
    for i in range(count):
        slack_id = f"U{i:04d}"
        world.add_rep(str(300 + i), f"Rep{i:03d} Number", slack_id)
        world.add_lead(owner_id=str(300 + i), assigned_ago=timedelta(hours=2), name=f"Lead R{i}")
        slack_ids.append(slack_id)
    return slack_ids


# -- row 2 ----------------------------------------------------------------------------------
def test_a_pass_that_outlives_its_claims_never_sends_what_another_worker_took_over(
    world: World, ctx: Context
) -> None:
    reps = _reps_with_overdue_leads(world, 12)
    run_stage(ctx, "sync")
    run_stage(ctx, "evaluate")
    slow = _Slow(ctx.slack, world, per_post=timedelta(minutes=1))
    other: list[object] = []
    # In its 7th post (6 minutes in: past the 5-minute claim) a second worker delivers.
    slow.during[7] = lambda: other.append(
        deliver(ctx.slack, ctx.sessions, ctx.agreement, world.clock.now, clock=world.clock)
    )
    first = deliver(slow, ctx.sessions, ctx.agreement, world.clock.now, clock=world.clock)
    per_rep = Counter(m.user_id for m in world.slack.messages)
    assert per_rep == Counter({rep: 1 for rep in reps})  # every rep once: none lost, none twice
    assert first.messages + other[0].messages == 12  # type: ignore[attr-defined]
    assert {r.status for r in outbox_rows(ctx)} == {"sent"}


# -- row 3 ----------------------------------------------------------------------------------
DIGEST_NOW = CONFIG.replace(
    "  - {after: 0m, notify: rep}\n  - {after: 2h, notify: manager}",
    "  - {after: 0m, notify: manager, digest: true}",
)
#: The first digest time after the world's start (digests at 09:00 and 14:00, UTC calendar).
DIGEST_AT = datetime(2026, 11, 24, 14, 0, 30, tzinfo=UTC)


def test_a_failed_digest_part_never_sends_an_earlier_part_again(
    tmp_path: Path, sqlite_url: str
) -> None:
    for world in make_world(tmp_path, sqlite_url, config=DIGEST_NOW):
        with world.context() as ctx:
            world.add_rep()
            names = [f"Lead {i:03d} " + "n" * 130 for i in range(90)]
            for i, name in enumerate(names):
                world.add_lead(assigned_ago=timedelta(hours=2, minutes=i), name=name)
            run_stage(ctx, "sync")
            run_stage(ctx, "evaluate")
            world.clock.now = DIGEST_AT
            failing = _Slow(ctx.slack, world, per_post=timedelta(0))

            def refuse() -> None:
                raise TransientError("ratelimited", retry_after=timedelta(seconds=5))

            failing.during[2] = refuse
            summary = deliver(failing, ctx.sessions, ctx.agreement, world.clock.now)
            assert summary.messages == 1 and summary.rows_retrying > 0
            world.clock.advance(timedelta(seconds=10))
            run_stage(ctx, "deliver")
            digests = world.slack.dms_to("U0MIKE")
            assert len(digests) >= 2
            everything = [str(d.blocks) for d in digests]
            for name in names:  # every lead in exactly one delivered message
                assert sum(name[:9] in text for text in everything) == 1, name[:9]
            assert {r.status for r in outbox_rows(ctx)} == {"sent"}


# -- row 4 ----------------------------------------------------------------------------------
def test_an_unexpected_lookup_error_stays_with_that_recipient(world: World, ctx: Context) -> None:
    world.add_rep("101", "Lena Fischer", "U0LENA")
    world.add_rep("102", "Jonas Weber", "U0JONAS")
    world.add_lead(owner_id="101", assigned_ago=timedelta(hours=2), name="Maria Lopez")
    world.add_lead(owner_id="102", assigned_ago=timedelta(hours=2), name="Tobias Klein")
    # Every lookup of Jonas fails: the read of his Slack status (away) and deliver's own.
    only = {"email": "jonas@example.com"}
    world.slack.fail_next("users.lookupByEmail", "access_denied", n=99, only=only)
    result = run_once(ctx)
    deliver_summary = result["deliver"]
    assert isinstance(deliver_summary, dict) and deliver_summary["rows_rerouted"] == 1
    assert len(world.slack.dms_to("U0JONAS")) + len(world.slack.dms_to("U0LENA")) == 1
    run_once(ctx)  # the rerouted copy goes to the manager
    (manager_dm,) = world.slack.dms_to("U0MIKE")
    assert "access_denied" in str(manager_dm.blocks)
    assert not [r for r in outbox_rows(ctx) if r.status in ("pending", "sending")]


# -- rows 5 and 6 ---------------------------------------------------------------------------
def test_a_rep_with_45_leads_with_long_company_names_gets_one_dm_within_limits(
    world: World, ctx: Context
) -> None:
    world.add_rep()
    for i in range(45):
        world.add_lead(
            assigned_ago=timedelta(hours=2), name=f"Lead N{i}", company=f"Company {i} " + "C" * 280
        )
    run_once(ctx)
    (dm,) = world.slack.dms_to("U0LENA")
    assert "45 leads need attention" in dm.text
    assert {r.status for r in outbox_rows(ctx)} == {"sent"}


def test_a_5000_character_lead_name_does_not_fail_a_301_lead_digest(
    tmp_path: Path, sqlite_url: str
) -> None:
    for world in make_world(tmp_path, sqlite_url, config=DIGEST_NOW):
        with world.context() as ctx:
            world.add_rep()
            world.add_lead(assigned_ago=timedelta(hours=2), name="Huge " + "H" * 5000)
            for i in range(300):
                world.add_lead(assigned_ago=timedelta(hours=2, minutes=i % 50), name=f"Lead N{i}")
            run_once(ctx)
            world.clock.now = DIGEST_AT
            run_once(ctx)
            digests = world.slack.dms_to("U0MIKE")
            assert digests and all(len(str(d.blocks)) < 13_000 for d in digests)
            statuses = Counter(r.status for r in outbox_rows(ctx))
            assert statuses == Counter({"sent": 301})
