"""Who may act on a lead from Slack (its owner, the owner's team manager, an admin of the
config), and the config key that names the admins."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.e2e.world import CONFIG
from worker.config import Agreement, load_config, parse_config
from worker.config_source import ConfigSource
from worker.errors import ConfigError
from worker.permissions import lead_access

ROOT = Path(__file__).resolve().parent.parent
OWNER, MANAGER, ADMIN = "lena@example.com", "anna.schmidt@example.com", "ada@example.com"


@pytest.mark.parametrize(
    ("email", "allowed"),
    [
        (OWNER, True),
        ("Lena@Example.COM", True),  # e-mail addresses are compared without regard to case
        (MANAGER, True),
        (ADMIN, True),
        ("jonas@example.com", False),  # another rep of the same team
        ("", False),
        (None, False),  # Slack gave no e-mail: nobody known
    ],
)
def test_the_owner_their_manager_and_an_admin_may_act_on_a_lead(
    email: str | None, allowed: bool
) -> None:
    access = lead_access(OWNER, "Lena Fischer", MANAGER, [ADMIN])
    assert access.allows(email) is allowed


def test_an_unowned_lead_is_the_admins_alone() -> None:
    access = lead_access(None, None, MANAGER, [ADMIN])
    assert access.allows(ADMIN)
    assert not access.allows(MANAGER)  # no owner, so no team and no manager of it
    assert access.who() == "an SLA admin (slack.admins in the config)"


def test_the_refusal_names_who_may() -> None:
    assert lead_access(OWNER, "Lena Fischer", MANAGER, []).who() == (
        "its owner Lena Fischer, their manager anna.schmidt@example.com "
        "or an SLA admin (slack.admins in the config)"
    )
    assert lead_access(OWNER, None, None, []).who() == (
        "its owner lena@example.com or an SLA admin (slack.admins in the config)"
    )


def config_with(slack_section: str) -> str:
    return CONFIG % {"send_resolved": "true"} + slack_section


def test_admins_are_read_from_the_slack_section_and_default_to_none(tmp_path: Path) -> None:
    assert load_config(ROOT / "config/sla.yaml").slack.admins == []
    path = tmp_path / "sla.yaml"
    path.write_text(config_with("slack:\n  admins: [ada@example.com]\n"))
    assert load_config(path).slack.admins == ["ada@example.com"]


def test_an_admin_that_is_not_an_e_mail_is_named_by_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(config_with("slack:\n  admins: [ada@example.com, ada]\n  admin: []\n"))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert 'slack.admins[1]: "ada" is not an e-mail address' in str(error.value)
    assert 'slack.admin: unknown key (did you mean "admins"?)' in str(error.value)


def test_admins_change_no_verdict_but_apply_from_the_next_reload(tmp_path: Path) -> None:
    base = yaml.safe_load(config_with(""))
    without = Agreement(parse_config(base))
    with_admins = Agreement(parse_config({**base, "slack": {"admins": [ADMIN]}}))
    # Findings are not judged again for who may act from Slack (nor after the upgrade that
    # brought the section).
    assert without.fingerprint == with_admins.fingerprint

    path = tmp_path / "sla.yaml"
    path.write_text(config_with(""))
    source = ConfigSource(path)
    path.write_text(config_with(f"slack:\n  admins: [{ADMIN}]\n"))
    assert source.refresh(datetime(2026, 11, 24, tzinfo=UTC))
    assert source.agreement.config.slack.admins == [ADMIN]
