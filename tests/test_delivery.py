"""Slack delivery that reps and managers can trust: escaping, exactly once through retries
and crashes, threads, digests, quiet hours, fallbacks and pacing — through the real Slack
client against the fake Slack, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.world import CONFIG, Clock, World, make_world, outbox_rows
from worker.pipeline.context import Context
from worker.pipeline.deliver import Post
from worker.pipeline.stages import run_once
from worker.slack.messages import MAX_BLOCKS, SlackMessage
from worker.slack.pacing import ChannelPacer

DIGEST_CONFIG = (
    CONFIG.replace(
        "  - {after: 2h, notify: manager}",
        '  - {after: 2h, notify: manager, digest: true}\n  - {after: 4h, notify: "channel:#gone"}',
    )
    .replace(
        "schedules: {sync: 1s, evaluate: 1s, deliver: 1s}",
        'schedules: {sync: 1s, evaluate: 1s, deliver: 1s, digest: ["09:00"]}',
    )
    .replace("  group_wait: 0s", '  group_wait: 0s\n  fallback_channel: "#sales-escalations"')
)

BERLIN_CONFIG = CONFIG.replace(
    'always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}',
    'always: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}}',
)


def test_a_channel_ping_in_a_lead_name_arrives_escaped(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2), name="Bob <!channel>", company="<@U0BOSS> & Co")
    run_once(ctx)
    (dm,) = world.slack.dms_to("U0LENA")
    sent = dm.text + str(dm.blocks)
    assert "<!channel>" not in sent and "<@U0BOSS>" not in sent
    assert "&lt;!channel&gt;" in sent and "&lt;@U0BOSS&gt; &amp; Co" in sent


def test_a_429_burst_still_sends_exactly_one_message(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    world.slack.fail_next("chat.postMessage", "ratelimited", n=3, status=429, retry_after=5)
    for _ in range(8):
        run_once(ctx)
        world.clock.advance(timedelta(seconds=6))
    assert len(world.slack.dms_to("U0LENA")) == 1
    assert [r.status for r in outbox_rows(ctx)] == ["sent"]


class CrashAfterSlackAccepted(Exception):
    pass


def test_a_sender_killed_after_slack_accepted_repeats_once_and_only_after_the_lease(
    world: World, ctx: Context
) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    real = ctx.slack

    class Crashing:
        def lookup_user_by_email(self, email: str):  # type: ignore[no-untyped-def]
            return real.lookup_user_by_email(email)

        def post_message(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            real.post_message(*args, **kwargs)
            raise CrashAfterSlackAccepted  # the process dies before marking the row sent

    ctx._slack = Crashing()  # type: ignore[assignment]
    with pytest.raises(CrashAfterSlackAccepted):
        run_once(ctx)
    ctx._slack = real
    assert [r.status for r in outbox_rows(ctx)] == ["sending"]
    world.clock.advance(timedelta(minutes=1))  # lease still held: nobody resends
    run_once(ctx)
    assert len(world.slack.dms_to("U0LENA")) == 1
    world.clock.advance(timedelta(minutes=5))  # lease expired: the one documented duplicate
    run_once(ctx)
    run_once(ctx)
    assert len(world.slack.dms_to("U0LENA")) == 2
    assert [r.status for r in outbox_rows(ctx)] == ["sent"]


def test_updates_about_a_lead_reply_in_the_thread_that_named_it(world: World, ctx: Context) -> None:
    world.add_rep()
    lead = world.add_lead(assigned_ago=timedelta(hours=2))
    run_once(ctx)
    world.clock.advance(timedelta(minutes=10))
    world.add_call(lead)
    run_once(ctx)
    first, resolved = world.slack.dms_to("U0LENA")
    assert first.thread_ts is None
    assert resolved.thread_ts == first.ts
    assert "done, late" in resolved.text


def test_several_leads_due_together_are_one_dm(world: World, ctx: Context) -> None:
    world.add_rep()
    for i in range(20):
        world.add_lead(assigned_ago=timedelta(hours=2, minutes=i), name=f"Lead N{i:02d}")
    run_once(ctx)
    (dm,) = world.slack.dms_to("U0LENA")
    assert "20 leads need attention" in dm.text
    assert dm.text.index("N19") < dm.text.index("N00")  # oldest deadline first


def test_a_rep_abroad_is_not_pinged_at_night(tmp_path: Path, database_url: str) -> None:
    # A Berlin team (09:00-17:00), a rep whose Slack profile says New York.
    clock = Clock(datetime(2026, 11, 24, 8, 30, tzinfo=UTC))  # 09:30 Berlin, 03:30 New York
    for world in make_world(tmp_path, database_url, clock=clock, config=BERLIN_CONFIG):
        with world.context() as ctx:
            world.add_rep(slack_id=None)
            world.slack.add_user(
                "U0LENA", "lena@example.com", "Lena Fischer", tz="America/New_York"
            )
            world.add_lead(assigned_ago=timedelta(hours=20))  # breached yesterday
            run_once(ctx)
            assert world.slack.dms_to("U0LENA") == []
            (row,) = [r for r in outbox_rows(ctx) if r.recipient == "email:lena@example.com"]
            assert row.status == "pending"
            assert row.due_at == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 09:00 in New York
            clock.now = datetime(2026, 11, 24, 14, 1, tzinfo=UTC)
            run_once(ctx)
            (dm,) = world.slack.dms_to("U0LENA")
            assert "EST" in dm.text  # the deadline in the rep's own time zone


def test_nothing_goes_out_on_a_weekend(tmp_path: Path, database_url: str) -> None:
    clock = Clock(datetime(2026, 11, 28, 10, 0, tzinfo=UTC))  # Saturday
    for world in make_world(tmp_path, database_url, clock=clock, config=BERLIN_CONFIG):
        with world.context() as ctx:
            world.add_rep()
            world.add_lead(assigned_ago=timedelta(days=2))
            run_once(ctx)
            assert world.slack.messages == []
            assert {r.due_at for r in outbox_rows(ctx)} == {
                datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # Monday 09:00 Berlin
            }


def test_a_digest_for_600_overdue_leads_is_split_within_limits_and_loses_none(
    tmp_path: Path, sqlite_url: str
) -> None:
    for world in make_world(tmp_path, sqlite_url, config=DIGEST_CONFIG):
        with world.context() as ctx:
            world.add_rep()
            names = [f"Lead Number{i:03d}" for i in range(600)]
            for i, name in enumerate(names):
                world.add_lead(assigned_ago=timedelta(hours=3, minutes=i % 50), name=name)
            run_once(ctx)
            assert world.slack.dms_to("U0MIKE") == []  # waits for the 09:00 digest
            world.clock.now = datetime(2026, 11, 25, 9, 0, 30, tzinfo=UTC)
            run_once(ctx)
            parts = world.slack.dms_to("U0MIKE")
            assert len(parts) > 1
            assert all(f"(part {i} of {len(parts)})" in p.text for i, p in enumerate(parts, 1))
            everything = " ".join(str(p.blocks) for p in parts)
            assert all(name in everything for name in names)
            assert all(len(p.blocks or []) <= MAX_BLOCKS for p in parts)
            digests = [r for r in outbox_rows(ctx) if r.delivery == "digest"]
            assert len(digests) == 600 and {r.status for r in digests} == {"sent"}


def test_a_broken_channel_falls_back_to_the_fallback_channel(
    tmp_path: Path, sqlite_url: str
) -> None:
    for world in make_world(tmp_path, sqlite_url, config=DIGEST_CONFIG):
        with world.context() as ctx:
            world.add_rep()
            world.add_lead(assigned_ago=timedelta(hours=6))
            run_once(ctx)
            run_once(ctx)
            (post,) = world.slack.messages_in("sales-escalations")
            assert "Could not deliver to #gone (channel_not_found)" in str(post.blocks)
            statuses = {r.recipient: r.status for r in outbox_rows(ctx)}
            assert statuses["channel:#gone"] == "rerouted"
            assert statuses["channel:#sales-escalations"] == "sent"


def test_a_revoked_token_turns_health_red_until_delivery_works(
    world: World, ctx: Context, tmp_path: Path
) -> None:
    from tests.test_cli import run

    world.clock.now = datetime.now(UTC)  # health judges the stages' last runs by the wall clock
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    world.slack.fail_next("chat.postMessage", "token_revoked")
    run_once(ctx)
    done = run("health", cwd=tmp_path, env=world.env())
    assert done.returncode == 1
    assert "slack: FAILING" in done.stdout and "token_revoked" in done.stdout
    assert "1 pending" in done.stdout
    run_once(ctx)
    done = run("health", cwd=tmp_path, env=world.env())
    assert done.returncode == 0 and "slack: ok" in done.stdout


def _post(channel: str, n: int) -> Post:
    return Post("r", channel, SlackMessage(str(n), []), [n])


def test_the_pacer_sends_one_message_per_second_per_channel_while_others_go_on() -> None:
    now = [0.0]
    sent: list[tuple[float, str]] = []
    pacer = ChannelPacer(clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    posts = [_post("A", 1), _post("A", 2), _post("A", 3), _post("B", 4), _post("C", 5)]
    for post in pacer.order(posts):
        sent.append((now[0], post.channel))
    assert sent == [(0.0, "A"), (0.0, "B"), (0.0, "C"), (1.0, "A"), (2.0, "A")]


def test_a_token_revoked_at_lookup_keeps_every_row_and_turns_health_red(
    world: World, ctx: Context
) -> None:
    from worker.store import outbox
    from worker.store.db import session_scope

    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    world.slack.fail_next("users.lookupByEmail", "token_revoked")
    result = run_once(ctx)
    assert result["deliver"]["auth_failed"] is True  # type: ignore[index]
    assert [(r.status, r.leased_until) for r in outbox_rows(ctx)] == [("pending", None)]
    with session_scope(ctx.sessions) as session:
        health = {c.component: c.ok for c in outbox.health(session)}
        assert health == {"config": True, "crm": True, "crm quota": True, "slack": False}
    run_once(ctx)
    assert len(world.slack.dms_to("U0LENA")) == 1


def test_a_notice_the_lead_outran_over_the_weekend_is_not_sent(
    tmp_path: Path, database_url: str
) -> None:
    clock = Clock(datetime(2026, 11, 28, 10, 0, tzinfo=UTC))  # Saturday
    for world in make_world(tmp_path, database_url, clock=clock, config=BERLIN_CONFIG):
        with world.context() as ctx:
            world.add_rep()
            lead = world.add_lead(assigned_ago=timedelta(days=2))  # breached Thursday... held
            run_once(ctx)  # the overdue notice waits for Monday 09:00
            clock.now = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)  # Sunday: the rep calls
            world.add_call(lead)
            run_once(ctx)
            clock.now = datetime(2026, 11, 30, 8, 1, tzinfo=UTC)  # Monday 09:01 Berlin
            result = run_once(ctx)
            assert world.slack.messages == []  # neither "overdue" nor "done, late"
            assert result["deliver"]["rows_superseded"] >= 1  # type: ignore[index]
            assert {r.status for r in outbox_rows(ctx)} == {"superseded"}
