"""The HubSpot client against the fake HubSpot over loopback: what it reads, what it writes,
and how every kind of failure reaches the stages as the project's own errors."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.test_fake_hubspot import T0, TOKEN, Clock
from worker.crm.hubspot import HubSpotClient, HubSpotFieldMap, parse_hubspot_datetime
from worker.errors import AuthError, PermanentError, TransientError
from worker.fakes.hubspot import FakeHubSpot

SINCE = T0 - timedelta(days=1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(TOKEN, clock=clock) as hubspot:
        yield hubspot


@pytest.fixture
def client(fake: FakeHubSpot) -> HubSpotClient:
    return HubSpotClient(fake.base_url, TOKEN, page_size=2, timeout=2)


def lead_ids(fake: FakeHubSpot, n: int, clock: Clock) -> list[str]:
    ids = []
    for i in range(n):
        ids.append(fake.upsert_contact(firstname=f"n{i}"))
        clock.advance(seconds=1)
    return ids


def search_bodies(fake: FakeHubSpot, kind: str = "contacts") -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in fake.requests if r.path == f"/crm/v3/objects/{kind}/search"]


# -- leads ----------------------------------------------------------------------------------------
def test_it_pages_through_search_results(
    fake: FakeHubSpot, client: HubSpotClient, clock: Clock
) -> None:
    ids = lead_ids(fake, 5, clock)
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = client.search_leads_changed_since(SINCE, after=after)
        seen += [lead.id for lead in page.items]
        pages += 1
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == ids
    assert pages == 3


def test_it_asks_for_changes_since_in_epoch_ms_oldest_first(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    client.search_leads_changed_since(datetime(2026, 11, 19, 9, 0, tzinfo=UTC))
    [body] = search_bodies(fake)
    assert body["filterGroups"] == [
        {
            "filters": [
                {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1795078800000"}
            ]
        }
    ]
    assert body["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert body["limit"] == 2
    assert {"hs_lead_priority", "hubspot_owner_assigneddate", "createdate"} <= set(
        body["properties"]
    )


def test_it_only_returns_leads_changed_since(
    fake: FakeHubSpot, client: HubSpotClient, clock: Clock
) -> None:
    fake.upsert_contact(firstname="old")
    clock.advance(hours=1)
    recent = fake.upsert_contact(firstname="recent")
    page = client.search_leads_changed_since(T0 + timedelta(minutes=1))
    assert [lead.id for lead in page.items] == [recent]


def test_it_maps_a_contact_to_a_lead(fake: FakeHubSpot, clock: Clock) -> None:
    fake.add_owner("77", "rep@x.test", "Rita", "Rep")
    contact = fake.upsert_contact(
        firstname="Ann",
        lastname="Lee",
        company="Acme",
        email="ann@acme.test",
        phone="+1 555",
        lifecyclestage="salesqualifiedlead",
        hs_lead_status="OPEN",
        hs_analytics_source="ORGANIC_SEARCH",
        hs_lead_priority="HIGH",
        hubspotscore="87.5",
        hubspot_owner_id="77",
        createdate="2026-11-19T08:00:00Z",
        custom_region="north",
    )
    client = HubSpotClient(
        fake.base_url, TOKEN, field_map=HubSpotFieldMap(extra=("custom_region",))
    )
    [lead] = client.search_leads_changed_since(SINCE).items
    assert lead.id == contact
    assert lead.created_at == datetime(2026, 11, 19, 8, 0, tzinfo=UTC)
    assert lead.modified_at == T0
    assert lead.owner_id == "77"
    assert lead.owner_assigned_at == T0
    assert (lead.first_name, lead.last_name, lead.company) == ("Ann", "Lee", "Acme")
    assert (lead.email, lead.phone) == ("ann@acme.test", "+1 555")
    assert (lead.lifecycle_stage, lead.status, lead.source) == (
        "salesqualifiedlead",
        "OPEN",
        "ORGANIC_SEARCH",
    )
    assert (lead.priority, lead.score) == ("HIGH", 87.5)
    assert lead.properties["custom_region"] == "north"


def test_it_reads_renamed_properties_through_the_field_map(fake: FakeHubSpot) -> None:
    contact = fake.upsert_contact(lead_tier="A", hs_lead_priority="LOW")
    client = HubSpotClient(fake.base_url, TOKEN, field_map=HubSpotFieldMap(priority="lead_tier"))
    [lead] = client.search_leads_changed_since(SINCE).items
    assert (lead.id, lead.priority) == (contact, "A")


@pytest.mark.parametrize(
    "broken",
    [
        {"createdate": "sometime"},
        {"createdate": None},
        {"hubspotscore": "high"},
        {"hubspot_owner_assigneddate": "31/12/2026"},
    ],
)
def test_it_skips_a_malformed_contact_and_keeps_the_page(
    fake: FakeHubSpot,
    client: HubSpotClient,
    caplog: pytest.LogCaptureFixture,
    broken: dict[str, str | None],
) -> None:
    good = fake.upsert_contact(firstname="good")
    bad = fake.upsert_contact(firstname="Secret Name", **broken)
    with caplog.at_level(logging.WARNING, logger="worker.crm.hubspot"):
        page = client.search_leads_changed_since(SINCE)
    assert [lead.id for lead in page.items] == [good]
    assert page.skipped == 1
    [record] = caplog.records
    assert record.name == "worker.crm.hubspot"
    assert bad in record.getMessage()
    # The log names the record and the field, never the values (contacts are personal data).
    assert "Secret Name" not in record.getMessage()
    assert all(str(v) not in record.getMessage() for v in broken.values() if v)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-20T09:15:00.000Z", datetime(2026, 11, 20, 9, 15, tzinfo=UTC)),
        ("2026-11-20T09:15:00Z", datetime(2026, 11, 20, 9, 15, tzinfo=UTC)),
        ("2026-11-20T10:15:00+01:00", datetime(2026, 11, 20, 9, 15, tzinfo=UTC)),
        ("2026-11-20T09:15:00", datetime(2026, 11, 20, 9, 15, tzinfo=UTC)),  # naive = UTC
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),  # date properties
        ("1763630100000", datetime(2025, 11, 20, 9, 15, tzinfo=UTC)),  # epoch ms
        ("1763630100123", datetime(2025, 11, 20, 9, 15, 0, 123000, tzinfo=UTC)),
    ],
)
def test_it_parses_hubspot_datetimes(raw: str, expected: datetime) -> None:
    assert parse_hubspot_datetime(raw) == expected


@pytest.mark.parametrize("raw", ["", "yesterday", "20/11/2026", "1e12"])
def test_it_rejects_what_is_not_a_datetime(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_hubspot_datetime(raw)


def test_search_stops_at_10000_results(fake: FakeHubSpot) -> None:
    for i in range(10_050):
        fake.upsert_contact(id=str(100_000 + i))
    client = HubSpotClient(fake.base_url, TOKEN, page_size=200)
    # The last page before the cap is shortened to end exactly at 10,000, not a 400.
    page = client.search_leads_changed_since(SINCE, after="9900")
    assert len(page.items) == 100
    assert search_bodies(fake)[-1]["limit"] == 100
    assert page.next_after == "10000"
    # A cursor at the cap is not sent at all: HubSpot would answer 400.
    sent = len(fake.requests)
    beyond = client.search_leads_changed_since(SINCE, after="10000")
    assert (beyond.items, beyond.next_after) == ([], None)
    assert len(fake.requests) == sent


def test_it_refuses_a_naive_since(client: HubSpotClient) -> None:
    with pytest.raises(ValueError):
        client.search_leads_changed_since(datetime(2026, 1, 1))


# -- touches --------------------------------------------------------------------------------------
def test_it_reads_calls_with_duration_in_ms_direction_and_leads(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    ann = fake.upsert_contact(firstname="Ann")
    bob = fake.upsert_contact(firstname="Bob")
    call = fake.add_engagement(
        "calls",
        {
            "hs_timestamp": "1763629200000",
            "hubspot_owner_id": "77",
            "hs_call_duration": "90500",
            "hs_call_direction": "OUTBOUND",
            "hs_call_status": "completed",
        },
        [ann, bob],
    )
    page = client.search_touches_changed_since("call", SINCE)
    [touch] = page.items
    assert touch.id == call
    assert touch.kind == "call"
    assert touch.occurred_at == datetime(2025, 11, 20, 9, 0, tzinfo=UTC)
    assert touch.modified_at == T0
    assert touch.lead_ids == (ann, bob)
    assert touch.owner_id == "77"
    assert touch.duration == timedelta(seconds=90.5)
    assert (touch.direction, touch.status) == ("outbound", "COMPLETED")
    [read] = [r for r in fake.requests if "/associations/" in r.path]
    assert read.path == "/crm/v4/associations/calls/contacts/batch/read"
    assert json.loads(read.body) == {"inputs": [{"id": call}]}


@pytest.mark.parametrize(
    ("direction", "expected"),
    [("EMAIL", "outbound"), ("INCOMING_EMAIL", "inbound"), ("FORWARDED_EMAIL", "outbound")],
)
def test_it_maps_email_directions(
    fake: FakeHubSpot, client: HubSpotClient, direction: str, expected: str
) -> None:
    ann = fake.upsert_contact(firstname="Ann")
    fake.add_engagement(
        "emails",
        {"hs_timestamp": "2026-11-20T08:00:00Z", "hs_email_direction": direction,
         "hs_email_status": "SENT"},
        [ann],
    )  # fmt: skip
    [touch] = client.search_touches_changed_since("email", SINCE).items
    assert (touch.direction, touch.status, touch.kind) == (expected, "SENT", "email")


def test_a_meeting_falls_back_to_its_start_time_and_lasts_until_its_end(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    ann = fake.upsert_contact(firstname="Ann")
    fake.add_engagement(
        "meetings",
        {"hs_meeting_start_time": "2026-11-20T08:00:00Z",
         "hs_meeting_end_time": "2026-11-20T08:45:00Z", "hs_meeting_outcome": "COMPLETED"},
        [ann],
    )  # fmt: skip
    [touch] = client.search_touches_changed_since("meeting", SINCE).items
    assert touch.occurred_at == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert touch.duration == timedelta(minutes=45)
    assert touch.status == "COMPLETED"


def test_it_accepts_207_for_touches_without_associations(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    ann = fake.upsert_contact(firstname="Ann")
    linked = fake.add_engagement("notes", {"hs_timestamp": "1763629200000"}, [ann])
    lonely = fake.add_engagement("notes", {"hs_timestamp": "1763629200000"}, [])
    page = client.search_touches_changed_since("note", SINCE)
    assert {t.id: t.lead_ids for t in page.items} == {linked: (ann,), lonely: ()}


def test_an_unexpected_association_error_is_transient(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    ann = fake.upsert_contact(firstname="Ann")
    fake.add_engagement("calls", {"hs_timestamp": "1763629200000"}, [ann])
    body = {
        "status": "COMPLETE",
        "results": [],
        "numErrors": 1,
        "errors": [{"status": "error", "category": "MISSING_SCOPES", "message": "no scope"}],
        "startedAt": "2026-11-20T09:00:00.000Z",
        "completedAt": "2026-11-20T09:00:00.000Z",
    }
    fake.fail_next(1, 207, body, path_contains="/associations/")
    with pytest.raises(TransientError, match="MISSING_SCOPES"):
        client.search_touches_changed_since("call", SINCE)


def test_it_skips_a_malformed_touch_and_keeps_the_page(fake: FakeHubSpot) -> None:
    ann = fake.upsert_contact(firstname="Ann")
    good = fake.add_engagement("calls", {"hs_timestamp": "1763629200000"}, [ann])
    fake.add_engagement("calls", {"hs_timestamp": "1763629200000", "hs_call_duration": "x"}, [ann])
    fake.add_engagement("calls", {}, [ann])  # no hs_timestamp at all
    page = HubSpotClient(fake.base_url, TOKEN).search_touches_changed_since("call", SINCE)
    assert [t.id for t in page.items] == [good]
    assert page.skipped == 2


def test_it_refuses_an_unknown_touch_kind(client: HubSpotClient) -> None:
    with pytest.raises(ValueError):
        client.search_touches_changed_since("sms", SINCE)


# -- owners ---------------------------------------------------------------------------------------
def test_it_lists_active_and_archived_owners_across_pages(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    fake.add_owner("1", "a@x.test", "Ann", "A", teams=["EMEA", "Hot"])
    fake.add_owner("2", "b@x.test", "Bob", "B")
    fake.add_owner("3", "c@x.test", "Cid", "C")
    fake.add_owner("4", "d@x.test", "Dee", "D", archived=True)
    owners = {o.id: o for o in client.list_owners()}
    assert sorted(owners) == ["1", "2", "3", "4"]
    assert owners["1"].teams == ("EMEA", "Hot")
    assert owners["1"].name == "Ann A"
    assert owners["4"].archived is True
    assert owners["2"].archived is False
    owner_reads = [r for r in fake.requests if r.path == "/crm/v3/owners"]
    assert len(owner_reads) == 3  # two active pages (limit 2) and one archived page


def test_check_auth_raises_auth_error_on_a_bad_token(fake: FakeHubSpot) -> None:
    HubSpotClient(fake.base_url, TOKEN).check_auth()
    with pytest.raises(AuthError) as caught:
        HubSpotClient(fake.base_url, "pat-na1-revoked").check_auth()
    assert caught.value.code == "INVALID_AUTHENTICATION"


# -- single lead reads and writes -----------------------------------------------------------------
def test_get_lead_returns_the_lead_or_none_on_404(fake: FakeHubSpot, client: HubSpotClient) -> None:
    contact = fake.upsert_contact(firstname="Ann", hs_lead_priority="HIGH")
    lead = client.get_lead(contact)
    assert lead is not None
    assert (lead.id, lead.first_name, lead.priority) == (contact, "Ann", "HIGH")
    assert client.get_lead("999999") is None
    fake.archive_contact(contact)
    assert client.get_lead(contact) is None


def test_get_lead_reports_a_malformed_lead_as_permanent(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    contact = fake.upsert_contact(firstname="Ann", createdate="garbage")
    with pytest.raises(PermanentError) as caught:
        client.get_lead(contact)
    assert caught.value.code == "MALFORMED_RECORD"


def test_update_lead_clears_the_lifecycle_stage_before_setting_it(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    contact = fake.upsert_contact(lifecyclestage="opportunity", hs_lead_status="OPEN")
    client.update_lead(contact, {"lifecyclestage": "lead", "hs_lead_status": "RECYCLED"})
    after = fake.contact(contact)
    assert (after["lifecyclestage"], after["hs_lead_status"]) == ("lead", "RECYCLED")
    patches = [json.loads(r.body) for r in fake.requests if r.method == "PATCH"]
    assert patches == [
        {"properties": {"lifecyclestage": ""}},
        {"properties": {"lifecyclestage": "lead", "hs_lead_status": "RECYCLED"}},
    ]


def test_update_lead_without_a_stage_is_one_patch(fake: FakeHubSpot, client: HubSpotClient) -> None:
    contact = fake.upsert_contact(hs_lead_status="OPEN", hubspot_owner_id="5")
    client.update_lead(contact, {"hs_lead_status": "RECYCLED", "hubspot_owner_id": ""})
    assert fake.contact(contact)["hubspot_owner_id"] is None
    assert sum(r.method == "PATCH" for r in fake.requests) == 1


def test_update_lead_reports_a_rejected_write_as_permanent(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    contact = fake.upsert_contact(firstname="Ann")
    with pytest.raises(PermanentError) as caught:
        client.update_lead(contact, {"no_such_property": "x"})
    assert caught.value.code == "VALIDATION_ERROR"
    assert f"PATCH /crm/v3/objects/contacts/{contact}" in str(caught.value)
    assert "correlationId" in str(caught.value)
    with pytest.raises(PermanentError) as missing:
        client.update_lead("999999", {"hs_lead_status": "RECYCLED"})
    assert missing.value.code == "OBJECT_NOT_FOUND"


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        # Retry-After wins when HubSpot sends it.
        ({"policyName": "TEN_SECONDLY_ROLLING"}, {"Retry-After": "7"}, timedelta(seconds=7)),
        ({"policyName": "TEN_SECONDLY_ROLLING"}, {}, timedelta(seconds=10)),
        ({"policyName": "SECONDLY"}, {}, timedelta(seconds=1)),
        # Search's limit is recognised by its message too (HubSpot's Node SDK does the same).
        ({"message": "You have reached your secondly limit."}, {}, timedelta(seconds=1)),
        # The daily reset is at the portal's midnight, which we cannot know: one hour.
        ({"policyName": "DAILY", "message": "You have reached your daily limit."}, {},
         timedelta(hours=1)),
    ],
)  # fmt: skip
def test_it_maps_429_with_retry_after_to_transient(
    fake: FakeHubSpot,
    client: HubSpotClient,
    body: dict[str, str],
    headers: dict[str, str],
    expected: timedelta,
) -> None:
    fake.fail_next(1, 429, {"status": "error", "errorType": "RATE_LIMIT", **body}, headers=headers)
    with pytest.raises(TransientError) as caught:
        client.search_leads_changed_since(SINCE)
    assert caught.value.retry_after == expected


def test_the_fakes_search_rate_limit_reaches_the_caller_as_one_second(clock: Clock) -> None:
    with FakeHubSpot(TOKEN, clock=clock, search_rate_per_s=1) as hubspot:
        client = HubSpotClient(hubspot.base_url, TOKEN)
        client.search_leads_changed_since(SINCE)
        with pytest.raises(TransientError) as caught:
            client.search_leads_changed_since(SINCE)
        assert caught.value.retry_after == timedelta(seconds=1)


def test_it_maps_423_to_transient_after_at_least_two_seconds(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    fake.fail_next(1, 423, {"status": "error", "message": "Locked"}, headers={"Retry-After": "1"})
    with pytest.raises(TransientError) as caught:
        client.list_owners()
    assert caught.value.retry_after == timedelta(seconds=2)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 477])
def test_it_maps_5xx_and_migration_to_transient(
    fake: FakeHubSpot, client: HubSpotClient, status: int
) -> None:
    fake.fail_next(1, status, headers={"Retry-After": "30"})
    with pytest.raises(TransientError) as caught:
        client.list_owners()
    assert caught.value.retry_after == timedelta(seconds=30)


@pytest.mark.parametrize("status", [401, 403])
def test_it_maps_401_and_403_to_auth_errors(
    fake: FakeHubSpot, client: HubSpotClient, status: int
) -> None:
    fake.fail_next(1, status, {"status": "error", "message": "nope", "category": "MISSING_SCOPES"})
    with pytest.raises(AuthError) as caught:
        client.search_leads_changed_since(SINCE)
    assert caught.value.code == "MISSING_SCOPES"


def test_it_maps_other_4xx_to_permanent_with_hubspots_category(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    fake.fail_next(1, 400, {"status": "error", "message": "bad", "category": "VALIDATION_ERROR",
                            "correlationId": "c0ffee"})  # fmt: skip
    with pytest.raises(PermanentError) as caught:
        client.search_leads_changed_since(SINCE)
    assert not isinstance(caught.value, AuthError)
    assert caught.value.code == "VALIDATION_ERROR"
    message = str(caught.value)
    assert "POST /crm/v3/objects/contacts/search" in message
    assert "bad" in message and "c0ffee" in message


def test_it_maps_malformed_json_to_transient(fake: FakeHubSpot, client: HubSpotClient) -> None:
    fake.fail_next(1, 200, malformed=True)
    with pytest.raises(TransientError, match="not JSON"):
        client.search_leads_changed_since(SINCE)


def test_it_maps_a_refused_connection_to_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = HubSpotClient(f"http://127.0.0.1:{port}", TOKEN, timeout=1)
    with pytest.raises(TransientError, match="ConnectionError"):
        client.list_owners()


def test_it_maps_a_timeout_to_transient() -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = HubSpotClient(f"http://127.0.0.1:{silent.getsockname()[1]}", TOKEN, timeout=0.05)
        with pytest.raises(TransientError, match="timed out"):
            client.list_owners()


def test_token_never_appears_in_errors(fake: FakeHubSpot, caplog: pytest.LogCaptureFixture) -> None:
    secret = "pat-na1-do-not-leak-0000"
    with pytest.raises(AuthError) as rejected:
        HubSpotClient(fake.base_url, secret).check_auth()
    # Even a server that echoes the token back does not get it into our messages or logs.
    client = HubSpotClient(fake.base_url, TOKEN, max_retries=1, sleep=lambda _: None)
    fake.fail_next(2, 500, {"status": "error", "message": f"bad header Bearer {TOKEN}"})
    with caplog.at_level(logging.DEBUG), pytest.raises(TransientError) as echoed:
        client.list_owners()
    assert secret not in str(rejected.value)
    assert TOKEN not in str(echoed.value)
    assert "[redacted]" in str(echoed.value)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(client) and secret not in repr(HubSpotClient(fake.base_url, secret))


def test_it_refuses_urls_on_another_host(client: HubSpotClient) -> None:
    assert client.url("/crm/v3/owners").endswith("/crm/v3/owners")
    with pytest.raises(PermanentError):
        client.url("https://evil.example/crm/v3/owners?after=2")


# -- opt-in retries -------------------------------------------------------------------------------
def test_it_does_not_retry_unless_asked(fake: FakeHubSpot, client: HubSpotClient) -> None:
    fake.fail_next(1, 503)
    with pytest.raises(TransientError):
        client.list_owners()
    assert len(fake.requests) == 1


def test_retries_honour_retry_after_then_succeed(fake: FakeHubSpot) -> None:
    slept: list[float] = []
    client = HubSpotClient(fake.base_url, TOKEN, max_retries=3, sleep=slept.append)
    fake.add_owner("1", "a@x.test", "Ann", "A")
    fake.fail_next(1, 429, {"status": "error", "policyName": "TEN_SECONDLY_ROLLING"})
    fake.fail_next(1, 502)
    assert [o.id for o in client.list_owners()] == ["1"]
    assert len(slept) == 2
    assert 10 <= slept[0] <= 11.5  # the ten-secondly window, plus a little jitter
    assert 0.5 <= slept[1] <= 2.5  # exponential backoff after the second failure


def test_retries_stop_after_max_retries(fake: FakeHubSpot) -> None:
    slept: list[float] = []
    client = HubSpotClient(fake.base_url, TOKEN, max_retries=2, sleep=slept.append)
    fake.fail_next(5, 503)
    with pytest.raises(TransientError):
        client.list_owners()
    assert len(slept) == 2
    assert slept[1] > slept[0]


def test_retries_never_retry_permanent_errors_or_wait_out_a_daily_limit(
    fake: FakeHubSpot,
) -> None:
    slept: list[float] = []
    client = HubSpotClient(fake.base_url, TOKEN, max_retries=3, sleep=slept.append)
    fake.fail_next(1, 400, {"status": "error", "category": "VALIDATION_ERROR"})
    with pytest.raises(PermanentError):
        client.list_owners()
    fake.fail_next(1, 429, {"status": "error", "policyName": "DAILY"})
    with pytest.raises(TransientError):
        client.list_owners()
    assert slept == []


# -- write-back for recycle -----------------------------------------------------------------------
def _batch_bodies(fake: FakeHubSpot) -> list[dict[str, Any]]:
    path = "/crm/v3/objects/contacts/batch/update"
    return [json.loads(r.body) for r in fake.requests if r.path == path]


def test_update_leads_moves_a_later_lifecycle_stage_back_by_clearing_it_first(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    ids = [fake.upsert_contact(lifecyclestage="opportunity") for _ in range(3)]
    result = client.update_leads(
        {i: {"lifecyclestage": "lead", "hs_lead_status": "RECYCLED"} for i in ids}
    )
    assert sorted(result.written) == sorted(ids) and result.failed == {}
    assert {fake.contact(i)["lifecyclestage"] for i in ids} == {"lead"}
    clear, write = _batch_bodies(fake)  # two separate requests: batch order is not guaranteed
    assert [i["properties"] for i in clear["inputs"]] == [{"lifecyclestage": ""}] * 3
    assert {i["properties"]["lifecyclestage"] for i in write["inputs"]} == {"lead"}


def test_update_leads_without_a_stage_is_one_batch_of_at_most_100(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    ids = [fake.upsert_contact(hs_lead_status="OPEN") for _ in range(150)]
    result = client.update_leads({i: {"hs_lead_status": "RECYCLED"} for i in ids})
    assert len(result.written) == 150
    assert [len(body["inputs"]) for body in _batch_bodies(fake)] == [100, 50]


def test_update_leads_writes_a_merged_away_id_through_a_single_patch(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    survivor, merged = fake.upsert_contact(), fake.upsert_contact()
    fake.merge_contacts(survivor, merged)
    result = client.update_leads({merged: {"hs_lead_status": "RECYCLED"}, "999999": {"x": "y"}})
    assert result.written == (merged,)
    assert list(result.failed) == ["999999"]
    assert fake.contact(survivor)["hs_lead_status"] == "RECYCLED"


def test_get_leads_rereads_in_batches_and_leaves_out_missing_ones(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    ids = [fake.upsert_contact(firstname=f"n{i}") for i in range(120)]
    fake.archive_contact(ids[0])
    found = client.get_leads([*ids, "999999"])
    assert set(found) == set(ids[1:])
    reads = [r for r in fake.requests if r.path.endswith("/batch/read")]
    assert len(reads) == 2


def test_a_lead_touched_after_judgement_shows_a_newer_modified_time_on_reread(
    fake: FakeHubSpot, client: HubSpotClient, clock: Clock
) -> None:
    lead = fake.upsert_contact(firstname="Ann")
    judged = client.get_leads([lead])[lead].modified_at
    clock.advance(minutes=5)
    fake.add_engagement("calls", {"hs_timestamp": "2026-11-20T09:05:00Z"}, [lead])
    assert client.get_leads([lead])[lead].modified_at > judged  # the caller skips this lead


def test_it_lists_archived_leads_across_pages(fake: FakeHubSpot, client: HubSpotClient) -> None:
    ids = [fake.upsert_contact() for _ in range(130)]
    for contact_id in ids[:105]:
        fake.archive_contact(contact_id)
    assert client.list_archived_lead_ids() == ids[:105]


def test_it_reads_the_ids_merged_into_a_lead(fake: FakeHubSpot, client: HubSpotClient) -> None:
    survivor, merged = fake.upsert_contact(), fake.upsert_contact()
    fake.merge_contacts(survivor, merged)
    [lead] = client.search_leads_changed_since(SINCE).items
    assert (lead.id, lead.merged_ids) == (survivor, (merged,))


# -- open deals (recycle never hands back a lead sales is still working) -------------------------
def _deal_reads(fake: FakeHubSpot) -> list[dict[str, Any]]:
    path = "/crm/v3/objects/deals/batch/read"
    return [json.loads(r.body) for r in fake.requests if r.path == path]


def _deal_associations_reads(fake: FakeHubSpot) -> list[dict[str, Any]]:
    path = "/crm/v4/associations/contacts/deals/batch/read"
    return [json.loads(r.body) for r in fake.requests if r.path == path]


def test_a_lead_with_an_open_deal_is_reported(fake: FakeHubSpot, client: HubSpotClient) -> None:
    ann, bob = fake.upsert_contact(firstname="Ann"), fake.upsert_contact(firstname="Bob")
    fake.add_deal(stage="contractsent", contact_ids=[ann])
    fake.add_deal(stage="closedlost", contact_ids=[ann, bob])
    assert client.leads_with_open_deals([ann, bob]) == {ann}
    [read] = _deal_reads(fake)
    assert set(read["properties"]) == {"hs_is_closed", "dealstage"}


@pytest.mark.parametrize("stage", ["closedwon", "closedlost"])
def test_a_lead_whose_only_deal_is_closed_is_not_reported(
    fake: FakeHubSpot, client: HubSpotClient, stage: str
) -> None:
    lead = fake.upsert_contact()
    fake.add_deal(stage=stage, contact_ids=[lead])
    assert client.leads_with_open_deals([lead]) == set()


def test_a_lead_without_deals_is_not_reported(fake: FakeHubSpot, client: HubSpotClient) -> None:
    lead = fake.upsert_contact()
    assert client.leads_with_open_deals([lead]) == set()  # 207 NO_ASSOCIATIONS_FOUND
    assert _deal_reads(fake) == []


def test_no_leads_ask_hubspot_nothing(fake: FakeHubSpot, client: HubSpotClient) -> None:
    assert client.leads_with_open_deals([]) == set()
    assert fake.requests == []


@pytest.mark.parametrize(
    ("stage", "closed", "open_"),
    [
        # hs_is_closed decides, whatever the stage id says (portals rename stages).
        ("contractsent", True, False),
        ("closedwon", False, True),
        # Without hs_is_closed, only the default pipeline's closed stage ids close a deal.
        ("closedwon", None, False),
        ("custom-stage-123", None, True),
    ],
)
def test_hs_is_closed_decides_and_the_stage_is_the_fallback(
    fake: FakeHubSpot, client: HubSpotClient, stage: str, closed: bool | None, open_: bool
) -> None:
    lead = fake.upsert_contact()
    deal = fake.add_deal(stage=stage, contact_ids=[lead], closed=closed)
    if closed is None:
        fake.update_deal(deal, hs_is_closed=None)
    assert client.leads_with_open_deals([lead]) == ({lead} if open_ else set())


def test_a_deal_reopened_after_closing_counts_as_open(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    lead = fake.upsert_contact()
    deal = fake.add_deal(stage="closedlost", contact_ids=[lead])
    assert client.leads_with_open_deals([lead]) == set()
    fake.update_deal(deal, dealstage="qualifiedtobuy")
    assert client.leads_with_open_deals([lead]) == {lead}


def test_many_leads_are_chunked_into_batch_requests(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    leads = [fake.upsert_contact() for _ in range(1_050)]
    for lead in leads[:230]:
        fake.add_deal(contact_ids=[lead])
    fake.add_deal(stage="closedwon", contact_ids=[leads[-1]])
    assert client.leads_with_open_deals([*leads, leads[0]]) == set(leads[:230])
    # Associations: at most 1,000 inputs per request; each lead asked once.
    assert [len(b["inputs"]) for b in _deal_associations_reads(fake)] == [1_000, 50]
    # Deals: at most 100 per batch read.
    assert [len(b["inputs"]) for b in _deal_reads(fake)] == [100, 100, 31]


@pytest.mark.parametrize(
    ("not_found", "open_"),
    [
        # Deleted since the association read: HubSpot's 207 OBJECT_NOT_FOUND names it.
        (True, False),
        # Neither a result nor an error for it: we cannot tell, so it stays open (fail safe).
        (False, True),
    ],
)
def test_a_deleted_deal_is_not_open_but_an_unanswered_one_is(
    fake: FakeHubSpot, client: HubSpotClient, not_found: bool, open_: bool
) -> None:
    lead = fake.upsert_contact()
    deal = fake.add_deal(contact_ids=[lead])
    missing = [deal] if not_found else ["424242"]
    error = {"category": "OBJECT_NOT_FOUND", "message": "gone", "context": {"ids": missing}}
    fake.fail_next(
        1,
        207,
        {"status": "COMPLETE", "results": [], "numErrors": 1, "errors": [error]},
        path_contains="/crm/v3/objects/deals/batch/read",
    )
    assert client.leads_with_open_deals([lead]) == ({lead} if open_ else set())


def test_an_unexpected_error_on_the_deals_read_is_transient(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    lead = fake.upsert_contact()
    fake.add_deal(contact_ids=[lead])
    error = {"category": "INTERNAL_ERROR", "message": "try again"}
    fake.fail_next(
        1,
        207,
        {"status": "COMPLETE", "results": [], "errors": [error]},
        path_contains="/crm/v3/objects/deals/batch/read",
    )
    with pytest.raises(TransientError):
        client.leads_with_open_deals([lead])


def test_a_429_on_the_deals_read_is_a_transient_error(
    fake: FakeHubSpot, client: HubSpotClient
) -> None:
    lead = fake.upsert_contact()
    fake.add_deal(contact_ids=[lead])
    fake.fail_next(1, 429, path_contains="/crm/v3/objects/deals/batch/read")
    with pytest.raises(TransientError) as caught:
        client.leads_with_open_deals([lead])
    assert caught.value.retry_after == timedelta(seconds=10)  # TEN_SECONDLY_ROLLING
    assert client.leads_with_open_deals([lead]) == {lead}  # and the next run succeeds
