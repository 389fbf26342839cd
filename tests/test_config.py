"""Config validation: every mistake named by its key path, and the agreement it builds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.config import Agreement, load_config, parse_config
from worker.errors import ConfigError
from worker.sla import BusinessSpan

ROOT = Path(__file__).resolve().parent.parent


def minimal(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "calendars": {"emea": {"timezone": "Europe/Berlin", "hours": {"mon-fri": "09:00-17:00"}}},
        "teams": {"sales": {"calendar": "emea", "manager": "boss@example.com"}},
        "policies": [{"name": "default", "first_touch": "4h"}],
    }
    data.update(overrides)
    return data


def errors_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_the_shipped_configs_are_valid() -> None:
    for path in (ROOT / "config/sla.yaml", ROOT / "worker/demo_config.yaml"):
        Agreement(load_config(path))


def test_durations_become_business_spans() -> None:
    config = parse_config(minimal(policies=[{"name": "p", "first_touch": "1d4h"}]))
    assert config.policies[0].first_touch == BusinessSpan(days=1, time=timedelta(hours=4))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # a mistyped duration names the list index and key
        (
            {
                "policies": [
                    {"name": "a", "match": {"priority": ["HIGH"]}, "first_touch": "1h"},
                    {"name": "b", "first_touch": "4x"},
                ]
            },
            'policies[1].first_touch: "4x" is not a duration like 90m, 4h, 2d',
        ),
        # an unknown key gets a suggestion
        (
            {"teams": {"sales": {"calender": "emea"}}},
            'teams.sales.calender: unknown key (did you mean "calendar"?)',
        ),
        # a team pointing at a calendar that does not exist
        (
            {"teams": {"sales": {"calendar": "apac"}}},
            'teams.sales.calendar: "apac" is not a calendar',
        ),
        # a time zone that does not exist
        (
            {
                "calendars": {
                    "emea": {"timezone": "Europe/Atlantis", "hours": {"mon": "09:00-17:00"}}
                }
            },
            'calendars.emea.timezone: "Europe/Atlantis" is not an IANA time zone',
        ),
        # hours that end before they start
        (
            {"calendars": {"emea": {"timezone": "UTC", "hours": {"mon-fri": "17:00-09:00"}}}},
            'calendars.emea.hours: mon-fri: "17:00-09:00" ends before it starts',
        ),
        # a day given twice
        (
            {
                "calendars": {
                    "emea": {
                        "timezone": "UTC",
                        "hours": {"mon-fri": "09:00-17:00", "fri": "09:00-12:00"},
                    }
                }
            },
            "fri is given twice",
        ),
        # unknown holiday region
        (
            {
                "calendars": {
                    "emea": {
                        "timezone": "UTC",
                        "hours": {"mon": "09:00-17:00"},
                        "holidays": "XX-YY",
                    }
                }
            },
            'calendars.emea.holidays: "XX-YY" is not a country',
        ),
        # the last policy must match every lead
        (
            {"policies": [{"name": "hot", "match": {"priority": ["HIGH"]}, "first_touch": "1h"}]},
            "policies[0].match: the last policy must match every lead",
        ),
        # a bad score range
        (
            {"policies": [{"name": "a", "match": {"score": "high"}}, {"name": "b"}]},
            'policies[0].match.score: "high" is not a score range',
        ),
        # an escalation to a manager that a team does not have
        (
            {
                "teams": {"sales": {"calendar": "emea"}},
                "escalation": [{"after": "0m", "notify": "manager"}],
            },
            "escalation[0].notify: manager, but teams sales have no manager",
        ),
        # a recipient that is nothing known
        (
            {"escalation": [{"after": "0m", "notify": "#sales"}]},
            'escalation[0].notify: "#sales" is not a recipient',
        ),
        # a required section missing
        ({"policies": None}, "policies"),
        # a warning share of the daily request quota beyond all of it
        (
            {"crm": {"rate_limit": {"warn_at_share": 1.5}}},
            "crm.rate_limit.warn_at_share: Input should be less than or equal to 1",
        ),
        # a deadline of no time at all
        (
            {"policies": [{"name": "p", "first_touch": "0m"}]},
            "policies[0].first_touch: must be longer than 0",
        ),
        # a warning that would come before the clock starts
        (
            {"policies": [{"name": "p", "first_touch": "1h", "warn_before": "2h"}]},
            "policies[0]: warn_before (2 business hours) must be shorter than first_touch",
        ),
        # escalation levels out of order
        (
            {"escalation": [{"after": "3h", "notify": "rep"}, {"after": "2h", "notify": "rep"}]},
            "escalation[1].after: 2 business hours falls due before escalation[0]",
        ),
        # a company day off that is no date
        (
            {
                "calendars": {
                    "emea": {
                        "timezone": "Europe/Berlin",
                        "hours": {"mon-fri": "09:00-17:00"},
                        "closed": ["2026-12-32"],
                    }
                }
            },
            "calendars.emea.closed[0]: ",
        ),
        # a calendar that is never open
        (
            {"calendars": {"emea": {"timezone": "Europe/Berlin", "hours": {"mon-fri": "closed"}}}},
            "calendars.emea.hours: no opening hours at all",
        ),
        # every bad digest time, not only the first
        (
            {"schedules": {"digest": ["9am", "25:00"]}},
            '"9am" is not a time of day like 09:00; "25:00" is not a time of day',
        ),
        # the review's slot, cadence and zone
        (
            {"review": {"channel": "#review", "at": "Monday"}},
            'review.at: "Monday" is not a weekday and a time like "Mon 09:00"',
        ),
        (
            {"review": {"channel": "#review", "then": {"after": "8w", "every": "1q"}}},
            "review.then.every: Input should be '1w', '2w' or '1mo'",
        ),
        (
            {"review": {"channel": "#review", "timezone": "Berlin"}},
            'review.timezone: "Berlin" is not an IANA time zone',
        ),
    ],
)
def test_a_config_mistake_names_its_key_path(change: dict[str, Any], expected: str) -> None:
    data = minimal(**change)
    if data.get("policies") is None:
        del data["policies"]
    assert expected in errors_of(data)


def test_every_problem_is_reported_at_once() -> None:
    message = errors_of(
        minimal(
            teams={"sales": {"calendar": "emea", "colour": "red"}},
            policies=[{"name": "p", "first_touch": "soon", "warn_before": "later"}],
        )
    )
    assert "teams.sales.colour" in message
    assert "policies[0].first_touch" in message
    assert "policies[0].warn_before" in message


def test_the_agreement_builds_engine_objects() -> None:
    agreement = Agreement(load_config(ROOT / "config/sla.yaml"))
    assert [p.name for p in agreement.policies] == ["hot", "warm", "default"]
    assert agreement.policies[0].match.priorities == frozenset({"HIGH"})
    assert agreement.policies[0].match.score_min == 80
    assert agreement.touch_rules.min_call == timedelta(minutes=1)
    assert [lvl.notify for lvl in agreement.escalation.levels] == [
        ("rep",),
        ("manager",),
        ("channel",),
    ]
    assert agreement.calendars["emea"].timezone == "Europe/Berlin"


def test_owners_are_routed_to_the_first_matching_team() -> None:
    agreement = Agreement(load_config(ROOT / "config/sla.yaml"))
    assert agreement.team_for("lena@example.com", ["EMEA"]).name == "emea-sales"
    assert agreement.team_for("sam@example.com", ["Americas"]).name == "americas-sales"
    assert agreement.team_for(None, []).name == "americas-sales"


def test_hours_allow_24_00_and_closed_days() -> None:
    config = parse_config(
        minimal(
            calendars={
                "c": {"timezone": "UTC", "hours": {"mon-fri": "00:00-24:00", "sat": "closed"}}
            },
            teams={"s": {"calendar": "c"}},
        )
    )
    weekly = config.calendars["c"].weekly_hours()
    assert weekly[0] == [(0, 1440)] and weekly[5] == [] and weekly[6] == []


def test_the_yaml_file_is_commented_for_every_section() -> None:
    text = (ROOT / "config/sla.yaml").read_text()
    data = yaml.safe_load(text)
    for section in data:
        assert f"{section}:" in text
    assert text.count("#") > 40


def test_the_crm_is_asked_for_every_property_the_config_reads_or_writes() -> None:
    agreement = Agreement(
        parse_config(
            minimal(
                marketing={"monthly_quota": 10, "required_fields": ["email", "jobtitle"]},
                recycle={
                    "set": {"hs_lead_status": "RECYCLED", "nurture_track": "B"},
                    "reason_property": "sla_recycle_reason",
                },
            )
        )
    )
    assert agreement.extra_crm_properties() == (
        "email",
        "jobtitle",
        "hs_lead_status",
        "nurture_track",
        "sla_recycle_reason",
    )


def test_a_cron_line_beat_cannot_run_is_refused_with_its_key() -> None:
    for line in ("99 99 * * 1-9", "0 7 * * 1-9", "61 * * * *"):
        errors = errors_of(minimal(recycle={"schedule": line}))
        assert "recycle.schedule" in errors and line in errors
    parse_config(minimal(recycle={"schedule": "0 7 * * 1-5"}))  # a good one passes


def test_a_crm_provider_that_is_not_built_is_refused_with_its_key() -> None:
    errors = errors_of(minimal(crm={"provider": "salesforce"}))
    assert 'crm.provider: "salesforce" is not supported yet' in errors


def test_a_date_that_does_not_exist_in_the_yaml_is_an_error_with_its_key(tmp_path: Path) -> None:
    text = (ROOT / "config/sla.yaml").read_text().replace("2026-12-24", "2026-12-32")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"calendars\.emea\.closed\[0\]"):
        load_config(bad)
    good = load_config(ROOT / "config/sla.yaml")
    assert all(type(d).__name__ == "date" for d in good.calendars["emea"].closed)


def test_reference_problems_are_reported_with_the_other_errors_of_the_file() -> None:
    message = errors_of(
        minimal(
            teams={"sales": {"calendar": "emeaa", "manager": "boss@example.com"}},
            policies=[{"name": "p", "first_touch": "soon"}],
            escalation=[{"after": "3h", "notify": "rep"}, {"after": "1h", "notify": "manager"}],
        )
    )
    assert 'teams.sales.calendar: "emeaa" is not a calendar (known: emea)' in message
    assert "policies[0].first_touch" in message
    assert "escalation[1].after: 1 business hour falls due before escalation[0]" in message
    assert "teams: teams." not in message  # each line names its own key once


def _fingerprint(section: str | None = None, **values: Any) -> str:
    """The shipped config's fingerprint with ``values`` set in ``section`` (a path like
    ``policies.0``; None: the top level)."""
    data = yaml.safe_load((ROOT / "config/sla.yaml").read_text())
    where = data
    for key in section.split(".") if section else []:
        where = where[int(key)] if key.isdigit() else where[key]
    where.update(values)
    return Agreement(parse_config(data)).fingerprint


@pytest.mark.parametrize(
    ("section", "values", "rejudges"),
    [
        ("policies.0", {"reassign_restarts_first_touch": True}, False),  # written at its default
        (None, {"review": {"channel": "#sales-review"}}, False),
        ("marketing", {"qualified_stage": "lead"}, False),
        ("recycle", {"approval": "required"}, False),
        ("teams.emea-sales", {"cover": "ana@example.com"}, False),
        ("policies.0", {"first_touch": "7h"}, True),
        ("policies.0", {"reassign_restarts_first_touch": False}, True),
    ],
)
def test_only_what_changes_a_verdict_has_every_lead_judged_again(
    section: str | None, values: dict[str, Any], rejudges: bool
) -> None:
    assert (_fingerprint(section, **values) != _fingerprint()) is rejudges
