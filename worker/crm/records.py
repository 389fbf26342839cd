"""Provider-neutral CRM records: what every CRM client returns and the sync stage stores.

Plain frozen dataclasses with aware UTC datetimes; no provider quirk leaks past a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from worker.names import display_name

T = TypeVar("T")

#: Activity kinds a touch can be; a CRM's own names are mapped onto these by its client.
TOUCH_KINDS = ("call", "email", "meeting", "note", "task")


@dataclass(frozen=True)
class CrmOwner:
    """A CRM user who can own leads (a sales rep or a manager)."""

    id: str
    email: str | None
    first_name: str | None = None
    last_name: str | None = None
    archived: bool = False
    teams: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return display_name(self.first_name, self.last_name, self.email, self.id)


@dataclass(frozen=True)
class CrmLead:
    """A lead (a HubSpot contact, a Salesforce Lead) with the fields the SLA needs."""

    id: str
    created_at: datetime
    modified_at: datetime
    owner_id: str | None = None
    owner_assigned_at: datetime | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    email: str | None = None
    phone: str | None = None
    lifecycle_stage: str | None = None
    status: str | None = None
    source: str | None = None
    priority: str | None = None
    score: float | None = None
    archived: bool = False
    #: Ids of records merged into this one: they are gone from the CRM and stop being tracked.
    merged_ids: tuple[str, ...] = ()
    #: Every property the client read, raw, for completeness checks and write-back.
    properties: Mapping[str, str | None] = field(default_factory=dict)
    #: Every status the lead had, oldest first, when the CRM's history was read (exact pause
    #: intervals); None when it was not: the store then records a change at ``modified_at``.
    status_history: tuple[tuple[datetime, str | None], ...] | None = None

    @property
    def name(self) -> str:
        return display_name(self.first_name, self.last_name, self.email, f"lead {self.id}")


@dataclass(frozen=True)
class CrmTouch:
    """One sales activity (call, email, meeting, …) and the leads it is associated with."""

    id: str
    kind: str  # one of TOUCH_KINDS
    occurred_at: datetime
    modified_at: datetime
    lead_ids: tuple[str, ...] = ()
    owner_id: str | None = None
    duration: timedelta = timedelta(0)
    #: "outbound", "inbound" or None when the CRM does not say.
    direction: str | None = None
    #: The CRM's raw status (call: COMPLETED/NO_ANSWER…, email: SENT/BOUNCED…), upper-case.
    status: str | None = None


@dataclass(frozen=True)
class SearchFrom:
    """Where an incremental (keyset) search resumes, in (modified time, id) order.

    By default: every record modified at or after ``at`` (``strictly_after``: only after it),
    oldest change first; ``seen`` names records modified at exactly ``at`` that were already
    read (a page that ended inside that instant), so they are not read again. With
    ``id_above`` set: only records modified at exactly ``at`` whose id is above it, in id
    order — how a run drains more records sharing one instant than fit on a page, since a
    search can sort by one property only.
    """

    at: datetime
    strictly_after: bool = False
    id_above: str | None = None
    seen: tuple[str, ...] = ()


@dataclass(frozen=True)
class WriteResult:
    """The outcome of a batch write: ids written, and ids refused with the CRM's reason."""

    written: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a paged CRM read.

    ``next_after`` is the opaque cursor of the next page (None on the last page);
    ``skipped`` counts malformed records that were logged and left out of ``items``;
    ``resume`` is where a keyset search goes on after this page (None: nothing left), worked
    out from every record the CRM returned, malformed ones included.
    """

    items: list[T]
    next_after: str | None
    skipped: int = 0
    resume: SearchFrom | None = None
