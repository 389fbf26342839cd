"""The ``sla-worker`` command line (also ``python -m worker``).

Each subcommand parses its arguments, builds what it needs and calls the same pipeline
functions the Celery tasks call. Errors a user can fix (config, missing token) print one clear
message and exit 2; nothing here prints a token.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from worker import __version__, metrics
from worker.errors import ConfigError, SlaWorkerError
from worker.logs import setup_logging
from worker.pipeline.context import open_context
from worker.settings import Settings
from worker.store.db import normalise_url

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from worker.pipeline.deliver import Post
    from worker.pipeline.recycle import RecycleItem

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: A service the command needs (the database) did not answer: try again when it is back.
EXIT_UNAVAILABLE = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sla-worker",
        description="Makes the sales-marketing lead SLA enforce itself.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("--version", action="version", version=f"sla-worker {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole pipeline once against local fakes")
    demo.add_argument("--keep", action="store_true", help="keep the demo database afterwards")

    run_once = sub.add_parser("run-once", help="sync, evaluate and deliver once, now")
    run_once.add_argument(
        "--dry-run", action="store_true", help="print what would be sent; send nothing"
    )

    check = sub.add_parser("check-config", help="validate a config file and list every error")
    check.add_argument("path", nargs="?", help="default: $SLA_CONFIG or config/sla.yaml")
    check.add_argument(
        "--online", action="store_true", help="also run preflight against Slack and the CRM"
    )

    sub.add_parser(
        "preflight",
        help="check the config against the real Slack workspace and CRM before going live",
    )

    explain = sub.add_parser("explain", help="print why a lead is where it is, as a timeline")
    explain.add_argument("lead_id")

    leads = sub.add_parser("leads", help="list tracked leads (most urgent first) to find an id")
    leads.add_argument("--breached", action="store_true", help="only leads with a breached rule")
    leads.add_argument("--rep", metavar="EMAIL", help="only the leads this rep owns")
    leads.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")

    worker = sub.add_parser("worker", help="run a Celery worker (with --beat: and the scheduler)")
    worker.add_argument("--beat", action="store_true", help="also run beat (one machine only)")
    worker.add_argument("--concurrency", type=int, default=2)

    health = sub.add_parser(
        "health", help="is enforcement working? each part with its reason; exit 1 when one fails"
    )
    health.add_argument("--json", action="store_true", help="one JSON object per check")
    health.add_argument(
        "--offline", action="store_true", help="do not ask the CRM and Slack (stored state only)"
    )
    health.add_argument(
        "--beat", action="store_true", help="check this machine's beat instead (its healthcheck)"
    )

    backtest = sub.add_parser(
        "backtest", help="judge stored leads under a candidate config and show what changes"
    )
    backtest.add_argument("candidate", help="the candidate config file to compare with")
    backtest.add_argument(
        "--at", help="judge as of this ISO time, UTC unless it has an offset (default: now)"
    )
    backtest.add_argument(
        "--since",
        metavar="DURATION",
        help="replay the period from this long before --at (e.g. 30d): warnings, breaches, "
        "escalations, messages per person and day, recycles, and the leads whose outcome changes",
    )

    report = sub.add_parser("report", help="compliance per rep, team and policy; marketing's side")
    report.add_argument(
        "--post", action="store_true", help="also queue marketing's part for its channel"
    )
    report.add_argument("--csv", metavar="FILE", help="also write the compliance rows as CSV")
    report.add_argument(
        "--period",
        metavar="PERIOD",
        help="week, month or quarter (the last complete one) or FROM..TO (ISO dates, both "
        "included): figures over that period per rep, team, policy and lead source",
    )
    report.add_argument("--team", help="with --period: that team's leads only")
    report.add_argument(
        "--format",
        choices=("table", "csv", "json", "html", "png"),
        default="table",
        help="with --period; html and png add the trend over the periods before it",
    )
    report.add_argument("--output", metavar="FILE", help="with --period: write there, not stdout")

    sub.add_parser(
        "review",
        help="post the review meeting's report (review: in the config) if its slot has come",
    )

    recycle = sub.add_parser("recycle", help="hand stale leads back to marketing nurturing")
    recycle.add_argument("--dry-run", action="store_true", help="list what would change")
    recycle.add_argument("--undo", metavar="RUN_ID", help="write back what a run changed")

    web = sub.add_parser(
        "web", help="serve Slack's slash commands and interactivity (POST /slack/events)"
    )
    web.add_argument("--host", help="default: $WEB_HOST or 127.0.0.1")
    web.add_argument("--port", type=int, help="default: $WEB_PORT or 3000; 0: a free port")
    web.add_argument(
        "--socket-mode",
        action="store_true",
        help="take Slack's requests over Socket Mode (no public URL; needs SLACK_APP_TOKEN, "
        "and is the default when it is set); only GET /healthz listens on the port",
    )

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="apply migrations up to the latest schema")

    for name, what in (("fake-hubspot", "HubSpot"), ("fake-slack", "Slack")):
        fake = sub.add_parser(name, help=f"serve a fake {what} API on 127.0.0.1")
        fake.add_argument("--port", type=int, default=0, help="default: a free port")
        fake.add_argument("--seed", action="store_true", help="load the demo's sales team")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "worker":  # a Celery worker shares its series with its pool's processes
        metrics.keep_in_process()
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        return _config_error(e)
    quiet = args.command == "demo"  # the demo prints what matters itself
    setup_logging(
        logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
        json=settings.log_format == "json",
        secrets=settings.secrets(),
    )
    # Migrations run on every start; their per-plugin INFO lines help no one.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        code = _run(args, settings)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (`sla-worker backtest … | head`): not an error of ours. Point
        # stdout at /dev/null so the interpreter's last flush is quiet too (Python docs,
        # library/signal, "Note on SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except ConfigError as e:
        return _config_error(e)
    except SlaWorkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except (OperationalError, InterfaceError) as e:
        if args.verbose:
            raise
        # One line an admin can act on; the driver's full story is under --verbose.
        where = make_url(normalise_url(settings.database_url)).render_as_string(hide_password=True)
        reason = str(e.orig).strip().splitlines()[0] if e.orig else type(e).__name__
        print(f"error: the database at {where} is unreachable: {reason}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def _config_error(e: ConfigError) -> int:
    where = f" in {e.source}" if e.source else ""
    print(f"configuration error{where}:\n{e}", file=sys.stderr)
    return EXIT_USAGE


def _run(args: argparse.Namespace, settings: Settings) -> int:
    command = args.command
    if command == "check-config":
        path = Path(args.path) if args.path else settings.config_path
        code = _check_config(path)
        if code != EXIT_OK or not args.online:
            return code
        return _preflight(settings, path)
    if command == "preflight":
        return _preflight(settings, settings.config_path)
    if command == "db":
        from worker.store.db import upgrade

        upgrade(settings.database_url)
        print("database schema is up to date")
        return EXIT_OK
    if command == "health":
        return _health(settings, as_json=args.json, beat=args.beat, live=not args.offline)
    if command == "backtest":
        return _backtest(settings, Path(args.candidate), args.at, args.since)
    if command == "report" and args.period:
        return _period_report(settings, args.period, args.team, args.format, args.output)
    if command == "report":
        if args.team or args.output or args.format != "table":
            raise ConfigError("--team, --format and --output go with --period")
        return _report(settings, post=args.post, csv_path=args.csv)
    if command == "review":
        return _review(settings)
    if command == "recycle":
        return _recycle(settings, dry_run=args.dry_run, undo_run=args.undo)
    if command == "demo":
        from worker.demo import run_demo

        return run_demo(keep=args.keep)
    if command == "run-once":
        return _run_once(settings, dry_run=args.dry_run)
    if command == "explain":
        from worker.explain import explain_text

        with open_context(settings) as ctx:
            print(explain_text(ctx, args.lead_id, ctx.clock()))
        return EXIT_OK
    if command == "leads":
        from worker.leads import leads_text, list_leads
        from worker.store.db import session_scope

        with open_context(settings) as ctx, session_scope(ctx.sessions) as session:
            lines = list_leads(session, breached=args.breached, rep=args.rep, limit=args.limit)
        print(leads_text(lines))
        return EXIT_OK
    if command == "worker":
        from worker.celery_app import app

        argv = ["worker", "--loglevel=INFO", f"--concurrency={args.concurrency}"]
        if args.beat:
            argv.append("--beat")
        app.worker_main(argv)
        return EXIT_OK
    if command == "web":
        return _web(settings, host=args.host, port=args.port, socket_mode=args.socket_mode)
    if command in ("fake-hubspot", "fake-slack"):
        return _serve_fake(command, args.port, args.seed)
    raise AssertionError(f"unhandled command {command}")


def _preflight(settings: Settings, path: Path) -> int:
    """The config at ``path`` against the workspace and the CRM; exit 1 listing every problem."""
    from worker.config import Agreement, load_config
    from worker.crm.hubspot import HubSpotClient
    from worker.pipeline.context import make_crm_client, make_slack_client
    from worker.preflight import preflight
    from worker.slack.client import SlackClient

    config = load_config(path)
    crm = make_crm_client(settings, Agreement(config), max_retries=1)
    slack = make_slack_client(settings)
    assert isinstance(crm, HubSpotClient) and isinstance(slack, SlackClient)
    problems = preflight(config, crm, slack)
    if not problems:
        print(f"{path}: ready: every channel, person, owner and property it names exists")
        return EXIT_OK
    print(f"{path}: {len(problems)} problems in the workspace or the CRM", file=sys.stderr)
    for problem in problems:
        print(f"  {problem.line()}", file=sys.stderr)
    return EXIT_FAILED


def _check_config(path: Path) -> int:
    from worker.config import Agreement, load_config

    try:
        config = load_config(path)
        Agreement(config)
    except ConfigError as e:
        print(f"{path}: invalid", file=sys.stderr)
        for line in str(e).splitlines():
            print(f"  {line}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"{path}: OK ({len(config.calendars)} calendars, {len(config.teams)} teams, "
        f"{len(config.policies)} policies, {len(config.escalation)} escalation levels)"
    )
    return EXIT_OK


def _backtest(
    settings: Settings, candidate_path: Path, at_text: str | None, since: str | None
) -> int:
    from datetime import UTC, datetime

    from worker.config import load_agreement
    from worker.durations import parse_wall_duration
    from worker.pipeline.backtest import backtest, backtest_text, replay, replay_text
    from worker.progress import progress_bar

    candidate = load_agreement(candidate_path)
    try:
        at = datetime.fromisoformat(at_text) if at_text else datetime.now(UTC)
    except ValueError:
        raise ConfigError(f'--at: "{at_text}" is not an ISO time like 2026-11-24T10:00') from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    end = at.astimezone(UTC)
    try:
        span = parse_wall_duration(since) if since else None
    except ValueError as e:
        raise ConfigError(f'--since: "{since}": {e}') from None
    with open_context(settings) as ctx:
        if span is None:
            print(backtest_text(backtest(ctx.sessions, ctx.agreement, candidate, end)))
            return EXIT_OK
        with progress_bar("replaying") as progress:
            result = replay(
                ctx.sessions, ctx.agreement, candidate, end - span, end, progress=progress
            )
    print(replay_text(result))
    return EXIT_OK


def _report(settings: Settings, *, post: bool, csv_path: str | None = None) -> int:
    from worker.pipeline import report as report_stage
    from worker.pipeline.report import report_text, write_compliance_csv
    from worker.store.db import upgrade

    upgrade(settings.database_url)
    with open_context(settings) as ctx:
        summary = report_stage.run(ctx, ctx.clock(), post=post)
    report, queued = summary.report, summary.queued
    assert report is not None
    print(report_text(report))
    if csv_path:
        print(f"{write_compliance_csv(report, csv_path)} compliance rows written to {csv_path}")
    if post:
        print(
            "marketing report queued for delivery"
            if queued
            else "nothing queued (no "
            "marketing channel configured, or today's report was already queued)"
        )
    return EXIT_OK


def _period_report(
    settings: Settings, period_text: str, team: str | None, form: str, output: str | None
) -> int:
    from worker.periods import parse_period
    from worker.pipeline import period_report
    from worker.progress import progress_bar
    from worker.store.db import upgrade

    upgrade(settings.database_url)
    with open_context(settings) as ctx:
        agreement = ctx.agreement
        if team is not None and team not in agreement.teams:
            known = ", ".join(sorted(agreement.teams))
            raise ConfigError(f'--team: no team "{team}" in the config (teams: {known})')
        calendar = agreement.teams[team or next(iter(agreement.teams))].calendar
        now = ctx.clock()
        period = parse_period(period_text, now, ZoneInfo(calendar.timezone))
        with progress_bar(period.label) as progress:
            report = period_report.render(
                ctx.sessions, agreement, period, now, form, team=team, progress=progress
            )
    if isinstance(report, str) and not report.endswith("\n"):
        report += "\n"
    if output:
        Path(output).write_bytes(report.encode("utf-8") if isinstance(report, str) else report)
        print(f"{period.label}: written to {output}")
    elif isinstance(report, str):
        print(report, end="")
    elif sys.stdout.isatty():
        raise ConfigError("--format png writes an image: give --output FILE or redirect it")
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(report)
        sys.stdout.flush()
    return EXIT_OK


def _review(settings: Settings) -> int:
    from worker.pipeline.review import ReviewSummary
    from worker.pipeline.stages import run_stage
    from worker.store.db import upgrade

    upgrade(settings.database_url)
    with open_context(settings) as ctx:
        if ctx.agreement.config.review is None:
            raise ConfigError("review: the config has no review section (channel, every, at)")
        summary = run_stage(ctx, "review")
    assert isinstance(summary, ReviewSummary)
    if summary.failed:
        print(f"review not posted (the next run tries again): {summary.failed}", file=sys.stderr)
        return EXIT_FAILED
    if summary.already_running:
        print("another worker is posting the review now")
    elif summary.posted:
        print(f"review of {summary.posted} posted")
    else:
        print("nothing to post: the latest slot's period was posted already")
    return EXIT_OK


def _recycle(settings: Settings, *, dry_run: bool, undo_run: str | None) -> int:
    from worker.pipeline import recycle
    from worker.store.db import upgrade

    upgrade(settings.database_url)
    with open_context(settings) as ctx:
        if ctx.agreement.config.recycle is None and not undo_run:
            print("recycling is off: the config has no recycle: section")
            return EXIT_OK
        if undo_run:
            summary = recycle.run_undo(ctx, ctx.clock(), undo_run, dry_run=dry_run)
        else:
            summary = recycle.run(ctx, ctx.clock(), dry_run=dry_run)
    if summary.already_running:
        print("another worker is recycling right now; nothing was changed, try again later")
        return EXIT_FAILED
    if summary.unknown_run:
        print(f"no recycle run {undo_run!r}: a run id is printed by each recycle run")
        return EXIT_FAILED
    _print_items(summary.items)
    if undo_run:
        verb = "would be restored" if dry_run else "restored"
        print(
            f"run {undo_run}: {summary.recycled} leads {verb}, {summary.skipped} skipped "
            f"(changed since the run), {summary.failed} failed"
        )
        return EXIT_OK if summary.failed == 0 else EXIT_FAILED
    verb = "would recycle" if dry_run else "recycled"
    print(
        f"run {summary.run_id}: {summary.due} due, "
        f"{summary.recycled} {verb}, "
        f"{summary.skipped} skipped, {summary.failed} failed, {summary.waiting} over the cap"
        + (f", {summary.proposed} proposed for approval" if summary.proposed else "")
        + ("" if dry_run else f"; undo with: sla-worker recycle --undo {summary.run_id}")
    )
    return EXIT_OK if summary.failed == 0 else EXIT_FAILED


def _print_items(items: Sequence[RecycleItem]) -> None:
    """One lead a line, then why and what changes (before → after)."""
    for item in items:
        changes = ", ".join(
            f"{name} {item.before.get(name) or '∅'} → {value or '∅'}"
            for name, value in item.after.items()
        )
        print(f"{item.outcome:<14} lead {item.lead_id} {item.name} (owner {item.owner})")
        if item.reason:
            print(f"               because {item.reason}")
        if changes:
            print(f"               {changes}")


def _health(settings: Settings, *, as_json: bool, beat: bool, live: bool) -> int:
    """Each part of enforcement with the reason when it fails; exit 1 when one does. Needs no
    valid config and creates nothing (see worker/health.py)."""
    from datetime import UTC, datetime

    from worker import health

    now = datetime.now(UTC)
    checks = [health.beat_check(now)] if beat else health.check_all(settings, now, live=live)
    if as_json:
        print(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        for check in checks:
            print(check.line())
    return EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED


def _why_held(post: Post) -> str:
    if post.digest_key is not None:
        return "the next digest time"
    return "working hours, or the grouping window"


def _run_once(settings: Settings, *, dry_run: bool) -> int:
    from datetime import UTC, datetime

    from worker.pipeline.deliver import Post
    from worker.pipeline.stages import run_once
    from worker.store.db import upgrade

    upgrade(settings.database_url)
    with open_context(settings) as ctx:
        result = run_once(ctx, dry_run=dry_run)
    would_send = result.pop("would_send", None)
    if isinstance(would_send, list):
        from worker.slack.messages import readable

        now = datetime.now(UTC)
        for post in would_send:
            assert isinstance(post, Post)
            when = "now"
            if post.due_at is not None and post.due_at > now:
                when = f"at {post.due_at:%a %d %b %H:%M} UTC (held until then: {_why_held(post)})"
            print(f"--- would send to {post.recipient} {when} ---")
            print(f"{readable(post.message.text)}\n")
    print(json.dumps(result, indent=2, default=str))
    failed = result.get("failed")
    if isinstance(failed, dict) and failed:
        for stage, reason in failed.items():
            print(f"error: {stage} failed: {reason}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _web(settings: Settings, *, host: str | None, port: int | None, socket_mode: bool) -> int:
    """Serve Slack's requests until interrupted; commands are answered by the workers. Over
    Socket Mode with ``--socket-mode`` or whenever SLACK_APP_TOKEN is set."""
    from worker.web.bolt_app import make_bolt_app
    from worker.web.handoff import submit_action, submit_command
    from worker.web.server import WebServer, serve

    host = host or settings.web_host
    port = settings.web_port if port is None else port
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port: {port} is not a port number (0: a free port)")
    if socket_mode or settings.slack_app_token:
        return _web_socket_mode(settings, host, port)
    bolt_app = make_bolt_app(settings, submit_command, submit_action)
    with ExitStack() as stack:
        dashboard = _dashboard(settings, host, stack)

        def ready(server: WebServer) -> None:
            print(f"sla-worker web: Slack request URL {server.events_url}", flush=True)
            if dashboard is not None:
                print(f"sla-worker web: dashboard {server.base_url}/dashboard", flush=True)

        serve(bolt_app, host, port, ready=ready, dashboard=dashboard)
    return EXIT_OK


def _dashboard(settings: Settings, host: str, stack: ExitStack) -> WSGIApplication | None:
    """The dashboard, over a worker context kept open in ``stack``; None (said why) when the
    service listens beyond this machine without ``DASHBOARD_TOKEN``."""
    from worker.web.dashboard import Dashboard

    if not settings.dashboard_token and host not in ("127.0.0.1", "::1", "localhost"):
        print(
            f"sla-worker web: no dashboard: it listens on {host} and DASHBOARD_TOKEN is not set",
            flush=True,
        )
        return None
    try:
        ctx = stack.enter_context(open_context(settings))
    except ConfigError as e:
        print(f"sla-worker web: no dashboard: {e}", flush=True)
        return None
    return Dashboard(ctx, settings.dashboard_token)


def _web_socket_mode(settings: Settings, host: str, port: int) -> int:
    from worker.web.bolt_app import make_bolt_app
    from worker.web.handoff import submit_action, submit_command
    from worker.web.server import HEALTH_PATH, WebServer
    from worker.web.socket_mode import app_token, serve_socket_mode

    app_token(settings)  # a missing or mistaken token is named before Slack is asked anything
    bolt_app = make_bolt_app(settings, submit_command, submit_action, socket_mode=True)

    with ExitStack() as stack:
        dashboard = _dashboard(settings, host, stack)

        def ready(server: WebServer) -> None:
            print(
                f"sla-worker web: connected to Slack over Socket Mode; health {server.base_url}"
                f"{HEALTH_PATH}",
                flush=True,
            )
            if dashboard is not None:
                print(f"sla-worker web: dashboard {server.base_url}/dashboard", flush=True)

        serve_socket_mode(bolt_app, settings, host, port, ready=ready, dashboard=dashboard)
    return EXIT_OK


def _serve_fake(command: str, port: int, seed: bool) -> int:
    from worker.demo import seeded_hubspot, seeded_slack

    if command == "fake-hubspot":
        from worker.fakes.hubspot import FakeHubSpot

        hubspot = seeded_hubspot() if seed else FakeHubSpot()
        base = hubspot.start(port)
        print(
            f"fake HubSpot on {base}  (HUBSPOT_BASE_URL={base} HUBSPOT_TOKEN={hubspot.token})",
            flush=True,
        )
        hubspot.serve_forever()
    else:
        from worker.fakes.slack import FakeSlack

        slack = seeded_slack() if seed else FakeSlack()

        def echo(_: int) -> None:  # a line per message, as it arrives
            print(slack.messages[-1].line(), flush=True)

        # Before the banner: whoever reads it may post at once, and a message that came in
        # before the hook was set went unechoed.
        slack.during_call("chat.postMessage", echo, done=True)
        slack.start(port)
        print(
            f"fake Slack on {slack.api_url}  (SLACK_API_URL={slack.api_url} "
            f"SLACK_APP_TOKEN={slack.app_token} SLACK_BOT_TOKEN={slack.token}); "
            f"messages received: {slack.base_url}/_messages",
            flush=True,
        )
        slack.serve_forever()
    return EXIT_OK
