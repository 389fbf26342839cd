"""The interface every CRM client offers the stages (HubSpot now, Salesforce next).

Stages depend on this protocol, not on a provider; a provider module implements it over its
own REST API and maps its errors to ``worker.errors``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from worker.crm.records import CrmLead, CrmOwner, CrmTouch, Page, SearchFrom, WriteResult

#: A search can return at most this many results per query (HubSpot's documented cap); sync
#: never pages with offsets, it starts each page as a new query from the last record it stored.
SEARCH_RESULT_CAP = 10_000


class CrmClient(Protocol):
    def search_leads_changed_since(
        self, since: datetime | SearchFrom, *, after: str | None = None
    ) -> Page[CrmLead]: ...

    def search_touches_changed_since(
        self, kind: str, since: datetime | SearchFrom, *, after: str | None = None
    ) -> Page[CrmTouch]: ...

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
