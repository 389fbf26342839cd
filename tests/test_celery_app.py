"""The beat schedule comes from the config: every stage, each at its configured pace."""

from __future__ import annotations

from pathlib import Path

from celery.schedules import crontab

from worker.celery_app import make_app
from worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_beat_schedule_follows_the_config() -> None:
    app = make_app(Settings.from_env({"SLA_CONFIG": str(ROOT / "config/sla.yaml")}))
    schedule = app.conf.beat_schedule
    assert set(schedule) == {"sync", "evaluate", "deliver", "prune", "recycle", "report", "review"}
    assert schedule["prune"]["schedule"] == 6 * 3600.0
    assert schedule["review"]["schedule"] == 15 * 60.0  # the run knows when its slot has come
    assert schedule["sync"]["schedule"] == 120.0
    assert schedule["deliver"]["schedule"] == 15.0
    assert schedule["sync"]["options"]["expires"] == 120.0  # no backlog of stale passes
    recycle = schedule["recycle"]["schedule"]
    assert isinstance(recycle, crontab)
    assert recycle.hour == {7} and recycle.day_of_week == {1, 2, 3, 4, 5}
    assert all(entry["task"].startswith("worker.tasks.") for entry in schedule.values())


def test_without_recycle_and_marketing_sections_those_tasks_are_not_scheduled() -> None:
    app = make_app(Settings.from_env({"SLA_CONFIG": str(ROOT / "worker/demo_config.yaml")}))
    assert set(app.conf.beat_schedule) == {"sync", "evaluate", "deliver", "prune"}


def test_each_task_goes_to_its_queue_within_time_limits_redis_will_not_outlive() -> None:
    env = {"SLA_CONFIG": str(ROOT / "config/sla.yaml"), "BROKER_URL": "redis://127.0.0.1:6379/0"}
    app = make_app(Settings.from_env(env))
    app.loader.import_default_modules()
    queues = {
        name: app.amqp.router.route({}, f"worker.tasks.{name}")["queue"].name
        for name in ("sync", "evaluate", "deliver", "prune", "recycle", "report")
    }
    assert queues == {
        "sync": "sync",
        "evaluate": "evaluate",
        "deliver": "deliver",
        "prune": "housekeeping",
        "recycle": "housekeeping",
        "report": "housekeeping",
    }
    hard_limits = []
    for name in queues:
        task = app.tasks[f"worker.tasks.{name}"]
        assert 0 < task.soft_time_limit < task.time_limit, name
        hard_limits.append(task.time_limit)
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility > max(hard_limits)  # never handed to a second worker while it runs


def test_the_embedded_broker_opens_with_the_worker_s_transport_options(tmp_path: Path) -> None:
    broker = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    app = make_app(
        Settings.from_env({"SLA_CONFIG": str(ROOT / "config/sla.yaml"), "BROKER_URL": broker})
    )
    with app.connection_for_write() as connection:
        # Kombu's SQLAlchemy transport creates its engine from the transport options: a key
        # create_engine does not know stopped `celery worker` at start.
        connection.ensure_connection(max_retries=1)
        connection.default_channel.queue_declare("evaluate")
