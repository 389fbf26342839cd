"""The evaluate stage's writes: the lead's bookkeeping and its findings, a statement a batch.

A pass judges thousands of leads; writing them through ORM entities cost more than judging
them. Here each batch is one executemany UPDATE of the leads and one upsert of the findings
that changed (findings whose verdict is the same are not written at all).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, case, false, text, true, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from worker.store.db import array_literal
from worker.store.models import Finding, Lead

#: What evaluate sets on a lead it judged (besides clearing ``dirty``).
LEAD_FIELDS = ("next_check_at", "recycle_reason", "missing_fields", "complete_since")
#: A finding's verdict: what is compared to decide whether it changed.
FINDING_FIELDS = (
    "policy",
    "state",
    "started_at",
    "deadline_at",
    "met_at",
    "detail",
    "breached_deadline_at",
)

_leads = Lead.__table__.c
_lead_table: Any = Lead.__table__


def save_leads(session: Session, judged: Sequence[Mapping[str, Any]]) -> None:
    """Write each judged lead's :data:`LEAD_FIELDS` (keys ``id``, ``revision`` and those).
    ``dirty`` is cleared only where the revision is still the one the pass read: a lead that
    sync changed meanwhile stays dirty and is judged again on its new data."""
    if not judged:
        return
    if session.get_bind().dialect.name == "postgresql":
        _save_leads_at_once(session, judged)
        return
    statement = (
        update(_lead_table)
        .where(_leads.id == bindparam("b_id"))
        .values(
            dirty=case((_leads.revision == bindparam("b_revision"), false()), else_=true()),
            **{name: bindparam(f"b_{name}") for name in LEAD_FIELDS},
        )
    )
    params = [{f"b_{name}": value for name, value in row.items()} for row in judged]
    session.connection().execute(statement, params)


#: PostgreSQL: the batch as one UPDATE … FROM unnest(arrays), a column an array. As an
#: executemany it was one statement a lead, each planned and run apart (a pipeline of 500),
#: the largest write of an incremental pass.
_SAVE_LEADS_AT_ONCE = text(
    """
    UPDATE leads AS l SET
        dirty = (l.revision <> v.revision),
        next_check_at = v.next_check_at,
        recycle_reason = v.recycle_reason,
        missing_fields = v.missing_fields,
        complete_since = v.complete_since
    FROM unnest(
        CAST(:id AS varchar[]), CAST(:revision AS integer[]),
        CAST(:next_check_at AS timestamptz[]), CAST(:recycle_reason AS text[]),
        CAST(CAST(:missing_fields AS text[]) AS json[]), CAST(:complete_since AS timestamptz[])
    ) AS v(id, revision, next_check_at, recycle_reason, missing_fields, complete_since)
    WHERE l.id = v.id
    """
)


def _save_leads_at_once(session: Session, judged: Sequence[Mapping[str, Any]]) -> None:
    plain = ("id", "revision", *(name for name in LEAD_FIELDS if name != "missing_fields"))
    columns = _as_columns(judged, plain)  # missing_fields as JSON, below
    columns["missing_fields"] = array_literal(json.dumps(row["missing_fields"]) for row in judged)
    session.connection().execute(_SAVE_LEADS_AT_ONCE, columns)


def save_findings(session: Session, findings: Sequence[Mapping[str, Any]]) -> None:
    """Insert or overwrite these findings (keys ``lead_id``, ``rule``, ``evaluated_at`` and
    :data:`FINDING_FIELDS`) in one statement; at most one per lead and rule."""
    if not findings:
        return
    if session.get_bind().dialect.name == "postgresql":
        _save_findings_at_once(session, findings)
        return
    statement = sqlite.insert(Finding)
    statement = statement.on_conflict_do_update(
        index_elements=["lead_id", "rule"],
        set_={name: statement.excluded[name] for name in (*FINDING_FIELDS, "evaluated_at")},
    )
    session.connection().execute(statement, list(findings))


#: PostgreSQL: the batch's findings as one INSERT … SELECT FROM unnest(arrays) … ON CONFLICT,
#: as the leads above. As an executemany it was one statement a finding, about 2,000 a batch in
#: a first pass, and a fifth of the pass (py-spy, 1,000,000 leads).
_SAVE_FINDINGS_AT_ONCE = text(
    """
    INSERT INTO findings (lead_id, rule, policy, state, started_at, deadline_at, met_at, detail,
                          breached_deadline_at, evaluated_at)
    SELECT * FROM unnest(
        CAST(:lead_id AS varchar[]), CAST(:rule AS varchar[]), CAST(:policy AS varchar[]),
        CAST(:state AS varchar[]), CAST(:started_at AS timestamptz[]),
        CAST(:deadline_at AS timestamptz[]), CAST(:met_at AS timestamptz[]),
        CAST(:detail AS text[]), CAST(:breached_deadline_at AS timestamptz[]),
        CAST(:evaluated_at AS timestamptz[])
    )
    ON CONFLICT (lead_id, rule) DO UPDATE SET
        policy = excluded.policy,
        state = excluded.state,
        started_at = excluded.started_at,
        deadline_at = excluded.deadline_at,
        met_at = excluded.met_at,
        detail = excluded.detail,
        breached_deadline_at = excluded.breached_deadline_at,
        evaluated_at = excluded.evaluated_at
    """
)
_FINDING_COLUMNS = ("lead_id", "rule", *FINDING_FIELDS, "evaluated_at")


def _save_findings_at_once(session: Session, findings: Sequence[Mapping[str, Any]]) -> None:
    session.connection().execute(_SAVE_FINDINGS_AT_ONCE, _as_columns(findings, _FINDING_COLUMNS))


def _as_columns(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, str]:
    """Rows as one array per column, each in its text form: the parameters an ``unnest``
    statement casts to arrays."""
    return {name: array_literal(row[name] for row in rows) for name in names}
