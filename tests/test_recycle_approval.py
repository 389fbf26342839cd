"""Recycle approval (issue 17, ``recycle.approval: required``), end to end: a recycle run
writes nothing back and asks the approval channel about each due lead; clicks travel signed
through ``sla-worker web`` (Celery eager) as Slack sends them; the next run writes back exactly
the approved leads to the fake HubSpot, and unanswered ones follow the configured default
after the timeout. Every decision is audited, shown by ``explain`` and in the request itself,
updated in place."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.e2e.web import Web, serving_web
from tests.e2e.world import World, make_world, outbox_rows
from tests.test_config import errors_of, minimal
from tests.test_recycle import RECYCLE_CONFIG, _worked_lead
from worker.errors import PermanentError
from worker.explain import explain_text
from worker.fakes.slack import PostedMessage
from worker.pipeline.stages import run_once, run_stage
from worker.store.models import Action, RecycleApproval

ADMIN = "ada.admin@example.com"
#: Jonas's leads belong to the west team, whose manager is Nina (not Mike).
APPROVAL_CONFIG = (
    RECYCLE_CONFIG.replace("%(cap)s", "200").replace(
        "teams:\n  sales:\n",
        "teams:\n  west:\n    calendar: always\n    manager: nina.manager@example.com\n"
        "    owners: [jonas@example.com]\n  sales:\n",
    )
    + "  approval: required\n  approval_timeout: 1d\n  approval_default: %(default)s\n"
    + '  approval_channel: "#recycle-approvals"\n'
    + f"slack:\n  admins: [{ADMIN}]\n"
)


@pytest.fixture(params=["keep"])
def default(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def world(tmp_path: Path, database_url: str, default: str) -> Iterator[World]:
    config = APPROVAL_CONFIG.replace("%(default)s", default)
    yield from make_world(tmp_path, database_url, config=config)


@dataclass
class Approvals:
    """Three stale leads proposed by one run (Lena's One and Two, Jonas's Three); the request
    as the approval channel got it."""

    web: Web
    leads: dict[str, str]

    @property
    def world(self) -> World:
        return self.web.world

    def request(self) -> PostedMessage:
        (message,) = self.world.slack.messages_in("recycle-approvals")
        return message

    def value(self, name: str) -> str:
        """The proposal id the buttons under the lead's line carry."""
        blocks = self.request().blocks or []
        for position, block in enumerate(blocks):
            if block["type"] == "section" and f"|{name}>" in block["text"]["text"]:
                following = blocks[position + 1]
                assert following["type"] == "actions", f"{name} has no buttons"
                return str(following["elements"][0]["value"])
        raise AssertionError(f"{name} is not in the request")

    def click(self, user_id: str, action_id: str, name: str | None = None) -> str:
        value = self.value(name) if name else None
        answer = self.world.slack.click(self.web.url, user_id, self.request(), action_id, value)
        assert (answer.status, answer.body) == (200, "")
        return answer.response_url

    def reply(self, response_url: str) -> str:
        response = self.world.slack.await_response(response_url)
        assert response["response_type"] == "ephemeral"
        text: str = response["text"]
        return text

    def recycled(self) -> set[str]:
        """The names of the leads HubSpot shows as recycled."""
        return {
            name
            for name, lead in self.leads.items()
            if self.world.hubspot.contact(lead)["hs_lead_status"] == "RECYCLED"
        }

    def proposals(self) -> list[RecycleApproval]:
        with self.web.ctx.sessions() as session:
            return list(session.scalars(select(RecycleApproval).order_by(RecycleApproval.id)))

    def recycle(self) -> Any:
        return run_stage(self.web.ctx, "recycle")


def _jonas_lead(world: World, name: str) -> str:
    lead = world.add_lead(owner_id="102", assigned_ago=timedelta(days=5), name=name)
    assigned = world.clock.now - timedelta(days=5)
    world.add_call(lead, owner_id="102", at=assigned + timedelta(minutes=20))
    world.add_call(lead, owner_id="102", at=assigned + timedelta(hours=3))
    world.hubspot.upsert_contact(lead, lifecyclestage="salesqualifiedlead")
    return lead


@pytest.fixture
def approvals(world: World) -> Iterator[Approvals]:
    world.slack.add_channel("C0MKT", "marketing-ops")
    world.slack.add_channel("C0APR", "recycle-approvals")
    world.slack.add_user("U0EVE", "eve@example.com", "Eve Outsider")
    world.slack.add_user("U0ADA", ADMIN, "Ada Admin")
    world.slack.add_user("U0NINA", "nina.manager@example.com", "Nina Manager")
    world.add_rep()
    world.add_rep("102", "Jonas Weber", "U0JONAS")
    leads = {name: _worked_lead(world, name) for name in ("Stale One", "Stale Two")}
    leads["Stale Three"] = _jonas_lead(world, "Stale Three")
    world.hubspot.upsert_contact(leads["Stale Two"], company="<!channel> & Sons")
    with serving_web(world) as web:
        run_once(web.ctx)
        summary = run_stage(web.ctx, "recycle")
        assert (summary.proposed, summary.recycled) == (3, 0)
        run_stage(web.ctx, "deliver")
        yield Approvals(web, leads)


def test_the_request_lists_each_due_lead_with_its_buttons_and_nothing_is_written(
    approvals: Approvals,
) -> None:
    request = approvals.request()
    blocks = request.blocks or []
    assert "Recycle approval" in blocks[0]["text"]["text"]
    assert "3 leads are due to go back to marketing" in blocks[0]["text"]["text"]
    assert "Unanswered by Wed 25 Nov 10:00 UTC: kept" in blocks[1]["elements"][0]["text"]
    two = approvals.leads["Stale Two"]
    line = next(b for b in blocks if "Stale Two" in str(b.get("text")))
    assert line["text"]["text"].startswith(
        f"*<https://app.hubspot.com/contacts/1/record/0-1/{two}|Stale Two>* "
        "(&lt;!channel&gt; &amp; Sons) · owner Lena Fischer\nWhy: "
    )
    buttons = blocks[blocks.index(line) + 1]["elements"]
    assert [(b["action_id"], b["text"]["text"]) for b in buttons] == [
        ("recycle_approve", "Approve"),
        ("recycle_keep", "Keep"),
    ]
    assert buttons[0]["value"] == buttons[1]["value"] == approvals.value("Stale Two")
    approve_all = blocks[-1]["elements"][0]
    assert (approve_all["action_id"], approve_all["text"]["text"]) == (
        "recycle_approve_all",
        "Approve all 3",
    )
    assert approvals.recycled() == set()
    assert [p.decision for p in approvals.proposals()] == [None, None, None]
    # The next run asks nothing again and writes nothing; marketing hears of nothing yet.
    again = approvals.recycle()
    assert (again.proposed, again.recycled) == (0, 0)
    run_stage(approvals.web.ctx, "deliver")
    assert len(approvals.world.slack.messages_in("recycle-approvals")) == 1
    assert approvals.world.slack.messages_in("marketing-ops") == []


def test_approve_writes_back_only_that_lead_at_the_next_run(approvals: Approvals) -> None:
    world, ctx = approvals.world, approvals.web.ctx
    world.clock.advance(timedelta(minutes=5))
    approvals.click("U0MIKE", "recycle_approve", "Stale One")
    update = world.slack.await_update(approvals.request().ts)
    blocks = update.blocks or []
    one = next(b for b in blocks if "Stale One" in str(b.get("text")))
    note = blocks[blocks.index(one) + 1]
    assert note["type"] == "context"
    assert note["elements"][0]["text"] == (
        ":white_check_mark: Approved by Mike Manager, Tue 24 Nov 10:05 UTC. "
        "Goes back to marketing at the next recycle run."
    )
    assert approvals.recycled() == set()  # not before the next run
    (action,) = approvals.web.actions()
    assert (action.slack_user_id, action.email, action.lead_id, action.outcome) == (
        "U0MIKE", "mike.manager@example.com", approvals.leads["Stale One"], "approved"
    )  # fmt: skip

    summary = approvals.recycle()
    assert (summary.recycled, summary.proposed) == (1, 0)
    assert approvals.recycled() == {"Stale One"}
    one_contact = world.hubspot.contact(approvals.leads["Stale One"])
    assert one_contact["lifecyclestage"] == "lead" and not one_contact.get("hubspot_owner_id")
    closed = {p.lead_id: p.outcome for p in approvals.proposals() if p.closed_at}
    assert closed == {approvals.leads["Stale One"]: f"recycled (run {summary.run_id})"}
    # The request shows it, and marketing and the rep hear of the recycled lead as ever.
    shown = world.slack.await_update(approvals.request().ts, nth=2)
    assert ":recycle: Back with marketing since Tue 24 Nov 10:05 UTC." in str(shown.blocks)
    run_stage(ctx, "deliver")
    (notice,) = world.slack.messages_in("marketing-ops")
    assert "Stale One" in notice.text and "Stale Two" not in notice.text
    timeline = explain_text(ctx, approvals.leads["Stale One"], world.clock.now)
    assert "Recycle approval (recycle.approval: required):" in timeline
    assert "approved by Mike Manager (mike.manager@example.com)" in timeline
    assert f"recycled (run {summary.run_id})" in timeline
    assert "mike.manager@example.com (U0MIKE): recycle_approve" in timeline


def test_keep_writes_nothing_and_the_lead_is_not_proposed_again_until_it_changes(
    approvals: Approvals,
) -> None:
    world, ctx = approvals.world, approvals.web.ctx
    approvals.click("U0MIKE", "recycle_keep", "Stale Two")
    update = world.slack.await_update(approvals.request().ts)
    assert ":hand: Kept by Mike Manager, Tue 24 Nov 10:00 UTC: stays with Lena Fischer." in str(
        update.blocks
    )
    world.clock.advance(timedelta(days=2))  # past the timeout too: the others are kept
    run_once(ctx)
    summary = approvals.recycle()
    assert (summary.recycled, summary.proposed) == (0, 0)
    assert approvals.recycled() == set()
    assert world.hubspot.contact(approvals.leads["Stale Two"])["hubspot_owner_id"] == "101"
    # Lena works it again, then leaves it alone long enough: it is due again, and asked about.
    world.add_call(approvals.leads["Stale Two"])
    world.clock.advance(timedelta(days=2))
    run_once(ctx)
    again = approvals.recycle()
    assert again.proposed == 1
    assert [i.name for i in again.items if i.outcome == "proposed"] == ["Stale Two"]
    run_stage(ctx, "deliver")
    assert len(world.slack.messages_in("recycle-approvals")) == 2


def test_approve_all_approves_the_leads_the_clicker_may_decide_and_names_the_rest(
    approvals: Approvals,
) -> None:
    world = approvals.world
    text = approvals.reply(approvals.click("U0MIKE", "recycle_approve_all"))
    assert text.startswith("Approved 2 of the 3 waiting leads. You may not decide these")
    assert "Stale Three (only nina.manager@example.com or an SLA admin" in text
    update = world.slack.await_update(approvals.request().ts)
    assert str(update.blocks).count("Approved by Mike Manager") == 2
    assert approvals.value("Stale Three")  # still has its buttons
    assert "recycle_approve_all" not in str(update.blocks)  # one lead left: no "all"
    approvals.click("U0NINA", "recycle_approve", "Stale Three")
    world.slack.await_update(approvals.request().ts, nth=2)
    outcomes = sorted(a.outcome for a in approvals.web.actions())
    assert outcomes == ["approved", "approved (approve all)", "approved (approve all)", "refused"]
    summary = approvals.recycle()
    assert summary.recycled == 3
    assert approvals.recycled() == {"Stale One", "Stale Two", "Stale Three"}


@pytest.mark.parametrize("default", ["approve"], indirect=True)
def test_after_the_timeout_unanswered_leads_are_approved_by_default(
    approvals: Approvals,
) -> None:
    world, ctx = approvals.world, approvals.web.ctx
    approvals.click("U0MIKE", "recycle_keep", "Stale Two")
    world.slack.await_update(approvals.request().ts)
    world.clock.advance(timedelta(hours=23))
    assert approvals.recycle().recycled == 0  # not yet
    world.clock.advance(timedelta(hours=1, minutes=1))
    run_once(ctx)
    summary = approvals.recycle()
    assert summary.recycled == 2
    assert approvals.recycled() == {"Stale One", "Stale Three"}
    decisions = {p.lead_id: (p.decision, p.decided_by_email) for p in approvals.proposals()}
    assert decisions[approvals.leads["Stale One"]] == ("timeout-approve", "timeout")
    assert decisions[approvals.leads["Stale Two"]] == ("keep", "mike.manager@example.com")
    timeouts = [a for a in approvals.web.actions() if a.slack_user_id == "timeout"]
    assert sorted(a.lead_id or "" for a in timeouts) == sorted(
        [approvals.leads["Stale One"], approvals.leads["Stale Three"]]
    )
    assert {a.outcome for a in timeouts} == {
        "timeout-approve: unanswered for recycle.approval_timeout"
    }
    shown = world.slack.await_update(approvals.request().ts, nth=2)
    assert str(shown.blocks).count("approved (`recycle.approval_default`)") == 2
    timeline = explain_text(ctx, approvals.leads["Stale One"], world.clock.now)
    assert "approved by default: unanswered" in timeline
    assert "nobody (timeout): recycle timeout-approve" in timeline


def test_after_the_timeout_unanswered_leads_are_kept_by_default_and_not_asked_again(
    approvals: Approvals,
) -> None:
    world, ctx, slack = approvals.world, approvals.web.ctx, approvals.world.slack
    late = slack.block_actions_payload(
        "U0MIKE", approvals.request(), "recycle_approve", approvals.value("Stale One")
    )
    world.clock.advance(timedelta(days=1, minutes=1))
    run_once(ctx)
    summary = approvals.recycle()
    assert (summary.recycled, summary.proposed) == (0, 0)
    shown = slack.await_update(approvals.request().ts)
    assert str(shown.blocks).count("kept (`recycle.approval_default`)") == 3
    assert approvals.recycled() == set()
    assert {(p.decision, p.outcome) for p in approvals.proposals()} == {("timeout-keep", "kept")}
    world.clock.advance(timedelta(days=1))
    run_once(ctx)
    assert approvals.recycle().proposed == 0
    # A click on the request as it was before finds the lead decided.
    assert slack.post_interaction(approvals.web.url, late).status == 200
    text = approvals.reply(late["response_url"])
    assert text == (
        "*Stale One*: already kept by default after the timeout at Wed 25 Nov 05:01 EST. "
        "Nothing changed."
    )


def test_the_owner_and_outsiders_are_refused_and_nothing_changes(approvals: Approvals) -> None:
    for user in ("U0LENA", "U0EVE", "U0JONAS"):
        text = approvals.reply(approvals.click(user, "recycle_approve", "Stale One"))
        assert text == (
            f"You may not decide the recycling of lead {approvals.leads['Stale One']}: only "
            "mike.manager@example.com or an SLA admin (slack.admins in the config) may."
        )
    assert approvals.world.slack.updates == []
    assert [p.decision for p in approvals.proposals()] == [None, None, None]
    assert [(a.slack_user_id, a.outcome) for a in approvals.web.actions()] == [
        ("U0LENA", "refused"), ("U0EVE", "refused"), ("U0JONAS", "refused")
    ]  # fmt: skip
    assert approvals.recycle().recycled == 0


def test_a_second_click_says_who_decided_and_changes_nothing(approvals: Approvals) -> None:
    slack, world = approvals.world.slack, approvals.world
    value = approvals.value("Stale One")
    # Two clicks on the request as it was (a double tap, an admin who had not seen it change).
    first = slack.block_actions_payload("U0MIKE", approvals.request(), "recycle_approve", value)
    second = slack.block_actions_payload("U0ADA", approvals.request(), "recycle_keep", value)
    assert slack.post_interaction(approvals.web.url, first).status == 200
    slack.await_update(approvals.request().ts)
    world.clock.advance(timedelta(minutes=3))
    assert slack.post_interaction(approvals.web.url, second).status == 200
    assert approvals.reply(second["response_url"]) == (
        "*Stale One*: already approved by Mike Manager at Tue 24 Nov 11:00 CET. Nothing changed."
    )
    (one,) = [p for p in approvals.proposals() if p.lead_id == approvals.leads["Stale One"]]
    assert (one.decision, one.decided_by_email) == ("approve", "mike.manager@example.com")
    assert [a.outcome for a in approvals.web.actions()] == [
        "approved",
        "already approved by mike.manager@example.com",
    ]
    assert approvals.recycle().recycled == 1


def test_an_approved_lead_touched_before_the_run_is_not_written(approvals: Approvals) -> None:
    world, ctx = approvals.world, approvals.web.ctx
    approvals.click("U0MIKE", "recycle_approve", "Stale One")
    world.slack.await_update(approvals.request().ts)
    world.clock.advance(timedelta(minutes=5))
    world.add_call(approvals.leads["Stale One"])  # Lena calls after all
    summary = approvals.recycle()  # before sync: the CRM shows the change
    assert summary.recycled == 0
    run_once(ctx)  # judged again: not due any more
    assert approvals.recycle().recycled == 0
    assert approvals.recycled() == set()
    (one,) = [p for p in approvals.proposals() if p.lead_id == approvals.leads["Stale One"]]
    assert one.outcome == "withdrawn: no longer due (touched or changed since)"


def test_without_approval_a_run_writes_back_and_asks_nobody(
    tmp_path: Path, database_url: str
) -> None:
    config = RECYCLE_CONFIG.replace("%(cap)s", "200")
    for world in make_world(tmp_path, database_url, config=config):
        world.slack.add_channel("C0MKT", "marketing-ops")
        world.add_rep()
        lead = _worked_lead(world, "Stale Lead")
        with world.context() as ctx:
            run_once(ctx)
            summary = run_stage(ctx, "recycle")
            assert (summary.recycled, summary.proposed) == (1, 0)
            assert world.hubspot.contact(lead)["hs_lead_status"] == "RECYCLED"
            with ctx.sessions() as session:
                assert session.scalars(select(RecycleApproval)).all() == []
                assert session.scalars(select(Action)).all() == []
            assert [r for r in outbox_rows(ctx) if r.kind == "recycle_approval"] == []


def test_approval_without_a_channel_names_the_key() -> None:
    errors = errors_of(minimal(recycle={"approval": "required"}))
    assert errors.startswith("recycle.approval_channel: ")
    errors = errors_of(minimal(recycle={"approval": "required", "approval_timeout": "0s"}))
    assert "recycle.approval_timeout" in errors
    errors = errors_of(minimal(recycle={"approval": "always", "notify_channel": "#m"}))
    assert "recycle.approval:" in errors


def test_a_long_request_comes_in_parts_each_within_slack_s_limits(
    world: World,
) -> None:
    world.slack.add_channel("C0APR", "recycle-approvals")
    world.add_rep()
    leads = [_worked_lead(world, f"Stale N{i:02d}") for i in range(23)]
    with world.context() as ctx:
        run_once(ctx)
        assert run_stage(ctx, "recycle").proposed == 23
        run_stage(ctx, "deliver")
        parts = world.slack.messages_in("recycle-approvals")
    # The fake refuses more than 50 blocks or too much text, as Slack does: both went out.
    assert len(parts) == 2
    assert "(part 1 of 2)" in parts[0].text and "(part 2 of 2)" in parts[1].text
    values = [
        e["value"]
        for part in parts
        for block in part.blocks or []
        if block["type"] == "actions"
        for e in block["elements"]
        if e["action_id"] == "recycle_approve"
    ]
    assert len(set(values)) == len(leads)  # every lead with its buttons, once
    for part in parts:
        assert len(part.blocks or []) <= 50
        assert (part.blocks or [])[-1]["elements"][0]["action_id"] == "recycle_approve_all"


def test_an_approved_write_stopped_midway_is_finished_by_the_next_run(
    approvals: Approvals,
) -> None:
    world, ctx = approvals.world, approvals.web.ctx
    approvals.click("U0MIKE", "recycle_approve", "Stale One")
    world.slack.await_update(approvals.request().ts)
    # HubSpot refuses the second batch (the "set" after the "clear"): the run stops there.
    rejected = {"status": "error", "message": "boom", "category": "VALIDATION_ERROR"}
    world.hubspot.fail_next(1, 400, rejected, path_contains="batch/update", skip=1)
    with pytest.raises(PermanentError):
        approvals.recycle()
    (one,) = [p for p in approvals.proposals() if p.lead_id == approvals.leads["Stale One"]]
    assert one.closed_at is None  # still approved, still open
    world.clock.advance(timedelta(minutes=1))
    run_once(ctx)
    summary = approvals.recycle()
    assert summary.recycled == 1
    assert approvals.recycled() == {"Stale One"}
    (item,) = [i for i in summary.items if i.outcome == "recycled"]
    assert item.before["lifecyclestage"] == "salesqualifiedlead"  # the truth, not ""
    (one,) = [p for p in approvals.proposals() if p.lead_id == approvals.leads["Stale One"]]
    assert one.outcome == f"recycled (run {summary.run_id})"


def test_approve_all_by_someone_who_may_decide_none_changes_nothing(
    approvals: Approvals,
) -> None:
    text = approvals.reply(approvals.click("U0LENA", "recycle_approve_all"))
    assert text.startswith("Approved 0 of the 3 waiting leads. You may not decide these")
    assert approvals.world.slack.updates == []
    assert [p.decision for p in approvals.proposals()] == [None, None, None]
    assert [a.outcome for a in approvals.web.actions()] == ["refused"] * 3
