"""Arrays sent to PostgreSQL in their text form (``store.db.array_literal``) arrive as they
were, whatever the characters: CRM ids and texts are not ours to trust."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from worker.store.db import among, array_literal, make_engine, make_sessionmaker, upgrade
from worker.store.models import Owner

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
AWKWARD = [
    "plain",
    "",
    " spaced out ",
    'a "quoted" word',
    "back\\slash\\",
    "comma,separated",
    "{braces}",
    "NULL",
    "null",
    "Grüße, 東京 ✓",
    "new\nline\ttab",
]


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    "values",
    [AWKWARD, [*AWKWARD, None], ["one"], ["nul\x00inside", "other"]],
    ids=["strings only", "with NULL", "one", "a NUL inside"],
)
def test_texts_arrive_as_they_were(pg_engine: Engine, values: list[str | None]) -> None:
    """Strings only are quoted all at once, other arrays element by element: both arrive."""
    literal = array_literal(values)
    if any("\x00" in (value or "") for value in values):
        assert literal.count("\x00") == 1  # not taken for a separator: PostgreSQL refuses it
        return
    with pg_engine.connect() as connection:
        query = text("SELECT CAST(:values AS text[])")
        back = connection.execute(query, {"values": literal}).scalar()
    assert back == values


def test_an_empty_array_is_empty() -> None:
    assert array_literal([]) == "{}"


def test_time_stamps_and_numbers_arrive_as_they_were(pg_engine: Engine) -> None:
    instants = [
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 3, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        None,
    ]
    with pg_engine.connect() as connection:
        stamps = connection.execute(
            text("SELECT CAST(:v AS timestamptz[])"), {"v": array_literal(instants)}
        ).scalar()
        numbers = connection.execute(
            text("SELECT CAST(:v AS integer[])"), {"v": array_literal([3, -1, 0])}
        ).scalar()
    assert stamps == instants
    assert numbers == [3, -1, 0]


def test_among_finds_awkward_ids_on_both_stores(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        session.add_all(
            Owner(id=value or "-", email=f"{n}@example.com", synced_at=NOW)
            for n, value in enumerate(AWKWARD)
        )
    with Session(engine) as session:
        wanted = ['a "quoted" word', "back\\slash\\", "comma,separated", "absent"]
        found = session.scalars(select(Owner.id).where(among(session, Owner.id, wanted))).all()
    engine.dispose()
    assert sorted(found) == sorted(wanted[:3])
