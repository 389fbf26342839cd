"""The HubSpot CRM client: reads leads (contacts), owners, touches (engagements) and whether
leads have open deals, and writes lead properties back, over HubSpot's CRM v3
search/objects/owners and v4 associations APIs.

It maps HubSpot's quirks (``after`` paging, the 10,000-result search cap, rate-limit policies,
207 Multi-Status association reads, the forward-only lifecycle stage, epoch-ms or ISO dates)
onto ``worker.crm.records`` and ``worker.errors`` and knows nothing about SLAs. It never retries
on its own unless asked (``max_retries``), never fails a page for one malformed record, and
never lets the token reach a log line, an exception message or a repr.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from worker.crm.client import SEARCH_RESULT_CAP
from worker.crm.http import CrmHttpClient, RecordNotFound, retry_after_header
from worker.crm.quota import DailyQuota
from worker.crm.records import (
    TOUCH_KINDS,
    CrmLead,
    CrmOwner,
    CrmTouch,
    Page,
    SearchFrom,
    WriteResult,
)
from worker.errors import AuthError, PermanentError, TransientError
from worker.ratelimit import RateLimiter

log = logging.getLogger("worker.crm.hubspot")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SEARCH_MAX_LIMIT = 200  # search page size cap (search guide, "Limitations")
# A search body may hold at most 3,000 characters (search guide, "Limitations"; see
# ../shared/API-FACTS.md); ids excluded with NOT_IN count against it.
_SEARCH_BODY_MAX_CHARS = 3_000
#: At most this many already-read ids are excluded from the next page's query (IN/NOT_IN take
#: at most 100 values per filter in HubSpot's search guide, UNCONFIRMED for NOT_IN).
_MAX_SEEN_IDS = 100
_HISTORY_MAX_INPUTS = 50  # batch read with propertiesWithHistory (see status_histories)
_OWNERS_MAX_LIMIT = 500
# v4 batch read: at most 1,000 ids a request since 2025-02-10, larger ones are refused
# (developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api; the
# same post first announced 100, then was corrected to 1,000).
_ASSOCIATIONS_MAX_INPUTS = 1_000
_BATCH_MAX_INPUTS = 100  # batch read/update of records (objects API reference)
_LIST_MAX_LIMIT = 100  # GET /crm/v3/objects/{object} page size cap (objects API reference)
# Ids of the records merged into this one, ";"-separated; the merged-away ids no longer appear
# in search (HubSpot/hubspot-api-nodejs#6; fivetran/dbt_hubspot#168 relies on it over
# hs_calculated_merged_vids, which can miss ids).
_MERGED_PROPERTY = "hs_merged_object_ids"
_MAX_PAGES = 1_000  # hard stop for a paged read that never ends (sentry's client does the same)

# How long to wait after a 429 without Retry-After, by HubSpot's policyName. HubSpot's own
# Node SDK (RetryDecorator) waits 10 s for TEN_SECONDLY_ROLLING and 1 s for search's "secondly
# limit". DAILY resets at midnight in the portal's time zone, which the API does not tell us:
# one hour is a guess that keeps the worker polite without giving up for the day.
_POLICY_WAIT = {
    "TEN_SECONDLY_ROLLING": timedelta(seconds=10),
    "SECONDLY": timedelta(seconds=1),
    "DAILY": timedelta(hours=1),
}
_SECONDLY_MESSAGE = "You have reached your secondly limit."
# usage guidelines: 423 Locked during large syncs, "wait at least 2 seconds".
_LOCKED_WAIT = timedelta(seconds=2)

_NO_ASSOCIATIONS = "crm.associations.NO_ASSOCIATIONS_FOUND"

# Deals: hs_is_closed is HubSpot's calculated "True if the deal was won or lost", read back as
# the text "true"/"false" (knowledge.hubspot.com/crm-deals/hubspots-default-deal-properties;
# exact definition text UNCONFIRMED). It follows each stage's closed won/lost setting, so it is
# right in renamed and custom pipelines, where stage ids are not (pipelines guide: a deal
# stage's metadata probability 1.0 is closed won, 0.0 closed lost). Only when it is missing do
# we fall back to the ids of the default pipeline's two closed stages (of appointmentscheduled,
# qualifiedtobuy, presentationscheduled, decisionmakerboughtin, contractsent, closedwon,
# closedlost).
_DEAL_PROPERTIES = ("hs_is_closed", "dealstage")
_CLOSED_DEAL_STAGES = frozenset({"closedwon", "closedlost"})

_EMAIL_DIRECTIONS = {
    "EMAIL": "outbound",
    "INCOMING_EMAIL": "inbound",
    "FORWARDED_EMAIL": "outbound",
}
_CALL_DIRECTIONS = {"OUTBOUND": "outbound", "INBOUND": "inbound"}
_STATUS_PROPERTY = {
    "call": "hs_call_status",
    "email": "hs_email_status",
    "meeting": "hs_meeting_outcome",
    "task": "hs_task_status",
}
_TOUCH_PROPERTIES = {
    "call": ("hs_call_duration", "hs_call_direction", "hs_call_status"),
    "email": ("hs_email_direction", "hs_email_status"),
    "meeting": ("hs_meeting_start_time", "hs_meeting_end_time", "hs_meeting_outcome"),
    "note": (),
    "task": ("hs_task_status",),
}
_COMMON_TOUCH_PROPERTIES = ("hs_timestamp", "hubspot_owner_id", "hs_lastmodifieddate")


@dataclass(frozen=True)
class HubSpotFieldMap:
    """Which HubSpot property holds each lead field (portals rename and add properties)."""

    priority: str = "hs_lead_priority"
    status: str = "hs_lead_status"
    source: str = "hs_analytics_source"
    score: str = "hubspotscore"
    lifecycle_stage: str = "lifecyclestage"
    owner: str = "hubspot_owner_id"
    owner_assigned: str = "hubspot_owner_assigneddate"
    first_name: str = "firstname"
    last_name: str = "lastname"
    company: str = "company"
    email: str = "email"
    phone: str = "phone"
    extra: tuple[str, ...] = ()

    def properties(self) -> tuple[str, ...]:
        """Every property name to request, once each, in a stable order."""
        names = [getattr(self, f.name) for f in fields(self) if f.name != "extra"]
        return tuple(dict.fromkeys([*names, *self.extra]))


class _Malformed(ValueError):
    """A record HubSpot returned that cannot be mapped; the message names fields, not values."""


class HubSpotClient(CrmHttpClient):
    """HubSpot over ``requests``, one method per thing the stages want.

    ``lead_object`` is the object that holds leads (``contacts``, or e.g. ``leads``);
    ``page_size`` is the search page size (HubSpot allows at most 200) and the owners page
    size (at most 500).
    """

    provider = "HubSpot"
    #: Touches whose leads one request of :meth:`touches_with_leads` reads.
    touches_per_lead_read = _ASSOCIATIONS_MAX_INPUTS

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        lead_object: str = "contacts",
        field_map: HubSpotFieldMap = HubSpotFieldMap(),
        timeout: float = 10.0,
        page_size: int = 100,
        max_retries: int = 0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limiter: RateLimiter | None = None,
        quota: DailyQuota | None = None,
        read_status_history: bool = False,
    ) -> None:
        if not token:
            raise ValueError("a HubSpot token is required")
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        super().__init__(
            base_url,
            secrets=(token,),
            logger=log,
            timeout=timeout,
            max_retries=max_retries,
            session=session,
            sleep=sleep,
            limiter=limiter,
            quota=quota,
        )
        self._token = token
        self.lead_object = lead_object
        self.field_map = field_map
        #: Read each changed lead's status history (one batch read per 50 leads), so pauses
        #: are exact: a pause and resume between two syncs, the real time of each change.
        self.read_status_history = read_status_history
        self._page_size = page_size
        # Contacts carry createdate/lastmodifieddate; other objects (leads, engagements) carry
        # hs_createdate/hs_lastmodifieddate. Filtering contacts on hs_lastmodifieddate silently
        # misses records (amp-labs/connectors#45, supaglue#478).
        contacts = lead_object == "contacts"
        self._created_property = "createdate" if contacts else "hs_createdate"
        self._modified_property = "lastmodifieddate" if contacts else "hs_lastmodifieddate"

    # -- the stages' interface -------------------------------------------------------------------
    def search_leads_changed_since(
        self, since: datetime | SearchFrom, *, after: str | None = None
    ) -> Page[CrmLead]:
        """One page of leads modified at or after ``since``, oldest change first (or, for a
        :class:`SearchFrom` with ``id_above``, the rest of one instant in id order).

        ``next_after`` is None on the last page. Search stops at 10,000 results per query:
        the page that reaches the cap is shortened to end exactly there, and a cursor at or
        past it returns an empty last page. ``worker.pipeline.sync`` never pages with
        ``after``: it starts a new query from the last record it stored (keyset paging).
        """
        results, next_after = self._search_page(
            self.lead_object, self._modified_property, self._lead_properties(), since, after
        )
        resume = _resume(results, since, next_after is not None, self._modified_property)
        leads: list[CrmLead] = []
        skipped = 0
        for result in results:
            try:
                leads.append(self._lead(result))
            except _Malformed as e:
                skipped += 1
                log.warning(
                    "skipping malformed HubSpot %s %s: %s", self.lead_object, _id(result), e
                )
        if self.read_status_history and leads:
            histories = self.status_histories([lead.id for lead in leads])
            leads = [
                replace(lead, status_history=histories[lead.id]) if lead.id in histories else lead
                for lead in leads
            ]
        return Page(leads, next_after, skipped, resume)

    def status_histories(
        self, lead_ids: Sequence[str]
    ) -> dict[str, tuple[tuple[datetime, str | None], ...]]:
        """Every value the status property took, oldest first, per lead id, through batch
        reads with ``propertiesWithHistory`` (at most 50 records a request: HubSpot refuses
        more, "The maximum number of inputs supported in a batch request for property
        histories is 50", PipedreamHQ/pipedream#8462). Unreadable versions are left out."""
        status = self.field_map.status
        path = f"/crm/v3/objects/{self.lead_object}/batch/read"
        found: dict[str, tuple[tuple[datetime, str | None], ...]] = {}
        unique = list(dict.fromkeys(lead_ids))
        for start in range(0, len(unique), _HISTORY_MAX_INPUTS):
            chunk = unique[start : start + _HISTORY_MAX_INPUTS]
            body = {
                "properties": [status],
                "propertiesWithHistory": [status],
                "inputs": [{"id": i} for i in chunk],
            }
            _, data = self.request_json("POST", path, json=body)
            for result in _json_object(data, "POST", path).get("results") or []:
                record_id = _id(result)
                histories = result.get("propertiesWithHistory") if record_id else None
                versions = histories.get(status) if isinstance(histories, dict) else None
                if record_id is None or not isinstance(versions, list):
                    continue
                found[record_id] = tuple(sorted(_versions(versions), key=lambda v: v[0]))
        return found

    def search_touches_changed_since(
        self,
        kind: str,
        since: datetime | SearchFrom,
        *,
        after: str | None = None,
        with_leads: bool = True,
    ) -> Page[CrmTouch]:
        """One page of touches of ``kind`` (call/email/meeting/note/task) modified at or after
        ``since``, oldest change first, with the ids of the leads each is associated with —
        unless ``with_leads`` is False: then ``lead_ids`` are empty until
        :meth:`touches_with_leads` reads them for many pages at once (one search request
        instead of two, and up to 1,000 touches' leads in one association read)."""
        if kind not in TOUCH_KINDS:
            raise ValueError(f"unknown touch kind {kind!r}; expected one of {TOUCH_KINDS}")
        object_type = f"{kind}s"
        properties = (*_COMMON_TOUCH_PROPERTIES, *_TOUCH_PROPERTIES[kind])
        results, next_after = self._search_page(
            object_type, "hs_lastmodifieddate", properties, since, after
        )
        resume = _resume(results, since, next_after is not None, "hs_lastmodifieddate")
        ids = [rid for rid in (_id(r) for r in results) if rid is not None]
        leads_of = self._associated_ids(object_type, ids) if ids and with_leads else {}
        touches: list[CrmTouch] = []
        skipped = 0
        for result in results:
            try:
                touches.append(_touch(kind, result, leads_of))
            except _Malformed as e:
                skipped += 1
                log.warning("skipping malformed HubSpot %s %s: %s", object_type, _id(result), e)
        return Page(touches, next_after, skipped, resume)

    def touches_with_leads(self, touches: Sequence[CrmTouch]) -> list[CrmTouch]:
        """``touches`` in the same order, each with the ids of the leads it is associated with
        now: one v4 association batch read per 1,000 touches of a kind."""
        kinds = dict.fromkeys(touch.kind for touch in touches)
        leads_of = {
            kind: self._associated_ids(
                f"{kind}s", list(dict.fromkeys(t.id for t in touches if t.kind == kind))
            )
            for kind in kinds
        }
        return [replace(t, lead_ids=tuple(leads_of[t.kind].get(t.id, ()))) for t in touches]

    def daily_quota_headers(self, response: requests.Response) -> tuple[int, int] | None:
        # Private-app responses say the day's limit and what is left of it (search responses
        # and OAuth apps' do not: developers.hubspot.com/changelog/rate-limit-headers-will-now-
        # appear-for-oauth-authenticated-calls).
        limit = response.headers.get("X-HubSpot-RateLimit-Daily", "")
        remaining = response.headers.get("X-HubSpot-RateLimit-Daily-Remaining", "")
        if limit.strip().isdigit() and remaining.strip().isdigit():
            return int(limit), int(remaining)
        return None

    def list_owners(self) -> list[CrmOwner]:
        """Every owner, active and archived (deactivated users still own old leads)."""
        owners: dict[str, CrmOwner] = {}
        for archived in (False, True):
            for item in self._owner_items(archived):
                owner = _owner(item, archived)
                if owner is None:
                    log.warning("skipping malformed HubSpot owner %s", item.get("id"))
                    continue
                owners.setdefault(owner.id, owner)
        return list(owners.values())

    def get_lead(self, lead_id: str) -> CrmLead | None:
        """The lead as HubSpot has it now, None if it is gone (404).

        A record that cannot be mapped raises PermanentError(code="MALFORMED_RECORD"): the
        caller asked for this one lead, so silently returning None would read as "deleted".
        """
        try:
            _, body = self.request_json(
                "GET",
                self._object_path(lead_id),
                params={"properties": ",".join(self._lead_properties())},
            )
        except RecordNotFound:
            return None
        result = _json_object(body, "GET", self._object_path(lead_id))
        try:
            return self._lead(result)
        except _Malformed as e:
            raise PermanentError(
                f"HubSpot {self.lead_object} {_id(result)} is malformed: {e}",
                code="MALFORMED_RECORD",
            ) from e

    def update_lead(self, lead_id: str, properties: Mapping[str, str]) -> None:
        """Write lead properties ("" clears one).

        HubSpot's lifecycle stage only moves forward; to set an earlier stage it must first be
        cleared to "" in a *separate* request (HubSpot staff on
        integrate.hubspot.com/t/update-lifecycle-stage-using-api/1333; batch order is not
        guaranteed, so the two writes cannot share a batch). We do not know the current stage
        without another read, so any write of a stage is preceded by the clear. If the second
        request fails the stage stays empty until the caller retries (the call is idempotent).
        """
        if not properties:
            return
        path = self._object_path(lead_id)
        stage = self.field_map.lifecycle_stage
        if properties.get(stage):
            self.request_json("PATCH", path, json={"properties": {stage: ""}})
        self.request_json("PATCH", path, json={"properties": dict(properties)})

    def get_leads(self, lead_ids: Sequence[str]) -> dict[str, CrmLead]:
        """The leads as HubSpot has them now, by id, through batch reads of up to 100 ids;
        ids that are gone (deleted, archived) are absent from the answer, malformed ones are
        logged and left out. A caller about to write re-reads with this and skips every lead
        whose ``modified_at`` moved since it judged it."""
        found: dict[str, CrmLead] = {}
        path = f"/crm/v3/objects/{self.lead_object}/batch/read"
        unique = list(dict.fromkeys(lead_ids))
        for start in range(0, len(unique), _BATCH_MAX_INPUTS):
            chunk = unique[start : start + _BATCH_MAX_INPUTS]
            body = {
                "properties": list(self._lead_properties()),
                "inputs": [{"id": i} for i in chunk],
            }
            # 207 Multi-Status lists unknown ids under "errors" (OBJECT_NOT_FOUND): absent here.
            _, data = self.request_json("POST", path, json=body)
            for result in _json_object(data, "POST", path).get("results") or []:
                try:
                    lead = self._lead(result)
                except _Malformed as e:
                    log.warning(
                        "skipping malformed HubSpot %s %s: %s", self.lead_object, _id(result), e
                    )
                    continue
                found[lead.id] = lead
        return found

    def update_leads(self, updates: Mapping[str, Mapping[str, str]]) -> WriteResult:
        """Write properties of many leads ("" clears one), 100 per batch request.

        Leads whose lifecycle stage is set get a batch that clears the stage first, then a
        second batch that sets everything (the forward-only rule, see :meth:`update_lead`; the
        two writes cannot share one batch because HubSpot does not apply a batch in order).
        An id the batch endpoint does not find is retried with a single PATCH: merged-away ids
        work there but not in batch updates (objects API reference, "merged records"). Ids
        that still fail are returned in ``failed`` with HubSpot's message, never raised one
        by one; a rejected batch (400, e.g. an unknown property) raises PermanentError.
        """
        stage = self.field_map.lifecycle_stage
        wanted = {lead_id: dict(props) for lead_id, props in updates.items() if props}
        staged = [lead_id for lead_id, props in wanted.items() if props.get(stage)]
        written: list[str] = []
        failed: dict[str, str] = {}
        if staged:
            _, refused = self._batch_update({lead_id: {stage: ""} for lead_id in staged})
            failed.update(refused)
        todo = {lead_id: props for lead_id, props in wanted.items() if lead_id not in failed}
        done, refused = self._batch_update(todo)
        written += done
        for lead_id, reason in refused.items():
            try:
                self.update_lead(lead_id, todo[lead_id])
            except RecordNotFound:
                failed[lead_id] = reason
            else:
                written.append(lead_id)
        # A lead refused by the clearing batch is tried alone too (same merged-id rule).
        for lead_id in [i for i in staged if i in failed]:
            try:
                self.update_lead(lead_id, wanted[lead_id])
            except RecordNotFound:
                continue
            del failed[lead_id]
            written.append(lead_id)
        return WriteResult(tuple(written), failed)

    def list_archived_lead_ids(self) -> list[str]:
        """Ids of archived (deleted, restorable for 90 days) leads: search never returns
        archived records, so the list endpoint with ``archived=true`` is the only way to learn
        of them (objects API reference, GET /crm/v3/objects/{objectType})."""
        path = f"/crm/v3/objects/{self.lead_object}"
        ids: list[str] = []
        after: str | None = None
        for _ in range(_MAX_PAGES * 10):
            params = {"archived": "true", "limit": str(_LIST_MAX_LIMIT)}
            if after is not None:
                params["after"] = after
            _, data = self.request_json("GET", path, params=params)
            data = _json_object(data, "GET", path)
            ids += [i for i in (_id(r) for r in data.get("results") or []) if i is not None]
            following = _next_after(data)
            if following is None:
                return ids
            if following == after:
                raise PermanentError(f"HubSpot GET {path}: paging cursor did not advance")
            after = following
        raise PermanentError(f"HubSpot GET {path}: too many pages", code="PAGING")

    def leads_with_open_deals(self, lead_ids: Sequence[str]) -> set[str]:
        """The ids among ``lead_ids`` associated with at least one open deal.

        One v4 association batch read (lead object -> deals, 1,000 leads per request), then
        batch reads of those deals (100 per request) for ``hs_is_closed`` and ``dealstage``.
        Recycle must never hand back a lead that sales is still working, so the reading fails
        safe: a deal is open unless HubSpot says ``hs_is_closed`` is "true" (that calculated
        property follows each stage's closed won/lost setting, portals rename stage ids), or,
        only when the property is missing, its stage is one of the default pipeline's closed
        stage ids; a deal the read leaves unanswered counts as open, a deleted one (207
        OBJECT_NOT_FOUND) does not, and any other per-input error raises TransientError.
        """
        unique = list(dict.fromkeys(lead_ids))
        if not unique:
            return set()
        deals_of = self._associated_ids(self.lead_object, unique, "deals")
        deal_ids = list(dict.fromkeys(d for ids in deals_of.values() for d in ids))
        settled: set[str] = set()  # closed or deleted
        path = "/crm/v3/objects/deals/batch/read"
        for start in range(0, len(deal_ids), _BATCH_MAX_INPUTS):
            chunk = deal_ids[start : start + _BATCH_MAX_INPUTS]
            body = {"properties": list(_DEAL_PROPERTIES), "inputs": [{"id": i} for i in chunk]}
            _, data = self.request_json("POST", path, json=body)
            data = _json_object(data, "POST", path)
            for result in data.get("results") or []:
                deal_id = _id(result)
                props = result.get("properties") if isinstance(result, dict) else None
                if deal_id is not None and isinstance(props, dict) and _deal_is_closed(props):
                    settled.add(deal_id)
            errors = data.get("errors") or []
            self._check_batch_errors(path, errors)
            for error in errors:
                context = error.get("context") if isinstance(error, dict) else None
                if isinstance(context, dict):
                    settled.update(str(i) for i in context.get("ids") or [])
        open_deals = set(deal_ids) - settled
        return {lead for lead, ids in deals_of.items() if open_deals.intersection(ids)}

    def property_names(self) -> set[str]:
        """The names of the lead object's properties (for ``preflight``: the properties the
        config reads and writes must exist)."""
        path = f"/crm/v3/properties/{quote(self.lead_object, safe='')}"
        _, data = self.request_json("GET", path)
        results = _json_object(data, "GET", path).get("results") or []
        return {str(r["name"]) for r in results if isinstance(r, dict) and r.get("name")}

    def check_auth(self) -> None:
        """A cheap authenticated call; AuthError if HubSpot rejects the token."""
        self.request_json("GET", "/crm/v3/owners", params={"limit": "1"})

    # -- HubSpot's errors ------------------------------------------------------------------------
    def rate_bucket(self, method: str, path: str) -> str:
        # Search has its own per-second limit and is exempt from the ten-secondly one (spec
        # x-hubspot-rate-limit-exemptions; usage guidelines).
        return "search" if method == "POST" and path.endswith("/search") else "burst"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def raise_for_response(self, method: str, path: str, response: requests.Response) -> None:
        status = response.status_code
        if status < 300:  # 200, 201, 204 and 207 Multi-Status (read per input by the caller)
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        category = _text(body.get("category"))
        policy = _text(body.get("policyName"))
        message = _text(body.get("message"))
        detail = f"HubSpot {method} {path} -> HTTP {status}"
        if category or policy:
            detail += f" {category or policy}"
        if message:
            detail += f": {message[:300]}"
        if body.get("correlationId"):
            detail += f" (correlationId {body['correlationId']})"
        detail = self.redact(detail)
        retry_after = retry_after_header(response)
        if status in (401, 403):
            raise AuthError(detail, code=category or f"HTTP_{status}")
        if status == 429:
            if retry_after is None:
                if policy in _POLICY_WAIT:
                    retry_after = _POLICY_WAIT[policy]
                elif message == _SECONDLY_MESSAGE:
                    retry_after = _POLICY_WAIT["SECONDLY"]
                else:
                    retry_after = _POLICY_WAIT["TEN_SECONDLY_ROLLING"]
            raise TransientError(detail, retry_after=retry_after)
        if status == 423:
            raise TransientError(detail, retry_after=max(retry_after or _LOCKED_WAIT, _LOCKED_WAIT))
        if status == 477 or status >= 500:
            # 477: portal migration in progress, comes with Retry-After (usage guidelines).
            raise TransientError(detail, retry_after=retry_after)
        if status == 404:
            raise RecordNotFound(detail, code=category or "HTTP_404")
        raise PermanentError(detail, code=category or f"HTTP_{status}")

    # -- internals -------------------------------------------------------------------------------
    def _lead_properties(self) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(
                [
                    *self.field_map.properties(),
                    self._created_property,
                    self._modified_property,
                    _MERGED_PROPERTY,
                ]
            )
        )

    def _batch_update(
        self, updates: Mapping[str, Mapping[str, str]]
    ) -> tuple[list[str], dict[str, str]]:
        """(ids written, {id: reason} for ids the batch endpoint did not find)."""
        path = f"/crm/v3/objects/{self.lead_object}/batch/update"
        ids = list(updates)
        written: list[str] = []
        refused: dict[str, str] = {}
        for start in range(0, len(ids), _BATCH_MAX_INPUTS):
            chunk = ids[start : start + _BATCH_MAX_INPUTS]
            body = {"inputs": [{"id": i, "properties": dict(updates[i])} for i in chunk]}
            _, data = self.request_json("POST", path, json=body)
            data = _json_object(data, "POST", path)
            missing: dict[str, str] = {}
            for error in data.get("errors") or []:
                if not isinstance(error, dict):
                    continue
                message = _text(error.get("message")) or _text(error.get("category")) or "error"
                context = error.get("context") if isinstance(error.get("context"), dict) else {}
                for record_id in (context or {}).get("ids") or []:
                    missing[str(record_id)] = message[:300]
            refused.update(missing)
            written += [i for i in chunk if i not in missing]
        return written, refused

    def _object_path(self, record_id: str) -> str:
        return f"/crm/v3/objects/{self.lead_object}/{quote(record_id, safe='')}"

    def _search_page(
        self,
        object_type: str,
        modified_property: str,
        properties: Sequence[str],
        since: datetime | SearchFrom,
        after: str | None,
    ) -> tuple[list[Any], str | None]:
        start = since if isinstance(since, SearchFrom) else SearchFrom(since)
        if start.at.tzinfo is None:
            raise ValueError("since must be an aware datetime")
        limit = min(self._page_size, _SEARCH_MAX_LIMIT)
        if after is not None and after.isdigit():
            room = SEARCH_RESULT_CAP - int(after)
            if room <= 0:
                log.warning(
                    "HubSpot search of %s stops at its %d-result cap; restart from the newest "
                    "modification time seen",
                    object_type,
                    SEARCH_RESULT_CAP,
                )
                return [], None
            limit = min(limit, room)
        sort = "hs_object_id" if start.id_above is not None else modified_property
        body: dict[str, Any] = {
            "filterGroups": _filter_groups(start, modified_property),
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": list(properties),
            "limit": limit,
        }
        if after is not None:
            body["after"] = after
        if start.seen and len(json.dumps(body)) > _SEARCH_BODY_MAX_CHARS:
            # Too many ids to leave out: read that instant's records again (harmless).
            body["filterGroups"] = _filter_groups(replace(start, seen=()), modified_property)
        path = f"/crm/v3/objects/{object_type}/search"
        _, data = self.request_json("POST", path, json=body)
        data = _json_object(data, "POST", path)
        results = data.get("results")
        if not isinstance(results, list):
            raise TransientError(f"HubSpot POST {path}: response has no results list")
        return results, _next_after(data)

    def _associated_ids(
        self, object_type: str, ids: Sequence[str], to: str | None = None
    ) -> dict[str, list[str]]:
        """Ids of the associated ``to`` records (default: leads) per record id through the v4
        batch read (one request per 1,000 ids, plus one per input whose associations are
        paged — rare: >500 leads on one touch)."""
        found: dict[str, list[str]] = {i: [] for i in ids}
        path = f"/crm/v4/associations/{object_type}/{to or self.lead_object}/batch/read"
        pending = [{"id": i} for i in ids]
        for _ in range(_MAX_PAGES):
            if not pending:
                return found
            batch, pending = pending[:_ASSOCIATIONS_MAX_INPUTS], pending[_ASSOCIATIONS_MAX_INPUTS:]
            _, data = self.request_json("POST", path, json={"inputs": batch})
            data = _json_object(data, "POST", path)
            for result in data.get("results") or []:
                from_id = _text((result.get("from") or {}).get("id"))
                if from_id is None or from_id not in found:
                    continue
                for target in result.get("to") or []:
                    # toObjectId is a number in real responses, a string in the spec's example.
                    to_id = _text(target.get("toObjectId"))
                    if to_id is not None and to_id not in found[from_id]:
                        found[from_id].append(to_id)
                more = _next_after(result)
                if more is not None:
                    pending.append({"id": from_id, "after": more})
            self._check_batch_errors(path, data.get("errors") or [])
        raise PermanentError(f"HubSpot POST {path}: association paging did not end", code="PAGING")

    @staticmethod
    def _check_batch_errors(path: str, errors: list[Any]) -> None:
        # An input without associations comes back as a 207 error entry with subCategory
        # crm.associations.NO_ASSOCIATIONS_FOUND (category OBJECT_NOT_FOUND), not as an empty
        # list; a touch deleted since the search is OBJECT_NOT_FOUND too. Both mean "no leads".
        # Anything else means we cannot say which leads were touched: retry later rather than
        # store a touch without its leads. A batch read of records answers deleted ids with
        # OBJECT_NOT_FOUND as well (gone), and anything else the same way (we cannot tell).
        for error in errors:
            if not isinstance(error, dict):
                continue
            if error.get("subCategory") == _NO_ASSOCIATIONS:
                continue
            if error.get("category") == "OBJECT_NOT_FOUND":
                continue
            raise TransientError(
                f"HubSpot POST {path} -> per-input error {error.get('category')}: "
                f"{_text(error.get('message')) or ''}"[:400]
            )

    def _owner_items(self, archived: bool) -> Iterator[dict[str, Any]]:
        params = {
            "limit": str(min(self._page_size, _OWNERS_MAX_LIMIT)),
            "archived": "true" if archived else "false",
        }
        after: str | None = None
        for _ in range(_MAX_PAGES):
            page_params = {**params, **({"after": after} if after else {})}
            _, data = self.request_json("GET", "/crm/v3/owners", params=page_params)
            data = _json_object(data, "GET", "/crm/v3/owners")
            for item in data.get("results") or []:
                if isinstance(item, dict):
                    yield item
            following = _next_after(data)
            if following is None:
                return
            if following == after:
                raise PermanentError("HubSpot GET /crm/v3/owners: paging cursor did not advance")
            after = following
        raise PermanentError(
            f"HubSpot GET /crm/v3/owners: more than {_MAX_PAGES} pages", code="PAGING"
        )

    def _lead(self, result: Any) -> CrmLead:
        if not isinstance(result, dict) or _id(result) is None:
            raise _Malformed("no id")
        props = result.get("properties")
        if not isinstance(props, dict):
            raise _Malformed("no properties")
        fm = self.field_map

        def text(name: str) -> str | None:
            return _text(props.get(name))

        created_at = _required_instant(props, self._created_property)
        modified_at = _required_instant(props, self._modified_property)
        score_text = text(fm.score)
        try:
            score = float(score_text) if score_text is not None else None
        except ValueError as e:
            raise _Malformed(f"{fm.score} is not a number") from e
        return CrmLead(
            id=str(result["id"]),
            created_at=created_at,
            modified_at=modified_at,
            owner_id=text(fm.owner),
            owner_assigned_at=_optional_instant(props, fm.owner_assigned),
            first_name=text(fm.first_name),
            last_name=text(fm.last_name),
            company=text(fm.company),
            email=text(fm.email),
            phone=text(fm.phone),
            lifecycle_stage=text(fm.lifecycle_stage),
            status=text(fm.status),
            source=text(fm.source),
            priority=text(fm.priority),
            score=score,
            archived=bool(result.get("archived", False)),
            merged_ids=tuple(
                i.strip()
                for i in (text(_MERGED_PROPERTY) or "").split(";")
                if i.strip() and i.strip() != str(result["id"])
            ),
            properties={str(k): _text(v) for k, v in props.items()},
        )


def _versions(versions: Sequence[Any]) -> list[tuple[datetime, str | None]]:
    """A property's versions (newest first) as (when, value); unreadable ones left out."""
    readable = []
    for version in versions:
        if not isinstance(version, dict) or not isinstance(version.get("timestamp"), str):
            continue
        try:
            at = parse_hubspot_datetime(version["timestamp"])
        except ValueError:
            continue
        readable.append((at, _text(version.get("value"))))
    return readable


def _filter_groups(start: SearchFrom, modified_property: str) -> list[dict[str, Any]]:
    """The search's filter groups (OR-ed) for where a keyset search resumes."""
    at = str(_epoch_ms(start.at))

    def on(operator: str) -> dict[str, Any]:
        return {"propertyName": modified_property, "operator": operator, "value": at}

    if start.id_above is not None:
        # Search sorts by one property only and HubSpot does not document how it orders
        # ties, so "the rest of this instant" is a query of its own, sorted by id.
        return [
            {
                "filters": [
                    on("EQ"),
                    {"propertyName": "hs_object_id", "operator": "GT", "value": start.id_above},
                ]
            }
        ]
    if start.strictly_after:
        return [{"filters": [on("GT")]}]
    if start.seen:
        # The rest of instant ``at`` (less what was read) OR anything after it: a record read
        # at ``at`` and modified again since is read again at its new time.
        not_seen = {
            "propertyName": "hs_object_id",
            "operator": "NOT_IN",
            "values": list(start.seen),
        }
        return [{"filters": [on("EQ"), not_seen]}, {"filters": [on("GT")]}]
    return [{"filters": [on("GTE")]}]


def _resume(
    results: Sequence[Any], since: datetime | SearchFrom, more: bool, modified_property: str
) -> SearchFrom | None:
    """Where the keyset search goes on after a page of raw ``results`` (None: done).

    Sorted by modified time, a page is complete for every instant before its last one; the
    last instant may go on in the next page, so the next query starts *at* it (re-reading a
    few records is harmless, skipping one is not). A page whose records all share one instant
    makes no progress that way: that instant is then drained in id order (HubSpot does not
    say how it orders ties, so the drain starts from the smallest id), and the search goes on
    strictly after it. A new query per page, never ``after``, so the 10,000-result cap is
    never reached and records modified meanwhile cannot shift a page past unread ones.
    """
    start = since if isinstance(since, SearchFrom) else SearchFrom(since)
    keys: list[tuple[datetime, int]] = []
    for result in results:
        props = result.get("properties") if isinstance(result, dict) else None
        record_id = _id(result)
        try:
            at = _optional_instant(props or {}, modified_property)
        except _Malformed:
            at = None
        if at is not None and record_id is not None and record_id.isdigit():
            keys.append((at, int(record_id)))
    if not more:
        return None if start.id_above is None else SearchFrom(start.at, strictly_after=True)
    if not keys:
        raise PermanentError(
            "HubSpot search: a full page without a readable modified time and id; cannot page",
            code="PAGING",
        )
    if start.id_above is not None:
        return SearchFrom(start.at, id_above=str(max(i for _, i in keys)))
    last = keys[-1][0]
    if all(at == last for at, _ in keys):
        return SearchFrom(last, id_above="0")
    # The page is complete before ``last``; of ``last`` it holds some records, in an order
    # HubSpot does not document: go on with the others (and after), leaving out those read.
    seen = tuple(str(i) for at, i in keys if at == last)
    return SearchFrom(last, seen=seen if len(seen) <= _MAX_SEEN_IDS else ())


def parse_hubspot_datetime(value: str) -> datetime:
    """A HubSpot datetime value as aware UTC: epoch milliseconds ("1763630100000") or ISO 8601
    with or without milliseconds, with Z, an offset or none (taken as UTC), or a bare date.

    Raises ValueError for anything else.
    """
    text = value.strip()
    if text.lstrip("-").isdigit():
        try:
            return _EPOCH + timedelta(milliseconds=int(text))
        except OverflowError as e:
            raise ValueError("epoch milliseconds out of range") from e
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _epoch_ms(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(milliseconds=1)


def _text(value: Any) -> str | None:
    """A property value as text; HubSpot sends cleared properties as null or ""."""
    if value is None:
        return None
    text = str(value)
    return text if text != "" else None


def _id(result: Any) -> str | None:
    return _text(result.get("id")) if isinstance(result, dict) else None


def _json_object(data: Any, method: str, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TransientError(f"HubSpot {method} {path}: response is not a JSON object")
    return data


def _next_after(data: Mapping[str, Any]) -> str | None:
    paging = data.get("paging")
    if not isinstance(paging, dict):
        return None
    following = paging.get("next")
    if not isinstance(following, dict):
        return None
    return _text(following.get("after"))


def _optional_instant(props: Mapping[str, Any], name: str) -> datetime | None:
    raw = _text(props.get(name))
    if raw is None:
        return None
    try:
        return parse_hubspot_datetime(raw)
    except ValueError as e:
        raise _Malformed(f"{name} is not a datetime") from e


def _required_instant(props: Mapping[str, Any], name: str) -> datetime:
    at = _optional_instant(props, name)
    if at is None:
        raise _Malformed(f"{name} is missing")
    return at


def _touch(kind: str, result: Any, leads_of: Mapping[str, list[str]]) -> CrmTouch:
    record_id = _id(result)
    if record_id is None:
        raise _Malformed("no id")
    props = result.get("properties")
    if not isinstance(props, dict):
        raise _Malformed("no properties")
    modified_at = _required_instant(props, "hs_lastmodifieddate")
    occurred_at = _optional_instant(props, "hs_timestamp")
    if occurred_at is None and kind == "meeting":
        occurred_at = _optional_instant(props, "hs_meeting_start_time")
    if occurred_at is None:
        raise _Malformed("hs_timestamp is missing")
    duration = timedelta(0)
    direction: str | None = None
    if kind == "call":
        raw = _text(props.get("hs_call_duration"))
        if raw is not None:
            try:
                # hs_call_duration is in milliseconds (calls API reference).
                duration = timedelta(milliseconds=float(raw))
            except (ValueError, OverflowError) as e:
                raise _Malformed("hs_call_duration is not a number") from e
        direction = _CALL_DIRECTIONS.get((_text(props.get("hs_call_direction")) or "").upper())
    elif kind == "email":
        direction = _EMAIL_DIRECTIONS.get((_text(props.get("hs_email_direction")) or "").upper())
    elif kind == "meeting":
        start = _optional_instant(props, "hs_meeting_start_time")
        end = _optional_instant(props, "hs_meeting_end_time")
        if start is not None and end is not None:
            duration = end - start
    if duration < timedelta(0):
        raise _Malformed("duration is negative")
    status_property = _STATUS_PROPERTY.get(kind)
    status = _text(props.get(status_property)) if status_property else None
    return CrmTouch(
        id=record_id,
        kind=kind,
        occurred_at=occurred_at,
        modified_at=modified_at,
        lead_ids=tuple(leads_of.get(record_id, ())),
        owner_id=_text(props.get("hubspot_owner_id")),
        duration=duration,
        direction=direction,
        status=status.upper() if status else None,
    )


def _deal_is_closed(props: Mapping[str, Any]) -> bool:
    closed = _text(props.get("hs_is_closed"))
    if closed is not None:
        return closed.lower() == "true"
    return (_text(props.get("dealstage")) or "").lower() in _CLOSED_DEAL_STAGES


def _owner(item: Mapping[str, Any], archived: bool) -> CrmOwner | None:
    owner_id = _text(item.get("id"))
    if owner_id is None:
        return None
    teams = tuple(
        name
        for name in (_text(t.get("name")) for t in item.get("teams") or [] if isinstance(t, dict))
        if name is not None
    )
    return CrmOwner(
        id=owner_id,
        email=_text(item.get("email")),
        first_name=_text(item.get("firstName")),
        last_name=_text(item.get("lastName")),
        archived=bool(item.get("archived", archived)),
        teams=teams,
    )
