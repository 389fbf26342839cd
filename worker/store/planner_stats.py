"""PostgreSQL's statistics of the tables a pass reads by key, kept current while the pass
itself grows them.

Evaluate reads each batch's findings, notices, touches and status history with
``column = ANY(:ids)``. On a table that was never analysed the planner knows nothing of the
column's distinct values: it takes the default selectivity for each of the 500 ids, finds that
nearly every row matches, and scans the whole table — once per batch, so a first pass, which
fills the outbox and the findings as it goes, is quadratic. Measured with 1,000,000 leads
(``pg_stat_user_tables``): 500 sequential scans of the outbox, findings and status history a
quarter of the way in, and the PostgreSQL backends using more CPU than the worker. Planning each
query anew (``plan_each_query``) does not help: the planner's estimate is the problem, not a
stale plan.

Autovacuum analyses a table once a tenth of it changed, a minute or so later — if it runs: it
can be off (this machine's CI server has it off), behind on a busy server, or not yet awake
when a first sync and pass load a million rows. PostgreSQL's advice is to run ANALYZE "just after
making major changes in the contents of a table" (the ANALYZE reference page, Notes, for when
autovacuum is disabled; "Populating a Database" after a bulk load); the worker does so itself,
for its own tables, when one was never analysed or changed by more rows than it held when last
analysed (at least 1,000): a table growing from empty to 3.6 million rows is analysed about a
dozen times, each a sample of 30,000 rows. ``n_distinct`` is kept as a share of the rows, so
statistics taken at half the size still pick the index. Only one worker analyses at a time (an
advisory lock); the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from worker.store.db import session_scope

log = logging.getLogger(__name__)

#: The tables sync and evaluate read by key (lead, touch, owner id) while they fill them.
READ_BY_KEY = (
    "leads",
    "owners",
    "touches",
    "touch_leads",
    "lead_status_changes",
    "findings",
    "outbox",
    "acknowledgements",
    "snoozes",
)
#: The fewest changed rows that make a table's statistics stale (an empty table's stay).
MIN_CHANGED = 1_000
#: pg_try_advisory_xact_lock's key: "sla-work" as eight bytes, apart from any other lock.
_LOCK = 0x736C612D776F726B

_STALE = text(
    """
    SELECT s.relname
    FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
    WHERE s.schemaname = current_schema() AND s.relname = ANY(:tables)
      AND (c.reltuples < 0 OR s.n_mod_since_analyze > GREATEST(:least, c.reltuples))
    ORDER BY s.relname
    """
)


def stale(session: Session, tables: Sequence[str] = READ_BY_KEY) -> list[str]:
    """Those of ``tables`` never analysed (``reltuples`` -1; the change counters alone do not
    tell: they start at zero in a database restored or copied from a template), or whose rows
    changed by more than they held when last analysed."""
    if session.get_bind().dialect.name != "postgresql":
        return []
    rows = session.execute(_STALE, {"tables": list(tables), "least": MIN_CHANGED})
    return [name for (name,) in rows]


def _flush_own_counters(session: Session) -> None:
    """Have this connection's backend publish its change counters when this transaction ends:
    PostgreSQL does so at most once a second (15 and later), and a pass's own last batches
    would otherwise count only a second later. (Before 15 they go to the statistics collector
    on their own.)"""
    if (session.connection().dialect.server_version_info or (0,)) >= (15,):
        session.execute(text("SELECT pg_stat_force_next_flush()"))


def refresh(sessions: Callable[[], Session], tables: Sequence[str] = READ_BY_KEY) -> list[str]:
    """ANALYZE the stale ones of ``tables`` (PostgreSQL; nothing on SQLite, whose planner takes
    an index for an IN list without statistics); returns those analysed. Skipped, returning
    none, while another worker analyses, or when a table's lock is not free within a second
    (a VACUUM holds it): the next call tries again."""
    try:
        with session_scope(sessions) as session:
            if session.get_bind().dialect.name != "postgresql":
                return []
            _flush_own_counters(session)
        with session_scope(sessions) as session:
            names = stale(session, tables)
            if not names:
                return []
            locked = session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _LOCK})
            if not locked.scalar():
                return []
            session.execute(text("SET LOCAL lock_timeout = '1s'"))
            # Names from the catalog, matched against our own list above: safe to quote in.
            session.execute(text("ANALYZE " + ", ".join(f'"{name}"' for name in names)))
    except OperationalError as e:
        log.info("planner statistics not refreshed now (%s)", e.orig or e)
        return []
    log.info("planner statistics refreshed: %s", ", ".join(names))
    return names
