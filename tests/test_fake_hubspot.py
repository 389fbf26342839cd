"""The fake HubSpot behaves like HubSpot's documented API: shapes, limits, errors, quirks.

Raw HTTP against the fake over loopback, so these tests pin the fake itself; the client's tests
rely on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from worker.fakes.hubspot import DEFAULT_DEAL_STAGES, FakeHubSpot, hs_datetime

TOKEN = "pat-na1-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class Clock:
    """A settable clock for the fake (and anything else that takes ``now``)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(TOKEN, clock=clock, properties=["custom_region"]) as hubspot:
        yield hubspot


def post(fake: FakeHubSpot, path: str, body: Any, **kw: Any) -> requests.Response:
    return requests.post(fake.base_url + path, json=body, headers=AUTH, timeout=5, **kw)


def search(fake: FakeHubSpot, kind: str = "contacts", **body: Any) -> requests.Response:
    return post(fake, f"/crm/v3/objects/{kind}/search", body)


def patch(fake: FakeHubSpot, contact_id: str, **properties: str) -> requests.Response:
    return requests.patch(
        f"{fake.base_url}/crm/v3/objects/contacts/{contact_id}",
        json={"properties": properties},
        headers=AUTH,
        timeout=5,
    )


def gte(name: str, at: datetime) -> dict[str, Any]:
    ms = int(at.timestamp() * 1000)
    return {"filters": [{"propertyName": name, "operator": "GTE", "value": str(ms)}]}


# -- auth and bookkeeping --------------------------------------------------------------------------
def test_it_rejects_a_request_without_the_bearer_token(fake: FakeHubSpot) -> None:
    response = requests.get(fake.base_url + "/crm/v3/owners", timeout=5)
    assert response.status_code == 401
    body = response.json()
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["status"] == "error"
    assert body["message"].startswith("Authentication credentials not found.")
    assert body["correlationId"]


def test_it_rejects_a_wrong_token(fake: FakeHubSpot) -> None:
    response = requests.get(
        fake.base_url + "/crm/v3/owners", headers={"Authorization": "Bearer nope"}, timeout=5
    )
    assert response.status_code == 401


def test_it_records_requests_without_the_authorization_header(fake: FakeHubSpot) -> None:
    search(fake, limit=1)
    assert fake.requests[-1].path == "/crm/v3/objects/contacts/search"
    assert "authorization" not in fake.requests[-1].headers
    assert TOKEN not in repr(fake.requests) + repr(fake)


def test_an_unknown_route_is_a_json_404(fake: FakeHubSpot) -> None:
    response = requests.get(fake.base_url + "/crm/v3/nothing/here/at/all", headers=AUTH, timeout=5)
    assert response.status_code == 404
    assert response.json()["status"] == "error"


# -- search ----------------------------------------------------------------------------------------
def test_search_pages_with_after_and_omits_paging_on_the_last_page(fake: FakeHubSpot) -> None:
    ids = [fake.upsert_contact(firstname=f"n{i}") for i in range(5)]
    first = search(fake, limit=2).json()
    assert first["total"] == 5
    assert [r["id"] for r in first["results"]] == ids[:2]
    second = search(fake, limit=2, after=first["paging"]["next"]["after"]).json()
    third = search(fake, limit=2, after=second["paging"]["next"]["after"]).json()
    assert [r["id"] for r in second["results"] + third["results"]] == ids[2:]
    assert "paging" not in third


def test_search_uses_a_page_of_ten_by_default(fake: FakeHubSpot) -> None:
    for i in range(12):
        fake.upsert_contact(firstname=f"n{i}")
    assert len(search(fake).json()["results"]) == 10


def test_search_filters_dates_given_as_epoch_ms_or_iso(fake: FakeHubSpot, clock: Clock) -> None:
    fake.upsert_contact(firstname="old")
    clock.advance(hours=1)
    recent = fake.upsert_contact(firstname="recent")
    cutoff = T0 + timedelta(minutes=30)
    by_ms = search(fake, filterGroups=[gte("lastmodifieddate", cutoff)]).json()
    iso = {"propertyName": "lastmodifieddate", "operator": "GTE", "value": cutoff.isoformat()}
    by_iso = search(fake, filterGroups=[{"filters": [iso]}]).json()
    assert [r["id"] for r in by_ms["results"]] == [recent]
    assert [r["id"] for r in by_iso["results"]] == [recent]


def test_search_ands_filters_in_a_group_and_ors_groups(fake: FakeHubSpot) -> None:
    a = fake.upsert_contact(firstname="a", hs_lead_status="OPEN", lifecyclestage="lead")
    b = fake.upsert_contact(firstname="b", hs_lead_status="OPEN")
    c = fake.upsert_contact(firstname="c", lifecyclestage="customer")
    both = {
        "filters": [
            {"propertyName": "hs_lead_status", "operator": "EQ", "value": "open"},
            {"propertyName": "lifecyclestage", "operator": "HAS_PROPERTY"},
        ]
    }
    customer = {
        "filters": [{"propertyName": "lifecyclestage", "operator": "IN", "values": ["customer"]}]
    }
    ids = [r["id"] for r in search(fake, filterGroups=[both, customer]).json()["results"]]
    assert ids == [a, c]
    missing = {"filters": [{"propertyName": "lifecyclestage", "operator": "NOT_HAS_PROPERTY"}]}
    assert [r["id"] for r in search(fake, filterGroups=[missing]).json()["results"]] == [b]


def test_search_sorts_by_time_with_ties_broken_by_id(fake: FakeHubSpot, clock: Clock) -> None:
    late = fake.upsert_contact(firstname="late")
    clock.advance(minutes=-5)
    tie_1 = fake.upsert_contact(firstname="tie1")
    tie_2 = fake.upsert_contact(firstname="tie2")
    sort = {"propertyName": "lastmodifieddate", "direction": "ASCENDING"}
    ids = [r["id"] for r in search(fake, sorts=[sort]).json()["results"]]
    assert ids == [tie_1, tie_2, late]
    sort["direction"] = "DESCENDING"
    ids = [r["id"] for r in search(fake, sorts=[sort]).json()["results"]]
    assert ids == [late, tie_1, tie_2]


def test_search_returns_requested_and_default_properties(fake: FakeHubSpot) -> None:
    contact = fake.upsert_contact(firstname="Ann", phone="+1 555")
    result = search(fake, properties=["firstname", "company"]).json()["results"][0]
    assert set(result["properties"]) == {
        "createdate",
        "lastmodifieddate",
        "hs_object_id",
        "firstname",
        "company",
    }
    assert result["properties"]["company"] is None
    assert result["properties"]["hs_object_id"] == contact
    assert result["properties"]["createdate"] == "2026-11-20T09:00:00.000Z"
    assert result["createdAt"] == "2026-11-20T09:00:00.000Z"
    assert result["archived"] is False


def test_engagement_search_returns_the_engagement_defaults(fake: FakeHubSpot) -> None:
    contact = fake.upsert_contact(firstname="Ann")
    fake.add_engagement("calls", {"hs_timestamp": "1763629200000"}, [contact])
    result = search(fake, "calls", properties=["hs_timestamp"]).json()["results"][0]
    assert set(result["properties"]) == {
        "hs_createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
        "hs_timestamp",
    }


def test_search_never_returns_archived_records(fake: FakeHubSpot) -> None:
    kept = fake.upsert_contact(firstname="kept")
    gone = fake.upsert_contact(firstname="gone")
    fake.archive_contact(gone)
    body = search(fake).json()
    assert [r["id"] for r in body["results"]] == [kept]
    assert body["total"] == 1


HAS_NAME = {"propertyName": "firstname", "operator": "HAS_PROPERTY"}


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 201},  # page size max 200
        {"filterGroups": [{"filters": [HAS_NAME]}] * 6},  # at most 5 groups
        {"filterGroups": [{"filters": [HAS_NAME] * 7}]},  # at most 6 filters in a group
        {"filterGroups": [{"filters": [HAS_NAME] * 5}] * 4},  # at most 18 filters in all
        {"sorts": [{"propertyName": "createdate"}, {"propertyName": "lastmodifieddate"}]},
        {"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "HAS_PROPERTY"}]}]},
        {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
                                        "value": "yesterday"}]}]},
        {"properties": ["firstname"] * 400},  # request body over 3,000 characters
    ],
)  # fmt: skip
def test_search_rejects_requests_beyond_hubspots_limits(
    fake: FakeHubSpot, body: dict[str, Any]
) -> None:
    response = search(fake, **body)
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert response.json()["correlationId"]


def test_search_refuses_to_page_past_10000_results(fake: FakeHubSpot) -> None:
    assert search(fake, limit=200, after="9800").status_code == 200
    response = search(fake, limit=200, after="9801")
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_search_rate_limit_answers_429_secondly_until_a_second_passes(clock: Clock) -> None:
    with FakeHubSpot(TOKEN, clock=clock, search_rate_per_s=2) as hubspot:
        assert isinstance(hubspot, FakeHubSpot)
        assert search(hubspot).status_code == 200
        assert search(hubspot).status_code == 200
        limited = search(hubspot)
        assert limited.status_code == 429
        assert limited.json() == {
            "status": "error",
            "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": limited.json()["correlationId"],
            "policyName": "SECONDLY",
        }
        # Search does not count against the ten-secondly limit, nor the other way round.
        assert requests.get(hubspot.base_url + "/crm/v3/owners", headers=AUTH).status_code == 200
        clock.advance(seconds=1)
        assert search(hubspot).status_code == 200


def test_burst_limit_answers_429_ten_secondly_rolling(clock: Clock) -> None:
    with FakeHubSpot(TOKEN, clock=clock, burst_per_10s=3) as hubspot:
        assert isinstance(hubspot, FakeHubSpot)
        owners = hubspot.base_url + "/crm/v3/owners"
        remaining = [
            requests.get(owners, headers=AUTH).headers["X-HubSpot-RateLimit-Remaining"]
            for _ in range(3)
        ]
        assert remaining == ["2", "1", "0"]
        limited = requests.get(owners, headers=AUTH)
        assert limited.status_code == 429
        assert limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert limited.json()["message"] == "You have reached your ten_secondly_rolling limit."
        clock.advance(seconds=9)
        assert requests.get(owners, headers=AUTH).status_code == 429
        clock.advance(seconds=1)
        assert requests.get(owners, headers=AUTH).status_code == 200


def test_non_search_responses_carry_the_rate_limit_headers(fake: FakeHubSpot) -> None:
    headers = requests.get(fake.base_url + "/crm/v3/owners", headers=AUTH).headers
    for name in ("Daily", "Daily-Remaining", "Interval-Milliseconds", "Max", "Remaining"):
        assert f"X-HubSpot-RateLimit-{name}" in headers
    assert "X-HubSpot-RateLimit-Max" not in search(fake).headers


# -- owners ----------------------------------------------------------------------------------------
def test_owners_page_and_show_archived_ones_only_when_asked(fake: FakeHubSpot) -> None:
    fake.add_owner("11", "a@x.test", "Ann", "A", teams=["EMEA", "Hot"])
    fake.add_owner("12", "b@x.test", "Bob", "B")
    fake.add_owner("13", "c@x.test", "Cid", "C", archived=True)
    url = fake.base_url + "/crm/v3/owners"
    first = requests.get(url, params={"limit": 1}, headers=AUTH).json()
    assert first["results"][0] == {
        "id": "11",
        "email": "a@x.test",
        "firstName": "Ann",
        "lastName": "A",
        "userId": first["results"][0]["userId"],
        "userIdIncludingInactive": first["results"][0]["userId"],
        "type": "PERSON",
        "archived": False,
        "createdAt": "2026-11-20T09:00:00.000Z",
        "updatedAt": "2026-11-20T09:00:00.000Z",
        "teams": [
            {"id": "1", "name": "EMEA", "primary": True},
            {"id": "2", "name": "Hot", "primary": False},
        ],
    }
    after = first["paging"]["next"]["after"]
    second = requests.get(url, params={"limit": 1, "after": after}, headers=AUTH).json()
    assert [o["id"] for o in second["results"]] == ["12"]
    assert "paging" not in second
    archived = requests.get(url, params={"archived": "true"}, headers=AUTH).json()["results"]
    assert [(o["id"], o["archived"], o["userId"]) for o in archived] == [("13", True, None)]
    assert requests.get(url, params={"limit": 501}, headers=AUTH).status_code == 400


# -- associations ----------------------------------------------------------------------------------
def test_association_read_answers_207_for_inputs_without_associations(fake: FakeHubSpot) -> None:
    ann = fake.upsert_contact(firstname="Ann")
    bob = fake.upsert_contact(firstname="Bob")
    call = fake.add_engagement("calls", {"hs_timestamp": "1763629200000"}, [ann, bob])
    lonely = fake.add_engagement("calls", {"hs_timestamp": "1763629200000"}, [])
    response = post(
        fake,
        "/crm/v4/associations/calls/contacts/batch/read",
        {"inputs": [{"id": call}, {"id": lonely}]},
    )
    assert response.status_code == 207
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert body["results"] == [
        {
            "from": {"id": call},
            "to": [
                {
                    "toObjectId": int(contact),
                    "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": 194, "label": None}
                    ],
                }
                for contact in (ann, bob)
            ],
        }
    ]
    assert body["numErrors"] == 1
    error = body["errors"][0]
    assert error["subCategory"] == "crm.associations.NO_ASSOCIATIONS_FOUND"
    assert error["category"] == "OBJECT_NOT_FOUND"
    assert error["context"]["fromObjectId"] == [lonely]


def test_association_read_answers_200_when_every_input_has_associations(
    fake: FakeHubSpot,
) -> None:
    ann = fake.upsert_contact(firstname="Ann")
    call = fake.add_engagement("calls", {}, [ann])
    response = post(
        fake, "/crm/v4/associations/contacts/calls/batch/read", {"inputs": [{"id": ann}]}
    )
    assert response.status_code == 200
    assert "errors" not in response.json()
    assert response.json()["results"][0]["to"][0]["toObjectId"] == int(call)
    assert response.json()["results"][0]["to"][0]["associationTypes"][0]["typeId"] == 193


def test_association_read_rejects_more_than_1000_inputs(fake: FakeHubSpot) -> None:
    path = "/crm/v4/associations/calls/contacts/batch/read"
    inputs = [{"id": str(i)} for i in range(1001)]
    response = post(fake, path, {"inputs": inputs})
    assert response.status_code == 400
    body = response.json()
    assert (body["status"], body["category"]) == ("error", "VALIDATION_ERROR")
    assert "at most 1000" in body["message"] and body["correlationId"]
    assert post(fake, path, {"inputs": inputs[:1000]}).status_code == 207  # none associated


# -- single records and writes ---------------------------------------------------------------------
def test_get_object_returns_requested_properties_and_404s_like_hubspot(fake: FakeHubSpot) -> None:
    contact = fake.upsert_contact(firstname="Ann", company="Acme")
    url = f"{fake.base_url}/crm/v3/objects/contacts/{contact}"
    body = requests.get(url, params={"properties": "firstname,company"}, headers=AUTH).json()
    assert body["properties"]["company"] == "Acme"
    missing = requests.get(f"{fake.base_url}/crm/v3/objects/contacts/999999", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["message"] == "Object not found.  objectId are usually numeric."
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"


def test_patch_rejects_an_unknown_property(fake: FakeHubSpot) -> None:
    contact = fake.upsert_contact(firstname="Ann")
    response = patch(fake, contact, no_such_thing="1")
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert 'Property \\"no_such_thing\\" does not exist' in response.json()["message"]
    assert "PROPERTY_DOESNT_EXIST" in response.json()["message"]


def test_patch_accepts_a_registered_custom_property(fake: FakeHubSpot) -> None:
    contact = fake.upsert_contact(firstname="Ann")
    assert patch(fake, contact, custom_region="north").status_code == 200
    assert fake.contact(contact)["custom_region"] == "north"


def test_it_refuses_backward_lifecycle_stage_without_clear(fake: FakeHubSpot) -> None:
    contact = fake.upsert_contact(lifecyclestage="opportunity")
    response = patch(fake, contact, lifecyclestage="lead")
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert "cannot move backward from opportunity to lead" in response.json()["message"]
    assert fake.contact(contact)["lifecyclestage"] == "opportunity"
    assert patch(fake, contact, lifecyclestage="").status_code == 200
    assert fake.contact(contact)["lifecyclestage"] is None
    assert patch(fake, contact, lifecyclestage="lead").status_code == 200
    assert fake.contact(contact)["lifecyclestage"] == "lead"


def test_lifecycle_stage_moves_forward_without_clear(fake: FakeHubSpot) -> None:
    contact = fake.upsert_contact(lifecyclestage="lead")
    assert patch(fake, contact, lifecyclestage="customer").status_code == 200
    assert patch(fake, contact, lifecyclestage="not-a-stage").status_code == 400


def test_backward_lifecycle_stage_can_be_silently_ignored_instead(clock: Clock) -> None:
    with FakeHubSpot(TOKEN, clock=clock, backward_lifecycle="ignore") as hubspot:
        assert isinstance(hubspot, FakeHubSpot)
        contact = hubspot.upsert_contact(lifecyclestage="customer")
        assert patch(hubspot, contact, lifecyclestage="lead").status_code == 200
        assert hubspot.contact(contact)["lifecyclestage"] == "customer"


def test_patch_stamps_the_owner_assignment_and_modification(
    fake: FakeHubSpot, clock: Clock
) -> None:
    fake.add_owner("11", "a@x.test", "Ann", "A")
    contact = fake.upsert_contact(firstname="Ann")
    clock.advance(hours=2)
    response = patch(fake, contact, hubspot_owner_id="11")
    assert response.status_code == 200
    after = fake.contact(contact)
    assert after["hubspot_owner_assigneddate"] == "2026-11-20T11:00:00.000Z"
    assert after["lastmodifieddate"] == "2026-11-20T11:00:00.000Z"
    assert response.json()["properties"]["hubspot_owner_id"] == "11"
    assert patch(fake, contact, hubspot_owner_id="404404").status_code == 400


def test_an_empty_string_clears_a_property(fake: FakeHubSpot) -> None:
    contact = fake.upsert_contact(phone="+1 555")
    assert patch(fake, contact, phone="").status_code == 200
    assert fake.contact(contact)["phone"] is None


def test_upsert_contact_stamps_a_new_contact_even_without_properties(fake: FakeHubSpot) -> None:
    contact = fake.upsert_contact()
    stamps = fake.contact(contact)
    assert stamps["createdate"] == stamps["lastmodifieddate"] == hs_datetime(T0)
    assert stamps["hs_object_id"] == contact


def test_upsert_contact_sets_owner_assignment_unless_given(fake: FakeHubSpot, clock: Clock) -> None:
    auto = fake.upsert_contact(hubspot_owner_id="11")
    given = fake.upsert_contact(
        hubspot_owner_id="11", hubspot_owner_assigneddate="2026-11-01T08:00:00.000Z"
    )
    assert fake.contact(auto)["hubspot_owner_assigneddate"] == hs_datetime(T0)
    assert fake.contact(given)["hubspot_owner_assigneddate"] == "2026-11-01T08:00:00.000Z"
    clock.advance(minutes=1)
    fake.upsert_contact(auto, firstname="Ann")
    assert fake.contact(auto)["hubspot_owner_assigneddate"] == hs_datetime(T0)
    assert fake.contact(auto)["lastmodifieddate"] == hs_datetime(clock.now)


def test_batch_update_writes_up_to_100_contacts(fake: FakeHubSpot) -> None:
    a = fake.upsert_contact(hs_lead_status="OPEN")
    b = fake.upsert_contact(hs_lead_status="OPEN")
    inputs = [{"id": i, "properties": {"hs_lead_status": "RECYCLED"}} for i in (a, b)]
    response = post(fake, "/crm/v3/objects/contacts/batch/update", {"inputs": inputs})
    assert response.status_code == 200
    assert response.json()["status"] == "COMPLETE"
    assert [r["id"] for r in response.json()["results"]] == [a, b]
    assert fake.contact(b)["hs_lead_status"] == "RECYCLED"
    too_many = [{"id": a, "properties": {}}] * 101
    response = post(fake, "/crm/v3/objects/contacts/batch/update", {"inputs": too_many})
    assert response.status_code == 400


def test_batch_update_validates_every_input_before_writing(fake: FakeHubSpot) -> None:
    a = fake.upsert_contact(hs_lead_status="OPEN")
    b = fake.upsert_contact(lifecyclestage="customer")
    inputs = [
        {"id": a, "properties": {"hs_lead_status": "RECYCLED"}},
        {"id": b, "properties": {"lifecyclestage": "lead"}},
    ]
    response = post(fake, "/crm/v3/objects/contacts/batch/update", {"inputs": inputs})
    assert response.status_code == 400
    assert fake.contact(a)["hs_lead_status"] == "OPEN"


# -- engagements -----------------------------------------------------------------------------------
def test_logging_an_engagement_updates_the_contacts_activity(
    fake: FakeHubSpot, clock: Clock
) -> None:
    contact = fake.upsert_contact(firstname="Ann")
    clock.advance(hours=1)
    fake.add_engagement(
        "emails",
        {"hs_timestamp": "2026-11-20T09:30:00Z", "hs_email_direction": "EMAIL"},
        [contact],
    )
    after = fake.contact(contact)
    assert after["notes_last_updated"] == "2026-11-20T09:30:00.000Z"
    assert after["lastmodifieddate"] == "2026-11-20T10:00:00.000Z"
    [email] = fake.engagements("emails")
    assert email["hs_lastmodifieddate"] == "2026-11-20T10:00:00.000Z"
    assert email["hs_createdate"] == "2026-11-20T10:00:00.000Z"


# -- failure injection -----------------------------------------------------------------------------
def test_fail_next_answers_the_next_matching_requests_then_recovers(fake: FakeHubSpot) -> None:
    fake.fail_next(2, 503, path_contains="/owners", headers={"Retry-After": "3"})
    owners = fake.base_url + "/crm/v3/owners"
    assert search(fake).status_code == 200  # does not match the path
    first = requests.get(owners, headers=AUTH)
    assert (first.status_code, first.headers["Retry-After"]) == (503, "3")
    assert requests.get(owners, headers=AUTH).status_code == 503
    assert requests.get(owners, headers=AUTH).status_code == 200


def test_fail_next_can_send_malformed_json(fake: FakeHubSpot) -> None:
    fake.fail_next(1, 200, malformed=True)
    response = search(fake)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


# -- scale and failure switches ---------------------------------------------------------------
def test_fail_randomly_answers_a_seeded_share_with_hubspots_429_bodies(clock: Clock) -> None:
    def answers() -> list[int]:
        fake = FakeHubSpot(TOKEN, clock=clock)
        fake.fail_randomly(0.2, 429, seed=3)
        with fake:
            return [search(fake).status_code for _ in range(60)]

    first = answers()
    assert first == answers()  # repeatable
    assert 4 <= first.count(429) <= 20
    fake = FakeHubSpot(TOKEN, clock=clock)
    fake.fail_randomly(1.0, 429, seed=3)
    with fake:
        assert search(fake).json()["policyName"] == "SECONDLY"
        owners = requests.get(fake.base_url + "/crm/v3/owners", headers=AUTH, timeout=5)
        assert owners.json()["policyName"] == "TEN_SECONDLY_ROLLING"


def test_during_search_edits_land_before_the_page_is_computed(fake: FakeHubSpot) -> None:
    contact = fake.upsert_contact(firstname="before")
    fake.during_search(lambda kind, body: fake.upsert_contact(contact, firstname="after"))
    [result] = search(fake, properties=["firstname"]).json()["results"]
    assert result["properties"]["firstname"] == "after"


def test_the_indexed_search_answers_like_the_full_scan(fake: FakeHubSpot, clock: Clock) -> None:
    for i in range(30):
        fake.upsert_contact(firstname=f"n{i}")
        if i % 4 == 0:
            clock.advance(seconds=1)
    at = T0 + timedelta(seconds=3)
    ms = str(int(at.timestamp() * 1000))
    bound = {"propertyName": "lastmodifieddate", "operator": "GTE", "value": ms}
    sort = [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    fast = search(fake, filterGroups=[{"filters": [bound]}], sorts=sort, limit=100).json()
    # Without a sort, the search takes the full scan (in id order, the same records).
    slow = search(fake, filterGroups=[{"filters": [bound]}], limit=100).json()
    assert sorted(r["id"] for r in fast["results"]) == [r["id"] for r in slow["results"]]
    assert fast["total"] == slow["total"] == 21  # the contacts from T0 + 3 s on


def test_a_merged_contact_leaves_search_and_answers_single_reads_as_its_survivor(
    fake: FakeHubSpot,
) -> None:
    survivor, merged = fake.upsert_contact(), fake.upsert_contact()
    fake.merge_contacts(survivor, merged)
    ids = [r["id"] for r in search(fake, properties=["hs_merged_object_ids"]).json()["results"]]
    assert ids == [survivor]
    got = requests.get(f"{fake.base_url}/crm/v3/objects/contacts/{merged}", headers=AUTH, timeout=5)
    assert got.json()["id"] == survivor


def test_the_list_endpoint_shows_archived_records_only_when_asked(fake: FakeHubSpot) -> None:
    kept, gone = fake.upsert_contact(), fake.upsert_contact()
    fake.archive_contact(gone)
    url = f"{fake.base_url}/crm/v3/objects/contacts"
    live = requests.get(url, headers=AUTH, timeout=5).json()["results"]
    archived = requests.get(url, params={"archived": "true"}, headers=AUTH, timeout=5).json()
    assert [r["id"] for r in live] == [kept]
    assert [r["id"] for r in archived["results"]] == [gone]
    assert archived["results"][0]["archived"] is True and "archivedAt" in archived["results"][0]


def test_batch_read_answers_207_for_unknown_ids(fake: FakeHubSpot) -> None:
    known = fake.upsert_contact(firstname="Ann")
    body = {"properties": ["firstname"], "inputs": [{"id": known}, {"id": "424242"}]}
    answer = post(fake, "/crm/v3/objects/contacts/batch/read", body)
    assert answer.status_code == 207
    assert [r["id"] for r in answer.json()["results"]] == [known]
    assert answer.json()["errors"][0]["context"]["ids"] == ["424242"]


# -- deals -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stage", "closed", "expected"),
    [
        # Every stage of the default pipeline: only the last two are closed.
        *[(s, None, "false") for s in DEFAULT_DEAL_STAGES[:-2]],
        ("closedwon", None, "true"),
        ("closedlost", None, "true"),
        # A test can close a deal in a renamed stage, as a portal's own pipeline would.
        ("contractsent", True, "true"),
    ],
)
def test_a_deal_is_closed_in_the_closed_won_and_lost_stages(
    fake: FakeHubSpot, stage: str, closed: bool | None, expected: str
) -> None:
    ann = fake.upsert_contact(firstname="Ann")
    deal = fake.add_deal(stage=stage, contact_ids=[ann], closed=closed)
    body = {"properties": ["hs_is_closed", "dealstage"], "inputs": [{"id": deal}]}
    answer = post(fake, "/crm/v3/objects/deals/batch/read", body)
    assert answer.status_code == 200
    [result] = answer.json()["results"]
    assert result["properties"]["hs_is_closed"] == expected
    assert result["properties"]["dealstage"] == stage
    assert result["properties"]["hs_lastmodifieddate"] == hs_datetime(T0)


def test_a_deal_is_associated_with_its_contacts_both_ways(fake: FakeHubSpot) -> None:
    ann, bob = fake.upsert_contact(firstname="Ann"), fake.upsert_contact(firstname="Bob")
    deal = fake.add_deal(contact_ids=[ann, bob])
    answer = post(
        fake,
        "/crm/v4/associations/contacts/deals/batch/read",
        {"inputs": [{"id": ann}, {"id": bob}]},
    ).json()
    assert [(r["from"]["id"], r["to"][0]["toObjectId"]) for r in answer["results"]] == [
        (ann, int(deal)),
        (bob, int(deal)),
    ]
    assert answer["results"][0]["to"][0]["associationTypes"][0]["typeId"] == 4
    back = post(fake, "/crm/v4/associations/deals/contacts/batch/read", {"inputs": [{"id": deal}]})
    assert [t["toObjectId"] for t in back.json()["results"][0]["to"]] == [int(ann), int(bob)]
    assert back.json()["results"][0]["to"][0]["associationTypes"][0]["typeId"] == 3


def test_adding_a_deal_for_an_unknown_contact_fails(fake: FakeHubSpot) -> None:
    with pytest.raises(KeyError):
        fake.add_deal(contact_ids=["424242"])


def test_the_deals_batch_read_answers_207_for_unknown_ids_and_caps_inputs(
    fake: FakeHubSpot,
) -> None:
    deal = fake.add_deal(contact_ids=[fake.upsert_contact()])
    body = {"properties": ["dealstage"], "inputs": [{"id": deal}, {"id": "424242"}]}
    answer = post(fake, "/crm/v3/objects/deals/batch/read", body)
    assert answer.status_code == 207
    assert [r["id"] for r in answer.json()["results"]] == [deal]
    assert answer.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert answer.json()["errors"][0]["context"]["ids"] == ["424242"]
    too_many = {"properties": [], "inputs": [{"id": str(i)} for i in range(101)]}
    assert post(fake, "/crm/v3/objects/deals/batch/read", too_many).status_code == 400


def test_moving_a_deal_to_another_stage_recalculates_hs_is_closed(
    fake: FakeHubSpot, clock: Clock
) -> None:
    deal = fake.add_deal(contact_ids=[fake.upsert_contact()])
    clock.advance(minutes=1)
    fake.update_deal(deal, dealstage="closedwon")
    assert fake.deal(deal)["hs_is_closed"] == "true"
    assert fake.deal(deal)["hs_lastmodifieddate"] == hs_datetime(T0 + timedelta(minutes=1))
    fake.update_deal(deal, dealstage="qualifiedtobuy")
    assert fake.deal(deal)["hs_is_closed"] == "false"
    fake.update_deal(deal, hs_is_closed=None)  # planted: the property missing
    assert fake.deal(deal)["hs_is_closed"] is None
