"""The interface every CRM client offers the stages (HubSpot now, Salesforce next).

Stages depend on this protocol, not on a provider; a provider module implements it over its
own REST API and maps its errors to ``worker.errors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from worker.crm.records import CrmLead, CrmOwner, CrmTouch, Page

#: A search can return at most this many results per query (HubSpot's documented cap); sync
#: restarts the query from the last modified time it has seen before reaching it.
SEARCH_RESULT_CAP = 10_000


class CrmClient(Protocol):
    def search_leads_changed_since(
        self, since: datetime, *, after: str | None = None
    ) -> Page[CrmLead]: ...

    def search_touches_changed_since(
        self, kind: str, since: datetime, *, after: str | None = None
    ) -> Page[CrmTouch]: ...

    def list_owners(self) -> list[CrmOwner]: ...

    def get_lead(self, lead_id: str) -> CrmLead | None: ...

    def update_lead(self, lead_id: str, properties: Mapping[str, str]) -> None: ...
