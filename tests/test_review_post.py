"""The review meeting's post (``review:`` in the agreement): the week before each Monday 09:00
posted once to the review channel through ``files_upload_v2`` — the text with the biggest
changes, the chart (PNG) and the CSV — against the fake Slack's upload endpoints; a failed
upload is tried again by the next run; a worker that was down posts the latest week only."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.world import Clock, World, make_world
from tests.period_world import CONFIG, berlin, qualify, seed
from worker.cli import main
from worker.pipeline.stages import run_once, run_stage
from worker.store.models import ReviewPost

REVIEW = (
    CONFIG
    + """
review:
  channel: "#sales-review"
  every: 1w
  then: {after: 8w, every: 1mo}
  at: "Mon 09:00"
"""
)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    clock = Clock(berlin(6, 12, month=4))  # Monday 6 April, 12:00 in Berlin
    for world in make_world(tmp_path, database_url, clock=clock, config=REVIEW):
        world.slack.add_channel("C0REVIEW", "sales-review")
        yield world


def posts(world: World) -> list[ReviewPost]:
    with world.context() as ctx, ctx.sessions() as session:
        return list(session.query(ReviewPost).order_by(ReviewPost.id))


def test_the_week_before_is_posted_once_with_its_chart_and_csv(world: World) -> None:
    qualify(world, seed(world))
    with world.context() as ctx:
        run_once(ctx)
        summary = run_stage(ctx, "review").as_dict()
        assert summary["posted"] == "week 2026-W14"
        again = run_stage(ctx, "review").as_dict()
        assert again["posted"] == ""  # the same slot: nothing new

    (upload,) = world.slack.uploads
    assert upload.channel == "C0REVIEW"  # the name was looked up: files are shared by id
    comment = upload.comment
    assert comment.startswith("*SLA review: week 2026-W14* (Mon 30 Mar to Sun 05 Apr")
    assert "First touch on time: *" in comment and "Qualified leads: *" in comment
    assert "*Biggest changes since the last review*" in comment or "No change" in comment
    chart, table = upload.files
    assert chart.filename.endswith(".png") and table.filename.endswith(".csv")
    image = Image.open(io.BytesIO(chart.content))
    assert image.size == (800, 600)
    assert len(image.convert("RGB").getcolors(800 * 600) or []) > 50
    rows = list(csv.DictReader(io.StringIO(table.content.decode())))
    assert rows[0]["dimension"] == "all" and {r["segment"] for r in rows} >= {"Lena Fischer"}
    (post,) = posts(world)
    assert (post.status, post.attempts, post.period_label) == ("sent", 1, "week 2026-W14")


def test_a_failed_upload_stays_pending_and_the_next_run_posts_it(world: World) -> None:
    seed(world)
    world.slack.fail_next("files.completeUploadExternal", "internal_error", status=500)
    with world.context() as ctx:
        run_once(ctx)
        failed = run_stage(ctx, "review").as_dict()
        assert failed["posted"] == "" and "week 2026-W14" in str(failed["failed"])
        assert world.slack.uploads == []
        (post,) = posts(world)
        assert post.status == "pending" and post.last_error
        world.clock.advance(timedelta(minutes=15))
        assert run_stage(ctx, "review").as_dict()["posted"] == "week 2026-W14"
    assert len(world.slack.uploads) == 1
    (post,) = posts(world)
    assert (post.status, post.attempts, post.last_error) == ("sent", 2, None)


def test_a_worker_down_for_weeks_posts_the_latest_week_only(world: World) -> None:
    seed(world)
    with world.context() as ctx:
        run_once(ctx)
        world.clock.advance(timedelta(weeks=3))  # Monday 27 April
        assert run_stage(ctx, "review").as_dict()["posted"] == "week 2026-W17"
    assert len(world.slack.uploads) == 1


def test_a_channel_the_bot_is_not_in_is_said_and_retried(world: World) -> None:
    world.slack.add_channel("C0REVIEW", "sales-review", is_member=False)
    with world.context() as ctx:
        failed = run_stage(ctx, "review").as_dict()
    assert "not_in_channel" in str(failed["failed"])
    (post,) = posts(world)
    assert post.status == "pending"


def test_the_review_command_posts_once_as_an_admin_types_it(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    assert main(["review"]) == 0
    assert re.search(r"^review of week \d{4}-W\d\d posted$", capsys.readouterr().out)
    assert main(["review"]) == 0
    assert "nothing to post" in capsys.readouterr().out
    assert len(world.slack.uploads) == 1
