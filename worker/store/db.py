"""Database engines and sessions from a URL, and schema upgrades through Alembic.

SQLite is the embedded default, PostgreSQL the production store; both run the same migrations.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import ColumnElement, Engine, Text, any_, create_engine, event, literal, text
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: The errors of a database that cannot be reached (down, restarting, connection cut).
UNREACHABLE = (OperationalError, InterfaceError)
#: Seconds between tries while the database is unreachable: about half a minute in all, the
#: time a PostgreSQL restart or a failover takes.
RETRY_WAITS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def normalise_url(url: str) -> str:
    """Let users write ``postgresql://`` and still get psycopg 3 (not the absent psycopg2)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets the worker, beat and the CLI read while one of them writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    engine = create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _utc_session(dbapi_connection: Any, _record: Any) -> None:
        # Time stamps come back in the session's time zone. The server's default is often
        # "Etc/UTC", which psycopg reads as a ZoneInfo (psycopg/_tz.py maps only "UTC" to
        # datetime.UTC), and converting every value read to UTC then cost a third of
        # reading a batch's findings. In UTC they arrive as the store keeps them.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.commit()

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: Callable[[], Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def retrying(
    factory: Callable[[], Session],
    work: Callable[[Session], _T],
    what: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> _T:
    """``work(session)`` in a transaction of its own, tried again while the database is
    unreachable (waits of :data:`RETRY_WAITS`); the last error is raised when it stays so.
    For the writes that settle what already happened outside (a lease given back, a message
    Slack accepted): a short outage must not leave them undone. ``work`` must be idempotent
    (a commit whose answer was lost may have landed)."""
    for wait in (*RETRY_WAITS, None):
        try:
            with session_scope(factory) as session:
                return work(session)
        except UNREACHABLE:
            if wait is None:
                raise
            log.warning("database unreachable while %s; trying again in %ss", what, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def among(session: Session, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``column = ANY(CAST(:array AS type[]))``: one
    parameter whatever the count, so the statement's text is the same for every batch. An IN
    list of 500 values is a different text each time: psycopg parses such a long statement on
    every execution (its cache keeps short ones) and SQLAlchemy renders the 500 placeholders,
    which was a quarter of an evaluate pass (py-spy, 10,000 leads due; the pass 18 % faster
    without). The array goes as its text (:func:`array_literal`)."""
    if session.get_bind().dialect.name != "postgresql":
        return cast("ColumnElement[bool]", column.in_(values))
    array = sql_cast(literal(array_literal(values), Text()), postgresql.ARRAY(column.type))
    return cast("ColumnElement[bool]", column == any_(array))


#: Values per ``IN (...)`` list: far below SQLite's and PostgreSQL's parameter limits.
CHUNK = 500


def chunks(values: Sequence[_T]) -> list[Sequence[_T]]:
    """``values`` in slices of :data:`CHUNK`, one query each."""
    return [values[i : i + CHUNK] for i in range(0, len(values), CHUNK)]


def array_literal(values: Iterable[Any]) -> str:
    """PostgreSQL's text form of a one-dimensional array (``{"a","b",NULL}``), for a parameter
    cast to an array type (``CAST(:p AS varchar[])``). psycopg adapts a Python list element by
    element in Python, quoting each with a regular expression: for a batch's 500 ids twice as
    slow as this, for 500 time stamps two and a half times (measured per statement), and the
    arrays of a batch's writes were a fifth of a first pass. Every element is quoted, with
    backslash and double quote escaped (PostgreSQL docs, "Array Input and Output Syntax");
    None is NULL; a datetime goes as ISO 8601 (aware: its offset says the instant).

    An array of plain strings (a batch's ids: each batch sends its 500 ids with every read) is
    quoted all at once, joined on NUL, which PostgreSQL text cannot hold; element by element
    it was a tenth of reading a batch (cProfile, 10,000 leads due)."""
    values = list(values)
    if values and set(map(type, values)) == {str}:
        joined = "\x00".join(values)
        if joined.count("\x00") == len(values) - 1:  # no NUL inside one: the joins are the NULs
            quoted = joined.replace("\\", "\\\\").replace('"', '\\"').replace("\x00", '","')
            return '{"' + quoted + '"}'
    return "{" + ",".join(map(_array_element, values)) + "}"


def _array_element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return '"' + value.isoformat() + '"'  # nothing in it to escape
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def insert_missing(session: Session, model: Any, **values: Any) -> bool:
    """Insert the row ``values`` unless its key is there already, in one statement; whether it
    was inserted. Two workers writing the same new row at once must not fail: a failed write
    after Slack accepted a message rolled back its record, and the message went out again when
    its claim ran out. (A plain read-then-insert lets both read "absent".)"""
    dialect = session.get_bind().dialect.name
    insert_fn: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    key = model.__table__.primary_key.columns
    # RETURNING, not rowcount: psycopg's rowcount here is -1 whether or not a row went in.
    statement = insert_fn(model).values(**values).on_conflict_do_nothing().returning(*key)
    return session.execute(statement).first() is not None


def plan_each_query(session: Session) -> None:
    """On PostgreSQL, plan the queries of this transaction for their parameters every time.

    psycopg prepares a statement after five runs and PostgreSQL then may keep a generic plan
    made while the tables were nearly empty — a sequential scan — for the rest of a first
    backfill: a 100,000-record sync went from 30 s to 150 s, and a first evaluate pass spent
    more than half its time scanning the outbox for each batch's notices. SET LOCAL lasts
    until the transaction ends.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


@contextmanager
def rolled_back(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions whose commits all land in one outer transaction that is rolled back at the end:
    a dry run of a stage that writes, with nothing kept. A session's ``commit`` only ends its
    own part (join mode ``rollback_only``), so this needs no SAVEPOINT and works on SQLite."""
    with engine.connect() as connection:
        outer = connection.begin()
        try:
            yield sessionmaker(
                bind=connection, expire_on_commit=False, join_transaction_mode="rollback_only"
            )
        finally:
            outer.rollback()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision`` (idempotent)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    command.upgrade(config, revision)
