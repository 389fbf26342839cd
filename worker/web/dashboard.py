"""``GET /dashboard`` of ``sla-worker web``: the review page for people without a terminal.

Read-only: this period against the last, per team, rep, policy and source, the trend chart,
marketing's side, and the leads breaching now with links into the CRM — the page of
``report --format html`` (``worker.report_page``) with one more section. Query parameters:
``period`` (``this-week`` by default; anything ``report --period`` takes, and ``this-month``,
``this-quarter``) and ``team``.

Who may see it: with ``DASHBOARD_TOKEN`` set, whoever presents it (``Authorization: Bearer``,
or ``?token=`` once, which sets an HttpOnly cookie and redirects to the address without it);
without a token, only requests from this machine (the service binds to 127.0.0.1 by default;
a service exposed on another address serves the dashboard only with a token). A page is
computed at most once per ``CACHE_FOR`` per period and team: each reads every stored lead.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from html import escape
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from worker.errors import ConfigError
from worker.periods import parse_period
from worker.pipeline import period_report
from worker.pipeline.context import Context
from worker.sla import RuleState
from worker.store.db import session_scope
from worker.store.models import Finding, Lead, Owner
from worker.web.server import DASHBOARD_PATH as PATH

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

COOKIE = "sla_dashboard"
#: How long a computed page is served again before it is computed anew.
CACHE_FOR = 300.0
#: Leads listed as breaching now (the most overdue first).
MAX_BREACHING = 50
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class Breaching:
    lead: str
    company: str
    rep: str
    rule: str
    since: datetime | None
    url: str | None


class Dashboard:
    """The dashboard's WSGI side, over a worker context (its config reloaded per page)."""

    def __init__(
        self, ctx: Context, token: str | None, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._ctx = ctx
        self._token = token
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str], tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        given = query.pop("token", None)
        if given is not None and self._token and hmac.compare_digest(given, self._token):
            # Set once from the address, then kept out of it (and out of logs and history).
            cookie = f"{COOKIE}={given}; HttpOnly; SameSite=Strict; Path={PATH}"
            location = PATH + (f"?{urlencode(query)}" if query else "")
            start_response("303 See Other", [("Location", location), ("Set-Cookie", cookie)])
            return [b""]
        if not self._allowed(environ):
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8")])
            return [_REFUSAL.encode()]
        try:
            page = self._page(query.get("period", "this-week"), query.get("team"))
        except ConfigError as e:
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{e}\n".encode()]
        except SQLAlchemyError as e:
            log.warning("dashboard: the store did not answer: %s", type(e).__name__)
            start_response(
                "503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")]
            )
            return [b"The store did not answer (is the database up and migrated?). Try again.\n"]
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
            ],
        )
        return [page]

    def _allowed(self, environ: WSGIEnvironment) -> bool:
        if not self._token:
            return environ.get("REMOTE_ADDR") in _LOOPBACK
        presented = ""
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header.startswith("Bearer "):
            presented = header[len("Bearer ") :]
        else:
            cookies = SimpleCookie(environ.get("HTTP_COOKIE", ""))
            if COOKIE in cookies:
                presented = cookies[COOKIE].value
        return bool(presented) and hmac.compare_digest(presented, self._token)

    def _page(self, period_text: str, team: str | None) -> bytes:
        key = (period_text, team or "")
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and self._monotonic() - cached[0] < CACHE_FOR:
                return cached[1]
        ctx = self._ctx
        now = ctx.clock()
        ctx.config.refresh(now)
        agreement = ctx.agreement
        if team is not None and team not in agreement.teams:
            raise ConfigError(f'team: no team "{team}" in the config')
        calendar = agreement.teams[team or next(iter(agreement.teams))].calendar
        period = parse_period(period_text, now, ZoneInfo(calendar.timezone))
        page = period_report.render(ctx.sessions, agreement, period, now, "html", team=team)
        assert isinstance(page, str)
        breaching = self._breaching(team)
        body = page.replace("</body>", _breaching_html(breaching) + "</body>").encode()
        with self._lock:
            self._cache[key] = (self._monotonic(), body)
        return body

    def _breaching(self, team: str | None) -> list[Breaching]:
        agreement = self._ctx.agreement
        record_url = agreement.config.crm.record_url
        found = []
        with session_scope(self._ctx.sessions) as session:
            rows = session.execute(
                select(Finding.rule, Finding.deadline_at, Lead, Owner)
                .join(Lead, Lead.id == Finding.lead_id)
                .outerjoin(Owner, Owner.id == Lead.owner_id)
                .where(Finding.state == RuleState.BREACHED, Lead.archived.is_(False))
                .order_by(Finding.deadline_at, Lead.id)
            )
            for rule, deadline, lead, owner in rows:
                if team is not None:
                    email, teams = (owner.email, owner.teams) if owner else (None, [])
                    if agreement.team_for(email, teams).name != team:
                        continue
                found.append(
                    Breaching(
                        lead.display_name,
                        lead.company or "",
                        owner.display_name if owner else "unassigned",
                        rule,
                        deadline,
                        record_url.replace("{id}", lead.id) if record_url else None,
                    )
                )
                if len(found) == MAX_BREACHING:
                    break
        return found


_REFUSAL = (
    "The dashboard needs its token: open it once as /dashboard?token=… (DASHBOARD_TOKEN), or "
    "send Authorization: Bearer …; without DASHBOARD_TOKEN it is served to this machine only.\n"
)


def _breaching_html(leads: list[Breaching]) -> str:
    if not leads:
        return "<h2>Breaching now</h2><p>No lead is past a deadline.</p>"
    rows = "".join(
        "<tr><td>"
        + (
            f'<a href="{escape(lead.url)}">{escape(lead.lead)}</a>'
            if lead.url
            else escape(lead.lead)
        )
        + f"</td><td>{escape(lead.company)}</td><td>{escape(lead.rep)}</td>"
        f"<td>{escape(lead.rule.replace('_', ' '))}</td>"
        f"<td>{'' if lead.since is None else f'{lead.since:%Y-%m-%d %H:%M} UTC'}</td></tr>"
        for lead in leads
    )
    return (
        f"<h2>Breaching now</h2><table data-dimension=breaching><tr><th>lead</th><th>company</th>"
        f"<th>rep</th><th>deadline</th><th>passed at</th></tr>{rows}</table>"
    )
