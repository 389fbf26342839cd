"""A loopback fake of the HubSpot CRM v3/v4 APIs that the worker uses, for the demo and tests.

It speaks HubSpot's request and response shapes (search with filters, sorts and ``after``
paging, owners, v4 association batch reads with their 207 Multi-Status, single and batch contact
reads and writes, deals associated with contacts, archived listings, merges), enforces the
documented limits with HubSpot's error bodies (see /work/shared/API-FACTS.md and the sources
cited below), and can inject failures — the next n requests, or a seeded random share of them —
and modifications while a search is being paged, so the real client runs unchanged against it.
It stays fast at 100,000 records (a sorted index per sort property) so that sync can be tested
and benchmarked at scale. It must never listen beyond 127.0.0.1, never talk to the real HubSpot,
and never record the token in its request log, echo it in a response or show it in a repr.
"""

from __future__ import annotations

import bisect
import functools
import hmac
import json
import random
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from worker.fakes.server import FakeServer, Request, Response

ENGAGEMENT_TYPES = ("calls", "emails", "meetings", "notes", "tasks")
SEARCHABLE_TYPES = ("contacts", *ENGAGEMENT_TYPES, "deals")

# URL object type names HubSpot accepts for the same object: plural, singular, type id.
_OBJECT_ALIASES = {
    "contacts": "contacts", "contact": "contacts", "0-1": "contacts",
    "calls": "calls", "call": "calls", "0-48": "calls",
    "emails": "emails", "email": "emails", "0-49": "emails",
    "meetings": "meetings", "meeting": "meetings", "0-47": "meetings",
    "notes": "notes", "note": "notes", "0-46": "notes",
    "tasks": "tasks", "task": "tasks", "0-27": "tasks",
    "deals": "deals", "deal": "deals", "0-3": "deals",
}  # fmt: skip

# HUBSPOT_DEFINED association type ids, engagement/deal <-> contact (HubSpot's associations v4
# docs, "association type id values").
_ASSOCIATION_TYPE_IDS = {
    ("calls", "contacts"): 194, ("contacts", "calls"): 193,
    ("emails", "contacts"): 198, ("contacts", "emails"): 197,
    ("meetings", "contacts"): 200, ("contacts", "meetings"): 199,
    ("notes", "contacts"): 202, ("contacts", "notes"): 201,
    ("tasks", "contacts"): 204, ("contacts", "tasks"): 203,
    ("deals", "contacts"): 3, ("contacts", "deals"): 4,
}  # fmt: skip

#: The standard lifecycle stages in their only allowed direction of travel.
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)

#: HubSpot's "Became a … Date" properties: when the contact entered each standard stage.
LIFECYCLE_DATE_PROPERTIES = frozenset(
    f"hs_lifecyclestage_{stage}_date" for stage in LIFECYCLE_STAGES
)

CONTACT_PROPERTIES = LIFECYCLE_DATE_PROPERTIES | frozenset(
    {
        "firstname", "lastname", "email", "phone", "company", "lifecyclestage",
        "hs_lead_status", "hubspot_owner_id", "hubspot_owner_assigneddate",
        # Not a standard contact property (portals create it); accepted so the worker's default
        # priority property works against the fake.
        "hs_lead_priority",
        "hs_analytics_source", "hubspotscore", "createdate", "lastmodifieddate",
        "notes_last_updated", "hs_object_id", "hs_merged_object_ids",
    }
)  # fmt: skip
ENGAGEMENT_PROPERTIES = frozenset(
    {
        "hs_timestamp", "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate",
        "hs_object_id", "hs_body_preview",
        "hs_call_title", "hs_call_body", "hs_call_duration", "hs_call_direction",
        "hs_call_status", "hs_call_disposition",
        "hs_email_subject", "hs_email_text", "hs_email_direction", "hs_email_status",
        "hs_meeting_title", "hs_meeting_body", "hs_meeting_start_time", "hs_meeting_end_time",
        "hs_meeting_outcome",
        "hs_note_body",
        "hs_task_subject", "hs_task_body", "hs_task_status", "hs_task_priority", "hs_task_type",
    }
)  # fmt: skip
DEAL_PROPERTIES = frozenset(
    {
        "dealname", "dealstage", "pipeline", "amount", "closedate", "hubspot_owner_id",
        "hs_is_closed", "createdate", "hs_lastmodifieddate", "hs_object_id",
    }
)  # fmt: skip
# The stage ids of the "default" deal pipeline every portal starts with, in display order
# (Appointment Scheduled 20 %, Qualified to Buy 40 %, Presentation Scheduled 60 %, Decision
# Maker Bought-In 80 %, Contract Sent 90 %, Closed Won 100 %, Closed Lost 0 %). The ids are
# the internal ids the API reads and writes (developers.hubspot.com/docs/api/crm/deals: "you
# must use the internal ID of a deal stage"); HubSpot's reference pages do not list them, so
# they are taken from portals' GET /crm/v3/pipelines/deals answers (UNCONFIRMED in an official
# list). Portals rename and add stages and the ids stay, so closed-ness belongs to the stage's
# metadata (pipelines guide: probability 1.0 closed won, 0.0 closed lost), not to its id.
DEFAULT_DEAL_STAGES = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
)
# hs_is_closed: a calculated, read-only boolean deal property, "True if the deal was won or
# lost" (its description as integrators quote HubSpot's property definitions; the default deal
# properties article, knowledge.hubspot.com/crm-deals/hubspots-default-deal-properties, says a
# move into a closed won or closed lost stage closes the deal; the exact definition text is
# UNCONFIRMED). API reads return booleans as the strings "true"/"false". The fake derives it
# from these two stages unless a test says otherwise.
_CLOSED_DEAL_STAGES = frozenset({"closedwon", "closedlost"})
DATETIME_PROPERTIES = frozenset(
    {
        "createdate", "lastmodifieddate", "notes_last_updated", "hubspot_owner_assigneddate",
        "hs_createdate", "hs_lastmodifieddate", "hs_timestamp", "hs_meeting_start_time",
        "hs_meeting_end_time", *LIFECYCLE_DATE_PROPERTIES,
    }
)  # fmt: skip
_READ_ONLY_CONTACT_PROPERTIES = frozenset(
    {"hs_object_id", "lastmodifieddate", "hs_merged_object_ids"}
)
_DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "lastmodifieddate", "hs_object_id"),
    **{kind: ("hs_createdate", "hs_lastmodifieddate", "hs_object_id") for kind in ENGAGEMENT_TYPES},
    "deals": ("createdate", "hs_lastmodifieddate", "hs_object_id", "dealname", "dealstage"),
}

_OPERATORS = frozenset(
    {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
     "NOT_HAS_PROPERTY"}
)  # fmt: skip

# Search limits (developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm).
_SEARCH_MAX_LIMIT = 200
_SEARCH_DEFAULT_LIMIT = 10
_SEARCH_RESULT_CAP = 10_000
_MAX_FILTER_GROUPS = 5
_MAX_FILTERS_PER_GROUP = 6
_MAX_FILTERS = 18
_MAX_SEARCH_BODY_CHARS = 3_000
_OWNERS_DEFAULT_LIMIT = 100
_OWNERS_MAX_LIMIT = 500
# Associations batch read: at most 1,000 ids since 2025-02-10, "larger requests ... will be
# rejected with an error response" (developers.hubspot.com/changelog/bug-fix-batch-read-limit-
# for-hubspot-associations-api); the body is not documented: a VALIDATION_ERROR 400 like the
# other batch limits here (UNCONFIRMED).
_ASSOCIATIONS_MAX_INPUTS = 1_000
_ASSOCIATIONS_PER_INPUT_PAGE = 500
_BATCH_WRITE_MAX_INPUTS = 100
_LIST_DEFAULT_LIMIT = 10
_LIST_MAX_LIMIT = 100
_NOMINAL_DAILY_LIMIT = 1_000_000
_NOMINAL_BURST_LIMIT = 190  # Professional/Enterprise: 190 per 10 s (usage guidelines)

_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
_NOT_FOUND_MESSAGE = "Object not found.  objectId are usually numeric."
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def hs_datetime(at: datetime) -> str:
    """HubSpot's datetime property format: ISO 8601 UTC with milliseconds and Z."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _instant(value: str | None) -> datetime | None:
    """A stored or filter datetime value (epoch ms or ISO) as aware UTC, None if unparseable.

    Deliberately separate from the client's parser: a bug there must not be hidden by sharing it.
    """
    if value is None or value == "":
        return None
    return _parsed_instant(value)


@functools.lru_cache(maxsize=1 << 18)
def _parsed_instant(value: str) -> datetime | None:
    # Cached: a search compares every candidate's stored value, and they rarely change.
    text = value.strip()
    try:
        if text.lstrip("-").isdigit():
            return _EPOCH + timedelta(milliseconds=int(text))
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _correlation_id() -> str:
    return str(uuid.uuid4())


def _batch_response(
    results: list[dict[str, Any]], errors: list[dict[str, Any]], now: datetime
) -> Response:
    """A batch endpoint's answer: 200, or 207 with ``numErrors`` and ``errors`` when some
    inputs failed."""
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": hs_datetime(now),
        "completedAt": hs_datetime(now),
    }
    if errors:
        body.update(numErrors=len(errors), errors=errors)
        return Response(207, body)
    return Response(200, body)


def _error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": _correlation_id(),
        "category": category,
        **extra,
    }


def _error(status: int, message: str, category: str, **extra: Any) -> Response:
    return Response(status, _error_body(message, category, **extra))


def _validation_error(message: str, **extra: Any) -> Response:
    return _error(400, message, "VALIDATION_ERROR", **extra)


class _Reject(Exception):
    """Raised inside a handler to answer with an error response at once."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class _Record:
    id: str
    properties: dict[str, str | None]
    created_at: datetime
    updated_at: datetime
    archived: bool = False
    archived_at: datetime | None = None
    #: Every value each property took, oldest first: (when, value), for propertiesWithHistory.
    history: dict[str, list[tuple[datetime, str | None]]] = field(default_factory=dict)


@dataclass
class _Owner:
    id: str
    email: str
    first_name: str
    last_name: str
    user_id: int
    teams: tuple[str, ...]
    archived: bool
    created_at: datetime


@dataclass
class _Failure:
    remaining: int
    status: int
    body: dict[str, Any] | None
    path_contains: str
    headers: dict[str, str]
    malformed: bool
    #: Matching requests to let through before failing (a fault between two calls).
    skip: int = 0


@dataclass
class _RandomFailure:
    rate: float
    status: int
    path_contains: str


@dataclass
class _Windows:
    """Request instants for the rolling rate-limit windows, on the fake's clock."""

    search: deque[datetime] = field(default_factory=deque)
    burst: deque[datetime] = field(default_factory=deque)
    daily: int = 0


class FakeHubSpot(FakeServer):
    """HubSpot's CRM endpoints the worker calls, over loopback, with a state API for tests.

    ``search_rate_per_s`` and ``burst_per_10s`` switch the search (secondly) and burst
    (ten-secondly rolling) limits on; both are counted on ``clock``. ``daily_limit`` is the
    portal's daily request limit, told in the ``X-HubSpot-RateLimit-Daily`` headers and
    enforced (429 DAILY) once spent; the fake's day never ends. ``properties`` adds custom
    contact property names. ``backward_lifecycle`` chooses what a backward lifecycle stage move
    does: "reject" (400, the default, the stricter reading) or "ignore" (accepted and silently
    not applied, as the community reports for real portals — see ``_lifecycle_problem``).
    """

    def __init__(
        self,
        token: str = "fake-hubspot-token",
        *,
        clock: Callable[[], datetime] | None = None,
        search_rate_per_s: float | None = None,
        burst_per_10s: int | None = None,
        daily_limit: int | None = None,
        properties: Iterable[str] = (),
        backward_lifecycle: Literal["reject", "ignore"] = "reject",
    ) -> None:
        super().__init__()
        self._token = token
        self._clock = clock or (lambda: datetime.now(UTC))
        self._search_rate = search_rate_per_s
        self._burst = burst_per_10s
        self._daily_limit = daily_limit
        self._backward_lifecycle = backward_lifecycle
        self._objects: dict[str, dict[str, _Record]] = {kind: {} for kind in SEARCHABLE_TYPES}
        self._known: dict[str, set[str]] = {
            "contacts": set(CONTACT_PROPERTIES) | set(properties),
            **{kind: set(ENGAGEMENT_PROPERTIES) for kind in ENGAGEMENT_TYPES},
            "deals": set(DEAL_PROPERTIES),
        }
        # (object type, id) -> {(object type, id)}, kept symmetric.
        self._links: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._owners: dict[str, _Owner] = {}
        self._team_ids: dict[str, str] = {}
        self._failures: list[_Failure] = []
        self._random_failures: list[_RandomFailure] = []
        self._random = random.Random(0)
        self._search_hooks: list[Callable[[str, dict[str, Any]], None]] = []
        self._merged: dict[str, str] = {}  # merged-away contact id -> surviving id
        self._generation: Counter[str] = Counter()
        self._indexes: dict[tuple[str, str], tuple[int, list[_Record], list[Any]] | None] = {}
        self._windows = _Windows()
        self._next_id = 1001
        #: Answers by kind: "search", "other", "rate_limited", "injected" (for benchmarks).
        self.counts: Counter[str] = Counter()

        self.route("POST", "/crm/v3/objects/{objectType}/search", self._search)
        self.route("POST", "/crm/v3/objects/{objectType}/batch/update", self._batch_update)
        self.route("POST", "/crm/v3/objects/{objectType}/batch/read", self._batch_read)
        self.route("GET", "/crm/v3/objects/{objectType}", self._list_objects)
        self.route("GET", "/crm/v3/objects/{objectType}/{objectId}", self._get_object)
        self.route("PATCH", "/crm/v3/objects/{objectType}/{objectId}", self._patch_object)
        self.route("GET", "/crm/v3/properties/{objectType}", self._properties)
        self.route("GET", "/crm/v3/owners", self._owners_page)
        self.route("GET", "/crm/v3/owners/", self._owners_page)
        self.route(
            "POST",
            "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read",
            self._associations_read,
        )

    def __repr__(self) -> str:
        where = self.base_url if self._httpd is not None else "stopped"
        return f"FakeHubSpot({where})"

    @property
    def token(self) -> str:
        """The token this fake accepts (a made-up test credential, shown by ``fake-hubspot``)."""
        return self._token

    # -- state API -----------------------------------------------------------------------------
    def add_owner(
        self,
        id: str,
        email: str,
        first_name: str,
        last_name: str,
        *,
        teams: Sequence[str] = (),
        archived: bool = False,
    ) -> None:
        with self.lock:
            for team in teams:
                self._team_ids.setdefault(team, str(len(self._team_ids) + 1))
            self._owners[id] = _Owner(
                id=id,
                email=email,
                first_name=first_name,
                last_name=last_name,
                user_id=9_000_000 + len(self._owners) + 1,
                teams=tuple(teams),
                archived=archived,
                created_at=self._clock(),
            )

    def upsert_contact(self, id: str | None = None, **properties: str | None) -> str:
        """Create or update a contact with raw property values, stored as given (strings).

        Values are not validated, so tests can plant malformed data; None or "" clears.
        """
        with self.lock:
            now = self._clock()
            contacts = self._objects["contacts"]
            record = contacts.get(id) if id is not None else None
            created = record is None
            if record is None:
                record = self._new_record("contacts", id, now)
                record.properties["createdate"] = hs_datetime(now)
            self._known["contacts"].update(properties)
            self._apply_contact_changes(record, properties, now, force_touch=created)
            return record.id

    def add_engagement(
        self,
        kind: str,
        properties: Mapping[str, str | None],
        contact_ids: Sequence[str],
        id: str | None = None,
    ) -> str:
        """Log a call/email/meeting/note/task on contacts, as a rep would in HubSpot.

        Like HubSpot, logging an activity also moves the contacts' ``notes_last_updated``
        (last activity date) and ``lastmodifieddate``.
        """
        with self.lock:
            kind = self._object_type(kind)
            if kind not in ENGAGEMENT_TYPES:
                raise ValueError(
                    f"{kind} is not an engagement type ({', '.join(ENGAGEMENT_TYPES)})"
                )
            unknown = [cid for cid in contact_ids if cid not in self._objects["contacts"]]
            if unknown:
                raise KeyError(f"no such contacts: {unknown}")
            now = self._clock()
            record = self._objects[kind].get(id) if id is not None else None
            if record is None:
                record = self._new_record(kind, id, now)
                record.properties["hs_createdate"] = hs_datetime(now)
            self._known[kind].update(properties)
            record.properties.update({k: (v if v != "" else None) for k, v in properties.items()})
            if "hs_lastmodifieddate" not in properties:
                record.properties["hs_lastmodifieddate"] = hs_datetime(now)
            record.updated_at = _instant(record.properties["hs_lastmodifieddate"]) or now
            self._changed(kind)
            created = _instant(record.properties.get("hs_createdate"))
            record.created_at = created or record.created_at
            activity_at = (
                _instant(record.properties.get("hs_timestamp"))
                or _instant(record.properties.get("hs_meeting_start_time"))
                or now
            )
            for contact_id in contact_ids:
                self._link((kind, record.id), ("contacts", contact_id))
                contact = self._objects["contacts"][contact_id]
                last = _instant(contact.properties.get("notes_last_updated"))
                bump: dict[str, str | None] = {}
                if last is None or activity_at > last:
                    bump["notes_last_updated"] = hs_datetime(activity_at)
                self._apply_contact_changes(contact, bump, now, force_touch=True)
            return record.id

    def archive_contact(self, id: str) -> None:
        with self.lock:
            record = self._objects["contacts"][id]
            record.archived = True
            record.archived_at = self._clock()
            self._changed("contacts")

    def merge_contacts(self, primary_id: str, merged_id: str) -> None:
        """Merge ``merged_id`` into ``primary_id`` as HubSpot's merge does: the merged record
        disappears from search and batch writes, its id answers single reads and PATCHes as the
        survivor, its associations move over, and the survivor lists it in
        ``hs_merged_object_ids`` (";"-separated)."""
        with self.lock:
            contacts = self._objects["contacts"]
            primary, merged = contacts[primary_id], contacts.pop(merged_id)
            self._merged[merged_id] = primary_id
            for other in self._links.pop(("contacts", merged_id), set()):
                self._links[other].discard(("contacts", merged_id))
                self._link(other, ("contacts", primary_id))
            ids = [i for i in (primary.properties.get("hs_merged_object_ids") or "").split(";")]
            ids = [i for i in ids if i] + [merged_id]
            ids += [
                i for i in (merged.properties.get("hs_merged_object_ids") or "").split(";") if i
            ]
            primary.properties["hs_merged_object_ids"] = ";".join(ids)
            self._apply_contact_changes(primary, {}, self._clock(), force_touch=True)

    def update_engagement(self, kind: str, id: str, **properties: str | None) -> None:
        """Edit a logged activity (its contacts are not modified, only the activity)."""
        with self.lock:
            kind = self._object_type(kind)
            record = self._objects[kind][id]
            self._known[kind].update(properties)
            record.properties.update({k: (v if v != "" else None) for k, v in properties.items()})
            now = self._clock()
            record.properties["hs_lastmodifieddate"] = hs_datetime(now)
            record.updated_at = now
            self._changed(kind)

    def add_deal(
        self,
        *,
        stage: str = "appointmentscheduled",
        contact_ids: Sequence[str],
        id: str | None = None,
        closed: bool | None = None,
    ) -> str:
        """Create a deal in the default pipeline, associated with the contacts (both ways).

        ``closed`` sets ``hs_is_closed``; None derives it from the stage (closed won/lost), as
        HubSpot calculates it. The contacts themselves are not modified.
        """
        with self.lock:
            unknown = [cid for cid in contact_ids if cid not in self._objects["contacts"]]
            if unknown:
                raise KeyError(f"no such contacts: {unknown}")
            now = self._clock()
            record = self._new_record("deals", id, now)
            record.properties.update(
                {
                    "dealname": f"Deal {record.id}",
                    "dealstage": stage,
                    "pipeline": "default",
                    "hs_is_closed": _deal_closed_text(stage, closed),
                    "createdate": hs_datetime(now),
                    "hs_lastmodifieddate": hs_datetime(now),
                }
            )
            for contact_id in contact_ids:
                self._link(("deals", record.id), ("contacts", contact_id))
            return record.id

    def update_deal(self, id: str, **properties: str | None) -> None:
        """Edit a deal's raw properties ("" or None clears one). A new ``dealstage`` without an
        ``hs_is_closed`` recalculates it, as HubSpot does."""
        with self.lock:
            record = self._objects["deals"][id]
            self._known["deals"].update(properties)
            record.properties.update({k: (v if v != "" else None) for k, v in properties.items()})
            if "dealstage" in properties and "hs_is_closed" not in properties:
                stage = record.properties.get("dealstage") or ""
                record.properties["hs_is_closed"] = _deal_closed_text(stage, None)
            now = self._clock()
            record.properties["hs_lastmodifieddate"] = hs_datetime(now)
            record.updated_at = now
            self._changed("deals")

    def deal(self, id: str) -> dict[str, str | None]:
        """The deal's current properties (raises KeyError for an unknown id)."""
        with self.lock:
            return dict(self._objects["deals"][id].properties)

    def during_search(self, hook: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``hook(object type, request body)`` inside every valid search, before its
        results are computed (under the fake's lock): how tests modify records while a client
        is paging."""
        with self.lock:
            self._search_hooks.append(hook)

    def spend_daily_requests(self, n: int) -> None:
        """Count ``n`` requests against today's limit, as other apps of the portal do."""
        with self.lock:
            self._windows.daily += n

    def fail_randomly(
        self, rate: float, status: int, *, seed: int | None = None, path_contains: str = ""
    ) -> None:
        """Answer a ``rate`` share of the authenticated requests whose path contains
        ``path_contains`` with ``status`` and HubSpot's body for it (429: the secondly limit
        on search, else the ten-secondly one). ``seed`` makes the draw repeatable; several
        rules draw from one generator in the order they were added."""
        with self.lock:
            if seed is not None:
                self._random = random.Random(seed)
            self._random_failures.append(_RandomFailure(rate, status, path_contains))

    def contact(self, id: str) -> dict[str, str | None]:
        """The contact's current properties (raises KeyError for an unknown id)."""
        with self.lock:
            return dict(self._objects["contacts"][id].properties)

    def contacts(self) -> dict[str, dict[str, str | None]]:
        """Every live contact's properties by id."""
        with self.lock:
            records = self._objects["contacts"].values()
            return {r.id: dict(r.properties) for r in records if not r.archived}

    def contact_ids_of(self, kind: str, id: str) -> list[str]:
        """The ids of the live contacts an engagement is associated with, in id order."""
        with self.lock:
            kind = self._object_type(kind)
            return sorted(
                (
                    other
                    for other_kind, other in self._links.get((kind, id), set())
                    if other_kind == "contacts" and not self._objects["contacts"][other].archived
                ),
                key=int,
            )

    def engagements(self, kind: str) -> list[dict[str, str | None]]:
        """The properties of every live engagement of one kind, in id order."""
        with self.lock:
            records = self._objects[self._object_type(kind)].values()
            live = sorted((r for r in records if not r.archived), key=lambda r: int(r.id))
            return [dict(r.properties) for r in live]

    def fail_next(
        self,
        n: int,
        status: int,
        body: dict[str, Any] | None = None,
        *,
        path_contains: str = "",
        headers: dict[str, str] | None = None,
        malformed: bool = False,
        skip: int = 0,
    ) -> None:
        """The next ``n`` authenticated requests whose path contains ``path_contains`` get this
        response, after ``skip`` of them went through; ``malformed`` sends an invalid JSON body
        with status 200 instead."""
        with self.lock:
            self._failures.append(
                _Failure(n, status, body, path_contains, dict(headers or {}), malformed, skip)
            )

    # -- request pipeline ----------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        with self.lock:
            if not self._authorized(request):
                return _error(401, _AUTH_MESSAGE, "INVALID_AUTHENTICATION")
            is_search = request.method == "POST" and request.path.endswith("/search")
            injected = self._take_failure(request.path) or self._random_failure(
                request.path, is_search
            )
            if injected is not None:
                self.counts["injected"] += 1
                return injected
            limited = self._rate_limited(is_search)
            if limited is not None:
                self.counts["rate_limited"] += 1
                return limited
            self.counts["search" if is_search else "other"] += 1
            try:
                response = super().dispatch(request)
            except _Reject as reject:
                response = reject.response
            if not is_search:
                # Search responses carry no rate-limit headers: search has its own limit and is
                # exempt from the ten-secondly one (spec x-hubspot-rate-limit-exemptions).
                response.headers.update(self._rate_headers())
            return response

    def not_found(self, request: Request) -> Response:
        return _error(404, f"Resource not found: {request.method} {request.path}", "NOT_FOUND")

    def _authorized(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode())

    def _take_failure(self, path: str) -> Response | None:
        for failure in self._failures:
            if failure.remaining > 0 and failure.path_contains in path:
                if failure.skip > 0:
                    failure.skip -= 1
                    continue
                failure.remaining -= 1
                if failure.malformed:
                    return Response(200, raw=b'{"results": [{"id": ', headers=failure.headers)
                body = failure.body if failure.body is not None else self._default_body(failure)
                return Response(failure.status, body, headers=failure.headers)
        return None

    def _random_failure(self, path: str, is_search: bool) -> Response | None:
        for rule in self._random_failures:
            if rule.path_contains in path and self._random.random() < rule.rate:
                if rule.status == 429 and is_search:
                    return Response(429, _secondly_limited_body())
                if rule.status == 429:
                    return Response(429, _burst_limited_body(), headers=self._rate_headers())
                failure = _Failure(1, rule.status, None, "", {}, False)
                return Response(rule.status, self._default_body(failure))
        return None

    @staticmethod
    def _default_body(failure: _Failure) -> dict[str, Any]:
        if failure.status == 429:
            return _burst_limited_body()
        if failure.status == 401:
            return _error_body(_AUTH_MESSAGE, "INVALID_AUTHENTICATION")
        category = "INTERNAL_ERROR" if failure.status >= 500 else "VALIDATION_ERROR"
        return _error_body(f"Injected failure {failure.status}", category)

    def _rate_limited(self, is_search: bool) -> Response | None:
        now = self._clock()
        windows = self._windows
        if self._daily_limit is not None and windows.daily >= self._daily_limit:
            return Response(429, _daily_limited_body(), headers=self._rate_headers())
        if is_search:
            _expire(windows.search, now - timedelta(seconds=1))
            if self._search_rate is not None and len(windows.search) >= self._search_rate:
                return Response(429, _secondly_limited_body())
            windows.search.append(now)
        else:
            _expire(windows.burst, now - timedelta(seconds=10))
            if self._burst is not None and len(windows.burst) >= self._burst:
                return Response(429, _burst_limited_body(), headers=self._rate_headers())
            windows.burst.append(now)
        windows.daily += 1
        return None

    def _rate_headers(self) -> dict[str, str]:
        maximum = self._burst if self._burst is not None else _NOMINAL_BURST_LIMIT
        daily = self._daily_limit if self._daily_limit is not None else _NOMINAL_DAILY_LIMIT
        return {
            "X-HubSpot-RateLimit-Daily": str(daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, daily - self._windows.daily)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(maximum),
            "X-HubSpot-RateLimit-Remaining": str(max(0, maximum - len(self._windows.burst))),
        }

    # -- endpoints -----------------------------------------------------------------------------
    def _search(self, request: Request) -> Response:
        kind = self._object_type(request.params["objectType"])
        if kind not in SEARCHABLE_TYPES:
            raise _Reject(_validation_error(f"Unable to infer object type from: {kind}"))
        if len(request.body) > _MAX_SEARCH_BODY_CHARS:
            # The 3,000-character cap is documented; its error body is not (UNCONFIRMED).
            raise _Reject(
                _validation_error(
                    f"Search request body exceeds {_MAX_SEARCH_BODY_CHARS} characters"
                )
            )
        body = self._json_object(request)
        groups = body.get("filterGroups") or []
        sorts = body.get("sorts") or []
        limit = body.get("limit", _SEARCH_DEFAULT_LIMIT)
        offset = self._offset(body.get("after"))
        self._check_search_shape(groups, sorts, limit)
        if offset + limit > _SEARCH_RESULT_CAP:
            # UNCONFIRMED body: HubSpot documents only "paging beyond 10,000 results gives a
            # 400" (search guide, Limitations); this VALIDATION_ERROR shape is our guess.
            raise _Reject(
                _validation_error(
                    f"Search results are limited to {_SEARCH_RESULT_CAP}; after={offset} with "
                    f"limit={limit} goes past that"
                )
            )
        for group in groups:
            for spec in group.get("filters") or []:
                self._check_filter(kind, spec)
        for sort in sorts:
            self._check_property(kind, sort.get("propertyName"))
        for hook in list(self._search_hooks):
            hook(kind, body)
        ordered = self._indexed_matches(kind, groups, sorts[0] if sorts else None)
        if ordered is None:
            live = [r for r in self._objects[kind].values() if not r.archived]
            matched = [r for r in live if self._matches_any(r, groups)]
            ordered = self._sorted(matched, sorts[0] if sorts else None)
        page = ordered[offset : offset + limit]
        requested = [str(p) for p in body.get("properties") or []]
        result: dict[str, Any] = {
            "total": len(ordered),
            "results": [self._record_json(kind, r, requested) for r in page],
        }
        if offset + limit < len(ordered):
            result["paging"] = {"next": {"after": str(offset + limit)}}
        return Response(200, result)

    def _get_object(self, request: Request) -> Response:
        kind = self._object_type(request.params["objectType"])
        record = self._live_record(kind, request.params["objectId"])
        requested = [
            name for value in request.query.get("properties", []) for name in value.split(",")
        ]
        return Response(200, self._record_json(kind, record, requested))

    def _patch_object(self, request: Request) -> Response:
        kind = self._object_type(request.params["objectType"])
        if kind != "contacts":
            raise _Reject(_validation_error(f"The fake only writes contacts, not {kind}"))
        record = self._live_record(kind, request.params["objectId"])
        changes = self._properties_of(self._json_object(request))
        applied = self._validated_contact_changes(record, changes)
        self._apply_contact_changes(record, applied, self._clock())
        return Response(200, self._record_json(kind, record, list(changes)))

    def _batch_update(self, request: Request) -> Response:
        kind = self._object_type(request.params["objectType"])
        if kind != "contacts":
            raise _Reject(_validation_error(f"The fake only writes contacts, not {kind}"))
        inputs = self._json_object(request).get("inputs")
        if not isinstance(inputs, list):
            raise _Reject(_validation_error("inputs: a list is required"))
        if len(inputs) > _BATCH_WRITE_MAX_INPUTS:
            raise _Reject(
                _validation_error(
                    _BATCH_LIMIT_EXCEEDED.format(limit=_BATCH_WRITE_MAX_INPUTS, got=len(inputs))
                )
            )
        ids = [str(item.get("id")) for item in inputs if isinstance(item, dict)]
        if len(ids) != len(inputs):
            raise _Reject(_validation_error("inputs: each input needs an id and properties"))
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise _Reject(_validation_error(f"Duplicate IDs found in batch input: {duplicates}."))
        contacts = self._objects["contacts"]
        planned: list[tuple[_Record, dict[str, str | None], list[str]]] = []
        errors: list[dict[str, Any]] = []
        for item, record_id in zip(inputs, ids, strict=True):
            record = contacts.get(record_id)
            if record is None or record.archived:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": _NOT_FOUND_MESSAGE,
                        "context": {"ids": [record_id]},
                    }
                )
                continue
            changes = self._properties_of(item)
            # Validate everything before writing anything: a bad input fails the whole batch.
            planned.append(
                (record, self._validated_contact_changes(record, changes), list(changes))
            )
        now = self._clock()
        results = []
        for record, applied, names in planned:
            self._apply_contact_changes(record, applied, now)
            results.append(self._record_json("contacts", record, names))
        return _batch_response(results, errors, now)

    def _properties(self, request: Request) -> Response:
        """The object's property definitions (CRM properties API, ``results`` with ``name``);
        the fake knows the properties it was given or created records with."""
        kind = self._object_type(request.params["objectType"])
        if kind not in self._known:
            raise _Reject(_validation_error(f"Unable to infer object type from: {kind}"))
        names = sorted(self._known[kind])
        return Response(
            200,
            {
                "results": [
                    {"name": n, "label": n, "type": "string", "fieldType": "text"} for n in names
                ]
            },
        )

    def _owners_page(self, request: Request) -> Response:
        limit = self._int_arg(request, "limit", _OWNERS_DEFAULT_LIMIT)
        if not 1 <= limit <= _OWNERS_MAX_LIMIT:
            raise _Reject(_validation_error(f"limit must be between 1 and {_OWNERS_MAX_LIMIT}"))
        offset = self._offset(request.arg("after"))
        archived = (request.arg("archived") or "false").lower() == "true"
        email = request.arg("email")
        owners = sorted(
            (
                o
                for o in self._owners.values()
                if o.archived == archived and (email is None or o.email.lower() == email.lower())
            ),
            key=lambda o: (not o.id.isdigit(), int(o.id) if o.id.isdigit() else 0, o.id),
        )
        body: dict[str, Any] = {
            "results": [self._owner_json(o) for o in owners[offset : offset + limit]]
        }
        if offset + limit < len(owners):
            after = str(offset + limit)
            link = f"{self.base_url}/crm/v3/owners/?after={after}&limit={limit}"
            body["paging"] = {"next": {"after": after, "link": link}}
        return Response(200, body)

    def _associations_read(self, request: Request) -> Response:
        from_kind = self._object_type(request.params["fromObjectType"])
        to_kind = self._object_type(request.params["toObjectType"])
        for kind in (from_kind, to_kind):
            if kind not in SEARCHABLE_TYPES:
                raise _Reject(_validation_error(f"Unable to infer object type from: {kind}"))
        inputs = _id_inputs(
            self._json_object(request),
            _ASSOCIATIONS_MAX_INPUTS,
            "Too many inputs: at most {limit}, got {got}",
        )
        type_id = _ASSOCIATION_TYPE_IDS.get((from_kind, to_kind), 0)
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            from_id = str(item["id"])
            start = self._offset(item.get("after"))
            targets = sorted(
                (
                    other_id
                    for other_kind, other_id in self._links.get((from_kind, from_id), set())
                    if other_kind == to_kind and not self._objects[to_kind][other_id].archived
                ),
                key=int,
            )
            if not targets:
                # HubSpot answers an input without associations with a per-input error and
                # HTTP 207, not an empty "to" list: the SDK maps 207 to
                # BatchResponsePublicAssociationMultiWithErrors (HubSpot/hubspot-api-python
                # crm/associations/v4/api/batch_api.py get_page), and integrators report this
                # body with subCategory crm.associations.NO_ASSOCIATIONS_FOUND.
                errors.append(_no_associations_error(from_kind, from_id, to_kind))
                continue
            chunk = targets[start : start + _ASSOCIATIONS_PER_INPUT_PAGE]
            entry: dict[str, Any] = {
                "from": {"id": from_id},
                "to": [
                    {
                        "toObjectId": int(target),
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}
                        ],
                    }
                    for target in chunk
                ],
            }
            if start + _ASSOCIATIONS_PER_INPUT_PAGE < len(targets):
                entry["paging"] = {
                    "next": {"after": str(start + _ASSOCIATIONS_PER_INPUT_PAGE), "link": None}
                }
            results.append(entry)
        return _batch_response(results, errors, self._clock())

    def _batch_read(self, request: Request) -> Response:
        kind = self._object_type(request.params["objectType"])
        if kind not in SEARCHABLE_TYPES:
            raise _Reject(_validation_error(f"Unable to infer object type from: {kind}"))
        body = self._json_object(request)
        with_history = [str(p) for p in body.get("propertiesWithHistory") or []]
        if with_history:
            # HubSpot reads property histories for at most 50 records a request (its error,
            # quoted in PipedreamHQ/pipedream#8462).
            inputs = _id_inputs(body, _HISTORY_MAX_INPUTS, _HISTORY_LIMIT_EXCEEDED)
        else:
            inputs = _id_inputs(body, _BATCH_WRITE_MAX_INPUTS, _BATCH_LIMIT_EXCEEDED)
        requested = [str(p) for p in body.get("properties") or []]
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        for item in inputs:
            record = self._objects[kind].get(str(item["id"]))
            if record is None or record.archived:
                missing.append(str(item["id"]))
                continue
            result = self._record_json(kind, record, requested)
            if with_history:
                result["propertiesWithHistory"] = {
                    name: _versions(record.history.get(name, []))
                    for name in with_history
                    if name in self._known[kind]
                }
            results.append(result)
        errors = []
        if missing:
            # Batch read answers unknown ids with 207 and one OBJECT_NOT_FOUND error listing
            # them (hubspot-api-python BatchResponseSimplePublicObjectWithErrors).
            errors.append(
                _error_body(
                    f"Could not get some {kind} objects, they may be deleted or not exist. "
                    f"Check that ids are valid.",
                    "OBJECT_NOT_FOUND",
                    context={"ids": missing},
                )
            )
        return _batch_response(results, errors, self._clock())

    def _list_objects(self, request: Request) -> Response:
        """GET /crm/v3/objects/{objectType}: records in id order; ``archived=true`` lists only
        archived ones (with ``archivedAt``), the only way to learn of them: search never
        returns archived records."""
        kind = self._object_type(request.params["objectType"])
        if kind not in SEARCHABLE_TYPES:
            raise _Reject(_validation_error(f"Unable to infer object type from: {kind}"))
        limit = self._int_arg(request, "limit", _LIST_DEFAULT_LIMIT)
        if not 1 <= limit <= _LIST_MAX_LIMIT:
            raise _Reject(_validation_error(f"limit must be between 1 and {_LIST_MAX_LIMIT}"))
        offset = self._offset(request.arg("after"))
        archived = (request.arg("archived") or "false").lower() == "true"
        records = sorted(
            (r for r in self._objects[kind].values() if r.archived == archived),
            key=lambda r: int(r.id),
        )
        requested = [n for value in request.query.get("properties", []) for n in value.split(",")]
        answer: dict[str, Any] = {
            "results": [
                self._record_json(kind, r, requested) for r in records[offset : offset + limit]
            ]
        }
        if offset + limit < len(records):
            after = str(offset + limit)
            link = f"{self.base_url}/crm/v3/objects/{kind}?after={after}&limit={limit}"
            answer["paging"] = {"next": {"after": after, "link": link}}
        return Response(200, answer)

    # -- search internals ----------------------------------------------------------------------
    def _changed(self, kind: str) -> None:
        self._generation[kind] += 1

    def _index(self, kind: str, name: str) -> tuple[list[_Record], list[Any]] | None:
        """Live records having ``name``, sorted by (its sort key, id), with the keys; None when
        the values mix numbers and text (the generic path compares those as text)."""
        cached = self._indexes.get((kind, name))
        if cached is not None and cached[0] == self._generation[kind]:
            return cached[1], cached[2]
        keyed = [
            (key, int(r.id), r)
            for r in self._objects[kind].values()
            if not r.archived and (key := _sort_key(name, r.properties.get(name))) is not None
        ]
        if len({type(k) for k, _, _ in keyed}) > 1:
            self._indexes[(kind, name)] = None
            return None
        keyed.sort(key=lambda entry: (entry[0], entry[1]))
        records, keys = [r for _, _, r in keyed], [k for k, _, _ in keyed]
        self._indexes[(kind, name)] = (self._generation[kind], records, keys)
        return records, keys

    def _indexed_matches(
        self, kind: str, groups: list[dict[str, Any]], sort: dict[str, Any] | None
    ) -> list[_Record] | None:
        """The ordered matches of an ascending search whose every filter group bounds the sort
        property from below, through the sorted index; None when the search has another shape
        (the generic path then answers it, with the same result)."""
        if sort is None or not groups:
            return None
        if str(sort.get("direction", "ASCENDING")).upper() != "ASCENDING":
            return None
        name = str(sort["propertyName"])
        bounds: list[tuple[str, Any]] = []
        for group in groups:
            bound = next(
                (
                    (str(f["operator"]), _sort_key(name, str(f["value"])))
                    for f in group.get("filters") or []
                    if f.get("propertyName") == name and f.get("operator") in ("GT", "GTE", "EQ")
                ),
                None,
            )
            if bound is None or bound[1] is None:
                return None
            bounds.append(bound)
        index = self._index(kind, name)
        if index is None:
            return None
        records, keys = index
        if keys and any(type(low) is not type(keys[0]) for _, low in bounds):
            return None
        low = min(value for _, value in bounds)
        rest_of_instant = self._rest_of_instant(groups, bounds, records, keys)
        if rest_of_instant is not None:
            return rest_of_instant
        if len(groups) == 1 and len(groups[0].get("filters") or []) == 1:
            operator = bounds[0][0]
            if operator == "GTE":
                return records[bisect.bisect_left(keys, low) :]
            if operator == "GT":
                return records[bisect.bisect_right(keys, low) :]
        candidates = records[bisect.bisect_left(keys, low) :]
        return [r for r in candidates if self._matches_any(r, groups)]

    @staticmethod
    def _rest_of_instant(
        groups: list[dict[str, Any]],
        bounds: list[tuple[str, Any]],
        records: list[_Record],
        keys: list[Any],
    ) -> list[_Record] | None:
        """``(sort = T AND hs_object_id NOT_IN ids) OR sort > T`` — how the worker resumes a
        keyset search inside an instant — answered from the index without a full scan."""
        if len(groups) != 2 or [op for op, _ in bounds] != ["EQ", "GT"]:
            return None
        if bounds[0][1] != bounds[1][1] or len(groups[1].get("filters") or []) != 1:
            return None
        others = [f for f in groups[0].get("filters") or [] if f.get("operator") != "EQ"]
        if len(others) != 1 or others[0].get("operator") != "NOT_IN":
            return None
        if others[0].get("propertyName") != "hs_object_id":
            return None
        excluded = {str(v) for v in others[0].get("values") or []}
        start, end = bisect.bisect_left(keys, bounds[0][1]), bisect.bisect_right(keys, bounds[0][1])
        return [r for r in records[start:end] if r.id not in excluded] + records[end:]

    def _check_search_shape(self, groups: Any, sorts: Any, limit: Any) -> None:
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise _Reject(_validation_error("filterGroups must be a list of objects"))
        if not isinstance(sorts, list):
            raise _Reject(_validation_error("sorts must be a list"))
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise _Reject(_validation_error("limit must be a non-negative integer"))
        if limit > _SEARCH_MAX_LIMIT:
            raise _Reject(
                _validation_error(
                    f"Paging limit exceeded. Limit {limit} cannot be greater than "
                    f"{_SEARCH_MAX_LIMIT}."
                )
            )
        if len(groups) > _MAX_FILTER_GROUPS:
            raise _Reject(
                _validation_error(
                    f"Too many filter groups ({len(groups)}); the maximum is {_MAX_FILTER_GROUPS}"
                )
            )
        total = 0
        for group in groups:
            filters = group.get("filters") or []
            if len(filters) > _MAX_FILTERS_PER_GROUP:
                raise _Reject(
                    _validation_error(
                        f"Too many filters in a group ({len(filters)}); the maximum is "
                        f"{_MAX_FILTERS_PER_GROUP}"
                    )
                )
            total += len(filters)
        if total > _MAX_FILTERS:
            raise _Reject(
                _validation_error(f"Too many filters ({total}); the maximum is {_MAX_FILTERS}")
            )
        if len(sorts) > 1:
            raise _Reject(_validation_error("Only one sort is allowed per search"))

    def _check_property(self, kind: str, name: Any) -> str:
        if not isinstance(name, str) or name not in self._known[kind]:
            raise _Reject(
                _validation_error(
                    f"There was a problem with the request: property {name!r} does not exist "
                    f"on {kind}",
                )
            )
        return name

    def _check_filter(self, kind: str, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise _Reject(_validation_error("each filter must be an object"))
        name = self._check_property(kind, spec.get("propertyName"))
        operator = spec.get("operator")
        if operator not in _OPERATORS:
            raise _Reject(_validation_error(f"Unknown filter operator {operator!r}"))
        if operator in ("IN", "NOT_IN"):
            if not isinstance(spec.get("values"), list):
                raise _Reject(_validation_error(f"{operator} needs a list of values"))
            return
        if operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            return
        needed = ("value", "highValue") if operator == "BETWEEN" else ("value",)
        for key in needed:
            value = spec.get(key)
            if value is None:
                raise _Reject(_validation_error(f"{operator} on {name} needs {key}"))
            if name in DATETIME_PROPERTIES and _instant(str(value)) is None:
                raise _Reject(_validation_error(f"{value!r} is not a valid datetime for {name}"))

    def _matches_any(self, record: _Record, groups: list[dict[str, Any]]) -> bool:
        # Groups are ORed, the filters inside a group ANDed; no groups matches everything.
        if not groups:
            return True
        return any(
            all(self._matches(record, spec) for spec in group.get("filters") or [])
            for group in groups
        )

    def _matches(self, record: _Record, spec: dict[str, Any]) -> bool:
        name, operator = str(spec["propertyName"]), str(spec["operator"])
        actual = record.properties.get(name)
        if actual == "":
            actual = None
        if operator == "HAS_PROPERTY":
            return actual is not None
        if operator == "NOT_HAS_PROPERTY":
            return actual is None
        if operator in ("IN", "NOT_IN"):
            wanted = {str(v).casefold() for v in spec["values"]}
            hit = actual is not None and actual.casefold() in wanted
            return hit if operator == "IN" else not hit
        if actual is None:
            # ASSUMPTION: a record without the property matches NEQ and nothing else.
            return operator == "NEQ"
        low = _compare(name, actual, str(spec["value"]))
        if low is None:
            return False
        if operator == "BETWEEN":
            high = _compare(name, actual, str(spec["highValue"]))
            return high is not None and low >= 0 and high <= 0
        return {
            "EQ": low == 0,
            "NEQ": low != 0,
            "LT": low < 0,
            "LTE": low <= 0,
            "GT": low > 0,
            "GTE": low >= 0,
        }[operator]

    @staticmethod
    def _sorted(records: list[_Record], sort: dict[str, Any] | None) -> list[_Record]:
        # ASSUMPTION (undocumented by HubSpot): ties, and searches without a sort, are ordered
        # by id ascending; records without the sort property come last in either direction.
        by_id = sorted(records, key=lambda r: int(r.id))
        if sort is None:
            return by_id
        name = sort["propertyName"]
        descending = str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
        keyed = [(r, _sort_key(name, r.properties.get(name))) for r in by_id]
        present = [(r, k) for r, k in keyed if k is not None]
        missing = [r for r, k in keyed if k is None]
        kinds = {type(k) for _, k in present}
        if len(kinds) > 1:  # mixed numbers and text: compare everything as text
            present = [(r, str(r.properties.get(name)).casefold()) for r, _ in present]
        # sort() is stable even with reverse=True, so equal keys keep the id order.
        present.sort(key=lambda pair: pair[1], reverse=descending)
        return [r for r, _ in present] + missing

    # -- record internals ----------------------------------------------------------------------
    def _object_type(self, name: str) -> str:
        return _OBJECT_ALIASES.get(name.lower(), name.lower())

    def _new_record(self, kind: str, id: str | None, now: datetime) -> _Record:
        if id is None:
            id = str(self._next_id)
            self._next_id += 1
        elif id.isdigit():
            self._next_id = max(self._next_id, int(id) + 1)
        record = _Record(id, {"hs_object_id": id}, now, now)
        self._objects[kind][id] = record
        self._changed(kind)
        return record

    def _live_record(self, kind: str, record_id: str) -> _Record:
        if kind == "contacts":
            # A merged-away id still answers single reads and writes, as the survivor.
            record_id = self._merged.get(record_id, record_id)
        record = self._objects.get(kind, {}).get(record_id)
        if record is None or record.archived:
            raise _Reject(_error(404, _NOT_FOUND_MESSAGE, "OBJECT_NOT_FOUND"))
        return record

    def _link(self, a: tuple[str, str], b: tuple[str, str]) -> None:
        self._links.setdefault(a, set()).add(b)
        self._links.setdefault(b, set()).add(a)

    def _record_json(self, kind: str, record: _Record, requested: Iterable[str]) -> dict[str, Any]:
        # Requested properties come back even when empty (as null); names the object does not
        # know are left out, as HubSpot does.
        names = dict.fromkeys([*_DEFAULT_PROPERTIES[kind], *requested])
        return {
            "id": record.id,
            "properties": {n: record.properties.get(n) for n in names if n in self._known[kind]},
            "createdAt": hs_datetime(record.created_at),
            "updatedAt": hs_datetime(record.updated_at),
            "archived": record.archived,
            **({"archivedAt": hs_datetime(record.archived_at)} if record.archived_at else {}),
        }

    def _owner_json(self, owner: _Owner) -> dict[str, Any]:
        stamp = hs_datetime(owner.created_at)
        return {
            "id": owner.id,
            "email": owner.email,
            "firstName": owner.first_name,
            "lastName": owner.last_name,
            # Deactivated owners have userId null (owners API reference).
            "userId": None if owner.archived else owner.user_id,
            "userIdIncludingInactive": owner.user_id,
            "type": "PERSON",
            "archived": owner.archived,
            "createdAt": stamp,
            "updatedAt": stamp,
            "teams": [
                {"id": self._team_ids[team], "name": team, "primary": i == 0}
                for i, team in enumerate(owner.teams)
            ],
        }

    def _apply_contact_changes(
        self,
        record: _Record,
        changes: Mapping[str, str | None],
        now: datetime,
        *,
        force_touch: bool = False,
    ) -> None:
        props = record.properties
        owner_before = props.get("hubspot_owner_id")
        stage_before = props.get("lifecyclestage")
        changed = force_touch
        for name, value in changes.items():
            value = None if value == "" else value  # an empty string clears a property
            if props.get(name) != value:
                props[name] = value
                record.history.setdefault(name, []).append((now, value))
                changed = True
        owner_after = props.get("hubspot_owner_id")
        if (
            owner_after is not None
            and owner_after != owner_before
            and "hubspot_owner_assigneddate" not in changes
        ):
            props["hubspot_owner_assigneddate"] = hs_datetime(now)
        stage = props.get("lifecyclestage")
        entered = f"hs_lifecyclestage_{stage}_date"
        if stage in LIFECYCLE_STAGES and stage != stage_before and entered not in changes:
            props[entered] = hs_datetime(now)  # the stage's "Became a … Date", as HubSpot sets it
        if changed and "lastmodifieddate" not in changes:
            props["lastmodifieddate"] = hs_datetime(now)
        record.created_at = _instant(props.get("createdate")) or record.created_at
        record.updated_at = _instant(props.get("lastmodifieddate")) or now
        self._changed("contacts")

    def _validated_contact_changes(
        self, record: _Record, changes: Mapping[str, str]
    ) -> dict[str, str | None]:
        """The changes to apply, or a 400 in HubSpot's "Property values were not valid" form."""
        problems: list[dict[str, Any]] = []
        applied: dict[str, str | None] = {}
        for name, value in changes.items():
            problem: tuple[str, str] | None = None
            if name not in self._known["contacts"]:
                problem = ("PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
            elif name in _READ_ONLY_CONTACT_PROPERTIES:
                problem = ("READ_ONLY_VALUE", f'Property "{name}" is a read-only property')
            elif name == "lifecyclestage":
                problem = self._lifecycle_problem(record.properties.get(name), value)
                if problem is not None and problem[0] == "IGNORED":
                    continue
            elif name == "hubspot_owner_id" and value != "":
                owner = self._owners.get(value)
                if owner is None or owner.archived:
                    problem = ("INVALID_OPTION", f"{value} is not a valid owner id")
            if problem is not None:
                error, message = problem
                problems.append(
                    {
                        "isValid": False,
                        "message": message,
                        "error": error,
                        "name": name,
                        "localizedErrorMessage": message,
                    }
                )
                continue
            if name in DATETIME_PROPERTIES and value != "":
                parsed = _instant(value)
                # Datetimes are written as ms or ISO and always read back as ISO.
                applied[name] = hs_datetime(parsed) if parsed is not None else value
            else:
                applied[name] = value
        if problems:
            raise _Reject(
                _validation_error(
                    f"Property values were not valid: {json.dumps(problems, separators=(',', ':'))}"
                )
            )
        return applied

    def _lifecycle_problem(self, current: str | None, new: str) -> tuple[str, str] | None:
        """HubSpot's forward-only lifecycle rule.

        Sources: integrate.hubspot.com/t/update-lifecycle-stage-using-api/1333 (HubSpot staff:
        the stage "cannot move backwards ... first set the value to "" then (in a separate
        request) set the earlier lifecycle stage value"); knowledge.hubspot.com lifecycle docs.
        CONFLICT on what a backward write returns: the forum thread saw the v1 API answer 204
        and not apply it, later write-ups say v3 rejects it silently too; no source quotes an
        error message. The default here is the stricter "reject" (so a client that forgets the
        clear fails loudly in tests) with our own wording; "ignore" mimics the silent no-op.
        """
        if new == "":
            return None
        if new not in LIFECYCLE_STAGES:
            return (
                "INVALID_OPTION",
                f"{new} was not one of the allowed options: [{', '.join(LIFECYCLE_STAGES)}]",
            )
        backward = current in LIFECYCLE_STAGES and LIFECYCLE_STAGES.index(
            new
        ) < LIFECYCLE_STAGES.index(current)
        if not backward:
            return None
        if self._backward_lifecycle == "ignore":
            return ("IGNORED", "")
        return (
            "INVALID_OPTION",
            f"lifecyclestage cannot move backward from {current} to {new}; set it to "
            '"" in a separate request first, then set the earlier stage',
        )

    # -- request parsing -----------------------------------------------------------------------
    @staticmethod
    def _json_object(request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError as e:
            raise _Reject(_validation_error(f"Invalid input JSON: {e.__class__.__name__}")) from e
        if not isinstance(body, dict):
            raise _Reject(_validation_error("Invalid input JSON: an object is required"))
        return body

    @staticmethod
    def _properties_of(body: Mapping[str, Any]) -> dict[str, str]:
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise _Reject(_validation_error("properties: an object is required"))
        # HubSpot accepts numbers and booleans and stores their text.
        return {
            str(k): ("" if v is None else (str(v).lower() if isinstance(v, bool) else str(v)))
            for k, v in properties.items()
        }

    @staticmethod
    def _offset(after: Any) -> int:
        if after is None or after == "":
            return 0
        text = str(after)
        if not text.isdigit():
            raise _Reject(_validation_error(f"after must be a paging cursor, got {text!r}"))
        return int(text)

    @staticmethod
    def _int_arg(request: Request, name: str, default: int) -> int:
        raw = request.arg(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError as e:
            raise _Reject(_validation_error(f"{name} must be an integer")) from e


def _deal_closed_text(stage: str, closed: bool | None) -> str:
    """``hs_is_closed`` as HubSpot returns it: the text "true" or "false"."""
    if closed is None:
        closed = stage in _CLOSED_DEAL_STAGES
    return "true" if closed else "false"


def _expire(window: deque[datetime], before: datetime) -> None:
    while window and window[0] <= before:
        window.popleft()


def _secondly_limited_body() -> dict[str, Any]:
    return {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": _correlation_id(),
        "policyName": "SECONDLY",
    }


def _daily_limited_body() -> dict[str, Any]:
    # The usage guidelines' example of a 429 for the daily limit.
    return {
        "status": "error",
        "message": "You have reached your daily limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": _correlation_id(),
        "policyName": "DAILY",
        "requestId": str(uuid.uuid4()),
    }


def _burst_limited_body() -> dict[str, Any]:
    return {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": _correlation_id(),
        "policyName": "TEN_SECONDLY_ROLLING",
    }


def _no_associations_error(from_kind: str, from_id: str, to_kind: str) -> dict[str, Any]:
    from_name, to_name = from_kind.rstrip("s"), to_kind.rstrip("s")
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
        "context": {
            "fromObjectId": [from_id],
            "fromObjectType": [from_name],
            "toObjectType": [to_name],
        },
        "message": f"No {to_name} is associated with {from_name} {from_id}.",
    }


@functools.lru_cache(maxsize=1 << 18)
def _sort_key(name: str, value: str | None) -> datetime | float | str | None:
    if value is None or value == "":
        return None
    if name in DATETIME_PROPERTIES:
        return _instant(value)
    try:
        return float(value)
    except ValueError:
        return value.casefold()


def _compare(name: str, actual: str, wanted: str) -> int | None:
    """-1, 0 or 1 comparing a stored value with a filter value; None if they cannot compare."""
    if name in DATETIME_PROPERTIES:
        a_at, b_at = _instant(actual), _instant(wanted)
        if a_at is None or b_at is None:
            return None
        return (a_at > b_at) - (a_at < b_at)
    try:
        a_num, b_num = float(actual), float(wanted)
    except ValueError:
        a_text, b_text = actual.casefold(), wanted.casefold()
        return (a_text > b_text) - (a_text < b_text)
    return (a_num > b_num) - (a_num < b_num)


_BATCH_LIMIT_EXCEEDED = "Batch input limit exceeded: at most {limit} inputs, got {got}"
_HISTORY_MAX_INPUTS = 50
_HISTORY_LIMIT_EXCEEDED = (
    "The maximum number of inputs supported in a batch request for property histories is "
    "{limit}. Please reduce the number of items and try again (got {got})"
)


def _versions(history: list[tuple[datetime, str | None]]) -> list[dict[str, Any]]:
    """A property's history as HubSpot answers it: newest version first, each with its value
    ("" for a cleared one), timestamp and source (CRM objects guide, propertiesWithHistory)."""
    return [
        {"value": value or "", "timestamp": hs_datetime(at), "sourceType": "CRM_UI"}
        for at, value in reversed(history)
    ]


def _id_inputs(body: dict[str, Any], limit: int, too_many: str) -> list[dict[str, Any]]:
    """A batch body's ``inputs``: a list of ``{"id": …}`` of at most ``limit`` entries."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) and "id" in i for i in inputs):
        raise _Reject(_validation_error('inputs: a list of {"id": ...} is required'))
    if len(inputs) > limit:
        raise _Reject(_validation_error(too_many.format(limit=limit, got=len(inputs))))
    return inputs
