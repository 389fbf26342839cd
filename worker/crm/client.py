"""The interface every CRM client offers the stages (HubSpot now, Salesforce next).

Stages depend on this protocol, not on a provider; a provider module implements it over its
own REST API and maps its errors to ``worker.errors``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from worker.crm.quota import DailyUse
from worker.crm.records import CrmLead, CrmOwner, CrmTouch, Page, SearchFrom, WriteResult

#: A search can return at most this many results per query (HubSpot's documented cap); sync
#: never pages with offsets, it starts each page as a new query from the last record it stored.
SEARCH_RESULT_CAP = 10_000


class CrmClient(Protocol):
    """Safe to call from two threads at once (sync reads the next page while storing one)."""

    #: How many touches one request of :meth:`touches_with_leads` covers: sync reads that many
    #: before asking for their leads.
    touches_per_lead_read: int

    def search_leads_changed_since(
        self, since: datetime | SearchFrom, *, after: str | None = None
    ) -> Page[CrmLead]: ...

    def search_touches_changed_since(
        self,
        kind: str,
        since: datetime | SearchFrom,
        *,
        after: str | None = None,
        with_leads: bool = True,
    ) -> Page[CrmTouch]:
        """With ``with_leads`` False the touches' ``lead_ids`` are left empty, to be read by
        :meth:`touches_with_leads`: never store such a touch (it would lose its leads)."""
        ...

    def touches_with_leads(self, touches: Sequence[CrmTouch]) -> list[CrmTouch]:
        """``touches``, in the same order, with the ids of the leads each is associated with."""
        ...

    def daily_use(self) -> DailyUse | None:
        """How much of today's request quota is spent (None: not tracked)."""
        ...

    def list_owners(self) -> list[CrmOwner]: ...

    def check_auth(self) -> None:
        """A cheap authenticated call; AuthError when the CRM rejects the credentials."""
        ...

    def list_archived_lead_ids(self) -> list[str]: ...

    def get_lead(self, lead_id: str) -> CrmLead | None: ...

    def get_leads(self, lead_ids: Sequence[str]) -> dict[str, CrmLead]: ...

    def update_lead(self, lead_id: str, properties: Mapping[str, str]) -> None: ...

    def update_leads(self, updates: Mapping[str, Mapping[str, str]]) -> WriteResult: ...

    def leads_with_open_deals(self, lead_ids: Sequence[str]) -> set[str]:
        """The ids among ``lead_ids`` with at least one open deal (recycle skips them)."""
        ...
