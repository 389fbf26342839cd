"""Metrics and logs as an operator sees them: /metrics scraped over HTTP while the pipeline runs
against the loopback fakes, a multiprocess directory added up, JSON log lines parsed."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tests.e2e.world import SLACK_TOKEN, World
from tests.test_cli import run
from worker import metrics
from worker.errors import ConfigError, SlaWorkerError
from worker.exporter import Exporter, serve
from worker.logs import TEXT_FORMAT, adopt_handler
from worker.pipeline.context import Context, open_context
from worker.pipeline.stages import run_stage
from worker.settings import Settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(exporter: Exporter) -> Samples:
    answer = requests.get(exporter.url, timeout=10)
    answer.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when it is absent (a series not yet recorded)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def streams(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["stream"]: v for (n, labels), v in samples.items() if n == name}


@pytest.fixture
def exporter(ctx: Context) -> Iterator[Exporter]:
    server = serve(0, ctx, addr="127.0.0.1")
    try:
        yield server
    finally:
        server.close()


def test_a_pipeline_run_moves_the_stage_series_and_the_store_gauges(
    world: World, ctx: Context, exporter: Exporter
) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=1, minutes=30))  # first touch overdue
    before = scrape(exporter)
    assert value(before, "sla_worker_store_up") == 1
    assert value(before, "sla_worker_leads_tracked") == 0
    assert streams(before, "sla_worker_sync_lag_seconds") == {}

    run_stage(ctx, "sync")
    synced = scrape(exporter)
    count = "sla_worker_stage_duration_seconds_count"
    assert value(synced, count, stage="sync") == value(before, count, stage="sync") + 1
    success = "sla_worker_stage_last_success_timestamp_seconds"
    assert value(synced, success, stage="sync") > value(before, success, stage="sync")
    assert value(synced, "sla_worker_leads_tracked") == 1
    lag = streams(synced, "sla_worker_sync_lag_seconds")
    assert "hubspot:leads" in lag  # a stream has a cursor once it stored something
    assert 0 <= lag["hubspot:leads"] <= 60  # settled at now minus sync_overlap (1m)
    spent = "sla_worker_ratelimit_requests_total"
    assert value(synced, spent, bucket="search") > value(before, spent, bucket="search")
    assert value(synced, "sla_worker_ratelimit_budget_requests_per_second", bucket="burst") > 0

    run_stage(ctx, "evaluate")
    evaluated = scrape(exporter)
    assert value(evaluated, count, stage="evaluate") == value(synced, count, stage="evaluate") + 1
    breaches = "sla_worker_breaches_open"
    assert value(evaluated, breaches, rule="first_touch", policy="default", team="sales") == 1
    assert value(evaluated, "sla_worker_notices_pending") == 1

    world.clock.advance(timedelta(minutes=5))  # the notice waits; the sync falls behind
    waiting = scrape(exporter)
    assert value(waiting, "sla_worker_notices_oldest_pending_age_seconds") == 300
    later = streams(waiting, "sla_worker_sync_lag_seconds")
    assert later["hubspot:leads"] == lag["hubspot:leads"] + 300

    run_stage(ctx, "deliver")
    delivered = scrape(exporter)
    assert len(world.slack.dms_to("U0LENA")) == 1
    assert value(delivered, "sla_worker_notices_pending") == 0
    assert value(delivered, "sla_worker_notices_oldest_pending_age_seconds") == 0
    assert value(delivered, breaches, rule="first_touch", policy="default", team="sales") == 1


def test_crm_and_slack_errors_are_counted_by_system_and_code(
    world: World, ctx: Context, exporter: Exporter
) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    errors = "sla_worker_api_errors_total"
    crm_error = dict(system="hubspot", kind="permanent", code="VALIDATION_ERROR")
    slack_error = dict(system="slack", kind="transient", code="ratelimited")
    before = scrape(exporter)

    world.hubspot.fail_next(
        1, 400, {"status": "error", "message": "no", "category": "VALIDATION_ERROR"}
    )
    with pytest.raises(SlaWorkerError):
        run_stage(ctx, "sync")
    failed = scrape(exporter)
    assert value(failed, errors, **crm_error) == value(before, errors, **crm_error) + 1
    failures = "sla_worker_stage_failures_total"
    assert value(failed, failures, stage="sync") == value(before, failures, stage="sync") + 1

    run_stage(ctx, "sync")
    run_stage(ctx, "evaluate")
    world.slack.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=30)
    run_stage(ctx, "deliver")
    after = scrape(exporter)
    assert value(after, errors, **slack_error) == value(before, errors, **slack_error) + 1
    assert value(after, "sla_worker_notices_pending") == 1  # kept for the retry


CHILD = """
from datetime import timedelta
from worker import metrics
from worker.errors import TransientError
metrics.stage_finished("sync", timedelta(seconds=2), ok=True)
metrics.count_error("slack", TransientError("slow down", code="ratelimited"))
"""


def test_the_exporter_adds_up_what_each_process_recorded(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    metrics.clear_dead(shared)
    env = {**os.environ, metrics.MULTIPROC_ENV: str(shared)}
    for _ in range(2):  # two pool processes, one after the other
        subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, timeout=60)
    exporter = serve(0, addr="127.0.0.1", multiprocess_dir=shared)
    try:
        samples = scrape(exporter)
        assert value(samples, "sla_worker_stage_duration_seconds_count", stage="sync") == 2
        assert value(samples, "sla_worker_stage_duration_seconds_sum", stage="sync") == 4
        slack = dict(system="slack", kind="transient", code="ratelimited")
        assert value(samples, "sla_worker_api_errors_total", **slack) == 2
        assert value(samples, "sla_worker_stage_last_success_timestamp_seconds", stage="sync")
        assert metrics.clear_dead(shared) > 0  # the next start of the worker begins at zero
        assert value(scrape(exporter), "sla_worker_stage_duration_seconds_count", stage="sync") == 0
    finally:
        exporter.close()


def test_the_store_gauges_say_when_the_store_does_not_answer(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"SLA_CONFIG": str(ROOT / "config/sla.yaml"), "DATABASE_URL": f"sqlite:///{tmp_path}/no/db"}
    )
    with open_context(settings) as unmigrated:
        exporter = serve(0, unmigrated, addr="127.0.0.1")
        try:
            samples = scrape(exporter)
        finally:
            exporter.close()
    assert value(samples, "sla_worker_store_up") == 0
    assert ("sla_worker_leads_tracked", frozenset()) not in samples


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_log_lines_carry_the_stage_and_its_run(world: World, ctx: Context) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    adopt_handler(handler, json=True, secrets=[SLACK_TOKEN])
    logger = logging.getLogger("worker")
    logger.addHandler(handler)
    try:
        world.add_rep()
        world.add_lead(assigned_ago=timedelta(hours=2))
        run_stage(ctx, "sync")
        run_stage(ctx, "evaluate")
        world.slack.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=30)
        run_stage(ctx, "deliver")
    finally:
        logger.removeHandler(handler)
    lines = _json_lines(stream.getvalue())
    retry = next(line for line in lines if "will retry" in str(line["message"]))
    assert retry["stage"] == "deliver" and retry["level"] == "WARNING"
    assert retry["logger"] == "worker.pipeline.deliver"
    assert isinstance(retry["run_id"], str) and len(retry["run_id"]) == 12
    assert str(retry["time"]).endswith("+00:00")


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_tokens_are_redacted_from_messages_arguments_and_tracebacks(as_json: bool) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    adopt_handler(handler, json=as_json, secrets=["hubspot-legacy-key-42"])
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    try:
        logger.warning("posting with %s", "xoxb-1234-5678-abcdefABCDEF")  # in an argument
        logger.warning("sent Authorization: Bearer pat-na1-0f1e2d3c-aaaa-bbbb")
        logger.warning("the key hubspot-legacy-key-42 was refused")  # a configured secret
        try:
            raise ValueError("refused xapp-1-A0-123-abc")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    for secret in ("xoxb-1234", "pat-na1", "legacy-key-42", "xapp-1"):
        assert secret not in out
    assert out.count("[redacted]") == 5  # the traceback shows the raising line too
    assert "Bearer [redacted]" in out and "ValueError" in out  # the traceback is kept
    if as_json:
        assert len(_json_lines(out)) == 4


def test_the_cli_logs_json_lines_and_leaves_no_series_in_a_worker_directory(
    world: World, tmp_path: Path
) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    world.slack.revoke_token()
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = {**world.env(), "LOG_FORMAT": "json", metrics.MULTIPROC_ENV: str(shared)}
    done = run("run-once", cwd=tmp_path, env=env)
    assert done.returncode == 1
    lines = _json_lines(done.stderr)
    rejected = next(line for line in lines if "rejected the bot token" in str(line["message"]))
    assert rejected["stage"] == "deliver" and rejected["level"] == "ERROR"
    assert SLACK_TOKEN not in done.stderr
    assert list(shared.iterdir()) == []  # a CLI command keeps its series to itself


def test_metrics_port_and_log_format_come_from_the_environment() -> None:
    assert Settings.from_env({}).metrics_port == 9464
    assert Settings.from_env({"METRICS_PORT": "0"}).metrics_port == 0
    assert Settings.from_env({"LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="METRICS_PORT"):
        Settings.from_env({"METRICS_PORT": "ninety"})
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        Settings.from_env({"LOG_FORMAT": "xml"})
