"""``sla-worker preflight`` / ``check-config --online`` (issue 19): the config against the real
workspace and CRM (here the fakes, over HTTP), one test per kind of problem, each named by its
config key — through the CLI."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.world import World
from tests.test_cli import run


def _preflight(world: World, tmp_path: Path, *args: str) -> tuple[int, str]:
    done = run(*(args or ("preflight",)), cwd=tmp_path, env=world.env())
    assert "Traceback" not in done.stdout + done.stderr
    return done.returncode, done.stdout + done.stderr


def _edit(world: World, old: str, new: str) -> None:
    text = world.config_path.read_text()
    assert old in text
    world.config_path.write_text(text.replace(old, new))


def test_a_ready_workspace_passes(world: World, tmp_path: Path) -> None:
    world.add_rep()
    code, out = _preflight(world, tmp_path)
    assert code == 0, out
    assert "ready" in out


def test_a_missing_archived_or_unjoined_channel_is_named_by_its_key(
    world: World, tmp_path: Path
) -> None:
    world.slack.add_channel("C0OLD", "old-escalations", is_archived=True)
    world.slack.add_channel("C0QUIET", "quiet-room", is_member=False)
    _edit(world, 'channel: "#sales-escalations"', 'channel: "#no-such-channel"')
    _edit(
        world,
        "  - {after: 2h, notify: manager}",
        '  - {after: 2h, notify: manager}\n  - {after: 3h, notify: "channel:#old-escalations"}\n'
        '  - {after: 4h, notify: "channel:#quiet-room"}',
    )
    code, out = _preflight(world, tmp_path)
    assert code == 1
    assert "teams.sales.channel: #no-such-channel does not exist" in out
    assert "escalation[2].notify: #old-escalations is archived" in out
    assert "escalation[3].notify: the bot is not in #quiet-room" in out


def test_a_manager_who_is_not_in_slack_is_named(world: World, tmp_path: Path) -> None:
    _edit(world, "manager: mike.manager@example.com", "manager: ghost@example.com")
    code, out = _preflight(world, tmp_path)
    assert code == 1
    assert "teams.sales.manager: ghost@example.com is not an active member" in out


def test_team_owners_missing_from_the_crm_are_named(world: World, tmp_path: Path) -> None:
    world.add_rep()  # in the CRM team EMEA
    _edit(
        world,
        '    channel: "#sales-escalations"',
        '    channel: "#sales-escalations"\n    owners: ["team:APAC", "nobody@example.com"]',
    )
    code, out = _preflight(world, tmp_path)
    assert code == 1
    assert 'teams.sales.owners: no active CRM owner is in the team "APAC"' in out
    assert "teams.sales.owners: nobody@example.com is not an active CRM owner" in out


def test_a_crm_property_that_does_not_exist_is_named(world: World, tmp_path: Path) -> None:
    world.add_rep()
    _edit(world, "  touch_types:", "  priority_property: lead_prio\n  touch_types:")
    code, out = _preflight(world, tmp_path, "check-config", "--online")
    assert code == 1
    assert 'crm.priority_property: the CRM has no contacts property "lead_prio"' in out
