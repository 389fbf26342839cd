"""Marketing's side of the agreement: complete leads, quota pace and sales' feedback, end to
end against the fakes; and the compliance report as the CLI prints it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.world import CONFIG, World, make_world
from worker.pipeline.context import Context
from worker.pipeline.report import report_text
from worker.pipeline.stages import run_once, run_stage
from worker.store.models import Lead

MARKETING = """
marketing:
  monthly_quota: 10
  channel: "#marketing-ops"
  pace_alert_below: 0.9
  incomplete_clock: %(clock)s
"""
MARKETING_CONFIG = (
    CONFIG.replace(
        "    warn_before: 15m\n", "    warn_before: 15m\n    return_statuses: [UNQUALIFIED]\n"
    )
    + MARKETING
)


@pytest.fixture(params=["run"])
def clock_mode(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def world(tmp_path: Path, database_url: str, clock_mode: str) -> Iterator[World]:
    config = MARKETING_CONFIG.replace("%(clock)s", clock_mode)
    yield from make_world(tmp_path, database_url, config=config)


def _complete(world: World, lead: str) -> None:
    world.hubspot.upsert_contact(lead, phone="+49 30 1234567")


def test_an_incomplete_lead_is_flagged_with_what_it_lacks(world: World, ctx: Context) -> None:
    world.add_rep()
    incomplete = world.add_lead(assigned_ago=timedelta(minutes=5), name="No Phone")
    _complete(world, world.add_lead(assigned_ago=timedelta(minutes=5), name="Has Phone"))
    run_once(ctx)
    with ctx.sessions() as session:
        assert session.get(Lead, incomplete).missing_fields == ["phone"]  # type: ignore[union-attr]
    report = run_stage(ctx, "report", post=False).report
    assert report.marketing is not None
    assert report.marketing.incomplete_total == 1
    assert report.marketing.incomplete == [(incomplete, "No Phone", ["phone"])]


def test_marketing_hears_when_the_quota_pace_falls_behind(world: World, ctx: Context) -> None:
    world.slack.add_channel("C0MKT", "marketing-ops")
    world.add_rep()
    for i in range(4):
        _complete(world, world.add_lead(assigned_ago=timedelta(minutes=5), name=f"Lead N{i}"))
    world.add_lead(assigned_ago=timedelta(minutes=5), name="Phoneless Lead")
    run_once(ctx)
    summary = run_stage(ctx, "report", post=True)
    report, queued = summary.report, summary.queued
    assert report.marketing is not None
    # 5 leads by the 24th of a 30-day month: about 6 by month end, 64 % of 10.
    assert (report.marketing.delivered, report.marketing.projected) == (5, 6)
    assert report.marketing.below_pace
    assert queued
    run_once(ctx)
    (post,) = world.slack.messages_in("marketing-ops")
    assert "Below pace" in str(post.blocks) and "5 of 10 qualified leads" in str(post.blocks)
    assert "Incomplete leads handed to sales: 1" in str(post.blocks)
    assert "Phoneless Lead" in str(post.blocks) and "missing phone" in str(post.blocks)
    again = run_stage(ctx, "report", post=True).queued
    assert not again  # once a day


def test_sales_feedback_counts_returned_leads_per_source(world: World, ctx: Context) -> None:
    world.add_rep()
    for i, source in enumerate(["PAID_SOCIAL", "PAID_SOCIAL", "ORGANIC_SEARCH"]):
        lead = world.add_lead(assigned_ago=timedelta(hours=1), name=f"Lead R{i}")
        world.hubspot.upsert_contact(lead, hs_analytics_source=source, hs_lead_status="UNQUALIFIED")
    run_once(ctx)
    report = run_stage(ctx, "report", post=False).report
    assert report.marketing is not None
    assert {k: dict(v) for k, v in report.marketing.returns_by_source.items()} == {
        "PAID_SOCIAL": {"UNQUALIFIED": 2},
        "ORGANIC_SEARCH": {"UNQUALIFIED": 1},
    }


@pytest.mark.parametrize("clock_mode", ["wait"], indirect=True)
def test_an_incomplete_leads_clock_can_wait_until_it_is_complete(
    world: World, ctx: Context
) -> None:
    world.add_rep()
    lead = world.add_lead(assigned_ago=timedelta(hours=3))
    run_once(ctx)
    assert world.slack.messages == []  # not judged while incomplete
    _complete(world, lead)  # marketing adds the phone now: the 1h clock starts
    world.clock.advance(timedelta(minutes=30))
    run_once(ctx)
    assert world.slack.messages == []
    world.clock.advance(timedelta(minutes=45))
    run_once(ctx)
    assert len(world.slack.dms_to("U0LENA")) == 1


def test_the_report_shows_compliance_per_rep_team_and_policy(
    world: World, ctx: Context, tmp_path: Path
) -> None:
    from tests.test_cli import run

    world.add_rep()
    on_time = world.add_lead(assigned_ago=timedelta(hours=3), name="On Time")
    world.add_call(on_time, at=world.clock.now - timedelta(hours=2, minutes=30))
    world.add_lead(assigned_ago=timedelta(hours=3), name="Too Late")
    run_once(ctx)
    done = run("report", "--csv", str(tmp_path / "c.csv"), cwd=tmp_path, env=world.env())
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert rows[0] == (
        "scope,name,leads,open_leads,on_time_share,rules_met,rules_met_late,rules_breached"
    )
    assert "rep,Lena Fischer,2,0,0.5000,1,0,1" in rows
    assert "Sales follow-up by rep:" in done.stdout
    line = next(x for x in done.stdout.splitlines() if x.strip().startswith("Lena Fischer"))
    assert line.split()[2:] == ["2", "0", "50%", "1", "0", "1"]
    assert "leads and open count leads" in done.stdout  # the columns say what they count
    assert "Marketing: lead quota" in done.stdout


def test_open_counts_leads_not_rules(world: World, ctx: Context) -> None:
    world.add_rep()
    for n in range(2):  # two fresh leads, each with several rules still running
        world.add_lead(assigned_ago=timedelta(minutes=5), name=f"Fresh N{n}")
    run_once(ctx)
    report = run_stage(ctx, "report", post=False).report
    assert report is not None
    rep = report.by_rep["Lena Fischer"]
    assert (rep.leads, rep.open_leads) == (2, 2)


def test_an_early_return_is_a_breach_with_the_reps_stated_reason(
    tmp_path: Path, sqlite_url: str
) -> None:
    config = MARKETING_CONFIG.replace("%(clock)s", "run").replace(
        "    return_statuses: [UNQUALIFIED]\n",
        "    return_statuses: [UNQUALIFIED]\n    min_open: 2d\n",
    )
    for world in make_world(tmp_path, sqlite_url, config=config):
        with world.context() as ctx:
            world.add_rep()
            lead = world.add_lead(assigned_ago=timedelta(hours=3))
            world.add_call(lead, at=world.clock.now - timedelta(hours=2, minutes=40))
            world.clock.advance(timedelta(minutes=1))
            world.hubspot.upsert_contact(lead, hs_lead_status="UNQUALIFIED")
            run_once(ctx)
            (dm,) = world.slack.dms_to("U0LENA")
            assert "Returned to marketing too early" in dm.text
            assert "reason given: UNQUALIFIED" in str(dm.blocks)


def marketing_config(extra_marketing_lines: str) -> str:
    """The module's config (clocks run for incomplete leads) with more ``marketing:`` keys."""
    return MARKETING_CONFIG.replace("%(clock)s", "run").replace(
        "  monthly_quota: 10\n", "  monthly_quota: 10\n" + extra_marketing_lines
    )


def test_a_custom_required_field_is_read_from_the_crm(tmp_path: Path, sqlite_url: str) -> None:
    config = marketing_config("  required_fields: [phone, jobtitle]\n")
    for world in make_world(tmp_path, sqlite_url, config=config):
        with world.context() as ctx:
            world.add_rep()
            with_title = world.add_lead(assigned_ago=timedelta(minutes=5), name="Has Title")
            world.hubspot.upsert_contact(with_title, jobtitle="Head of Ops")
            without = world.add_lead(assigned_ago=timedelta(minutes=5), name="No Title")
            run_once(ctx)
            with ctx.sessions() as session:
                assert session.get(Lead, with_title).missing_fields == ["phone"]  # type: ignore[union-attr]
                assert session.get(Lead, without).missing_fields == ["phone", "jobtitle"]  # type: ignore[union-attr]


def test_each_team_with_a_quota_gets_its_own_pace(tmp_path: Path, sqlite_url: str) -> None:
    config = marketing_config("  team_quotas: {sales: 4}\n")
    for world in make_world(tmp_path, sqlite_url, config=config):
        with world.context() as ctx:
            world.add_rep()
            for i in range(4):
                world.add_lead(assigned_ago=timedelta(minutes=5), name=f"Lead T{i}")
            run_once(ctx)
            report = run_stage(ctx, "report", post=False).report
            assert report.marketing is not None
            assert report.marketing.teams == {"sales": (4, 4, 5, False)}  # on pace: 125 %


def test_each_lead_source_with_a_quota_gets_its_own_pace(tmp_path: Path, sqlite_url: str) -> None:
    config = marketing_config(
        "  team_quotas: {sales: 4}\n  source_quotas: {organic_search: 3, PAID_SOCIAL: 2}\n"
    )
    for world in make_world(tmp_path, sqlite_url, config=config):
        with world.context() as ctx:
            world.add_rep()
            for i in range(4):
                lead = world.add_lead(assigned_ago=timedelta(minutes=5), name=f"Lead S{i}")
                if i < 3:  # the CRM spells it in capitals; the admin did not
                    world.hubspot.upsert_contact(lead, hs_analytics_source="ORGANIC_SEARCH")
            run_once(ctx)
            report = run_stage(ctx, "report", post=False).report
            assert report.marketing is not None
            # Same clock as the team test above: 4 delivered project to 5, so 3 project to 4.
            assert report.marketing.sources == {
                "organic_search": (3, 3, 4, False),
                "PAID_SOCIAL": (0, 2, 0, True),
            }
            text = report_text(report)
            assert "source organic_search: 3 of 3, projected 4" in text
            assert "BELOW PACE: source PAID_SOCIAL: 0 of 2" in text
            assert "team sales: 4 of 4" in text


def test_a_quota_for_an_unknown_team_names_the_key() -> None:
    import yaml

    from worker.config import parse_config
    from worker.errors import ConfigError

    data = yaml.safe_load(
        MARKETING_CONFIG.replace("%(clock)s", "run").replace("%(send_resolved)s", "true")
    )
    data["marketing"]["team_quotas"] = {"apac": 5}
    with pytest.raises(ConfigError, match=r'marketing\.team_quotas: "apac" is not a team'):
        parse_config(data)


def test_feedback_uses_the_reps_reason_and_the_campaign_when_configured(
    tmp_path: Path, sqlite_url: str
) -> None:
    config = marketing_config(
        "  reason_property: disqualification_reason\n  campaign_property: utm_campaign\n"
    )
    for world in make_world(tmp_path, sqlite_url, config=config):
        with world.context() as ctx:
            world.add_rep()
            for i, (campaign, reason) in enumerate(
                [("spring", "no budget"), ("spring", "no budget"), ("webinar", None)]
            ):
                lead = world.add_lead(assigned_ago=timedelta(hours=1), name=f"Lead F{i}")
                world.hubspot.upsert_contact(
                    lead,
                    hs_analytics_source="PAID_SOCIAL",
                    utm_campaign=campaign,
                    disqualification_reason=reason,
                    hs_lead_status="UNQUALIFIED",
                )
            run_once(ctx)
            report = run_stage(ctx, "report", post=False).report
            assert report.marketing is not None
            assert {k: dict(v) for k, v in report.marketing.returns_by_source.items()} == {
                "PAID_SOCIAL / spring": {"no budget": 2},
                "PAID_SOCIAL / webinar": {"UNQUALIFIED (no reason)": 1},
            }


def test_no_projection_nor_alarm_in_the_first_days_of_a_month(
    tmp_path: Path, sqlite_url: str
) -> None:
    from tests.e2e.world import Clock

    first_day = Clock(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    for world in make_world(tmp_path, sqlite_url, config=marketing_config(""), clock=first_day):
        with world.context() as ctx:
            world.add_rep()
            world.add_lead(assigned_ago=timedelta(minutes=5))
            run_once(ctx)
            report = run_stage(ctx, "report", post=False).report
            assert report is not None and report.marketing is not None
            assert report.marketing.projected is None and not report.marketing.below_pace
            text = report_text(report)
            assert "too early to project (day 1 of 31)" in text
            assert "BELOW PACE" not in text
