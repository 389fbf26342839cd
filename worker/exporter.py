"""The ``/metrics`` endpoint for Prometheus: what the worker's processes recorded
(:mod:`worker.metrics`) plus gauges read from the store at each scrape.

The Celery worker serves it from its main process on ``METRICS_PORT`` (``worker.celery_app``);
tests call :func:`serve` on a free port. The store gauges are computed here only, one aggregate
query each when Prometheus asks, so they are right however many processes work. A scrape never
writes, and a store that does not answer costs the store gauges only: ``sla_worker_store_up``
says 0 and the rest is served.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.exc import SQLAlchemyError

from worker.pipeline.context import Context
from worker.settings import DEFAULT_METRICS_PORT
from worker.store import stats

log = logging.getLogger(__name__)


class StoreCollector:
    """Gauges from the store, read when collected: leads tracked, open breaches by rule, policy
    and team, unsent notices and how late the oldest due one is, sync lag per stream."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def collect(self) -> Iterator[Metric]:
        now = self._ctx.clock()
        # The owners' teams come from the config as it is now (an invalid edit keeps the last).
        self._ctx.config.refresh(now)
        agreement = self._ctx.agreement
        try:
            with self._ctx.sessions() as session:
                leads = stats.tracked_leads(session)
                breaches = stats.open_breaches(session)
                backlog = stats.outbox_backlog(session, now)
                read_up_to = stats.sync_read_up_to(session)
        except SQLAlchemyError as e:
            log.warning("metrics: the store did not answer: %s", type(e).__name__)
            yield _store_up(False)
            return
        yield _store_up(True)
        yield _gauge("sla_worker_leads_tracked", "Leads stored and not archived in the CRM.", leads)
        by_team: Counter[tuple[str, str, str]] = Counter()
        for b in breaches:
            team = agreement.team_for(b.owner_email, b.owner_teams).name
            by_team[(b.rule, b.policy, team)] += b.count
        family = GaugeMetricFamily(
            "sla_worker_breaches_open",
            "Rules breached now (findings in state breached) of tracked leads.",
            labels=["rule", "policy", "team"],
        )
        for labels, count in sorted(by_team.items()):
            family.add_metric(list(labels), count)
        yield family
        yield _gauge(
            "sla_worker_notices_pending",
            "Notices in the outbox not yet sent (waiting for their time, or being sent).",
            backlog.unsent,
        )
        late = (now - backlog.oldest_due_at).total_seconds() if backlog.oldest_due_at else 0.0
        yield _gauge(
            "sla_worker_notices_oldest_pending_age_seconds",
            "How long the oldest unsent notice has been due (0: none is due); notices held "
            "for working hours or a digest time count from that time.",
            max(0.0, late),
        )
        lag = GaugeMetricFamily(
            "sla_worker_sync_lag_seconds",
            "How far behind the CRM each sync stream may be: now minus the instant before which "
            "every change is stored.",
            labels=["stream"],
        )
        for stream, at in sorted(read_up_to.items()):
            lag.add_metric([stream], max(0.0, (now - at).total_seconds()))
        yield lag


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _store_up(up: bool) -> GaugeMetricFamily:
    return _gauge("sla_worker_store_up", "Whether the store answered this scrape.", int(up))


@dataclass
class Exporter:
    """A running ``/metrics`` server; :meth:`close` stops it."""

    server: WSGIServer
    thread: threading.Thread
    ctx: Context | None

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"  # from this machine

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def forget_after_fork(self) -> None:
        """In a process forked from the one serving (a pool child): let go of the inherited
        listening socket and database connections, which belong to the parent."""
        self.server.socket.close()
        if self.ctx is not None:
            self.ctx.engine.dispose(close=False)


def serve(
    port: int = DEFAULT_METRICS_PORT,
    ctx: Context | None = None,
    *,
    addr: str = "0.0.0.0",
    multiprocess_dir: Path | None = None,
) -> Exporter:
    """Serve ``/metrics`` on ``port`` (0: a free one) in a daemon thread of this process.

    With ``multiprocess_dir`` the series are the sum of every process that wrote there (see
    :mod:`worker.metrics`); without, this process's own. With ``ctx``, the store's gauges too.
    """
    registry = CollectorRegistry()
    if multiprocess_dir is not None:
        MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
    else:
        registry.register(REGISTRY)
    if ctx is not None:
        registry.register(StoreCollector(ctx))
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return Exporter(server, thread, ctx)
