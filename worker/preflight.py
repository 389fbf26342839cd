"""``sla-worker preflight``: the config checked against the real workspace and CRM before
anything is sent — every channel exists and the bot is in it, every manager and escalation
e-mail is a Slack member, every team's owners exist in the CRM, every CRM property the config
reads or writes exists. Each problem is named by its config key, as ``check-config`` names a
typo; the first failure no longer shows up at 09:00 the next morning.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from worker.config import SlaConfig
from worker.crm.hubspot import HubSpotClient
from worker.errors import SlaWorkerError
from worker.slack.client import SlackChannel, SlackClient


@dataclass(frozen=True)
class Problem:
    key: str  # the config key path, e.g. teams.emea-sales.channel
    text: str

    def line(self) -> str:
        return f"{self.key}: {self.text}"


def preflight(config: SlaConfig, crm: HubSpotClient, slack: SlackClient) -> list[Problem]:
    """Every problem found; empty when the workspace and the CRM are ready for this config."""
    return [
        *_channel_problems(config, slack),
        *_people_problems(config, slack),
        *_owner_problems(config, crm),
        *_property_problems(config, crm),
    ]


def _channels(config: SlaConfig) -> Iterator[tuple[str, str]]:
    """(key, channel) for every channel the config sends to."""
    for name, team in config.teams.items():
        if team.channel:
            yield f"teams.{name}.channel", team.channel
    for index, level in enumerate(config.escalation):
        for who in level.notify:
            if who.startswith("channel:"):
                yield f"escalation[{index}].notify", who.removeprefix("channel:")
    if config.notifications.fallback_channel:
        yield "notifications.fallback_channel", config.notifications.fallback_channel
    if config.recycle is not None and config.recycle.notify_channel:
        yield "recycle.notify_channel", config.recycle.notify_channel
    if config.marketing is not None and config.marketing.channel:
        yield "marketing.channel", config.marketing.channel
    if config.recycle is not None and config.recycle.approval_channel:
        yield "recycle.approval_channel", config.recycle.approval_channel
    if config.review is not None:
        yield "review.channel", config.review.channel


def _channel_problems(config: SlaConfig, slack: SlackClient) -> Iterator[Problem]:
    wanted = list(_channels(config))
    if not wanted:
        return
    try:
        known = slack.channels()
    except SlaWorkerError as e:
        yield Problem("slack", f"cannot list channels ({e}); the token needs channels:read")
        return
    by_name: dict[str, SlackChannel] = {c.name: c for c in known}
    by_id: dict[str, SlackChannel] = {c.id: c for c in known}
    for key, channel in wanted:
        found = by_id.get(channel) or by_name.get(channel.lstrip("#"))
        if found is None:
            yield Problem(
                key, f"{channel} does not exist (or is private and the bot was never invited)"
            )
        elif found.is_archived:
            yield Problem(key, f"{channel} is archived")
        elif not found.is_member:
            yield Problem(key, f"the bot is not in {channel}: invite it (/invite @your-bot)")


def _people(config: SlaConfig) -> Iterator[tuple[str, str]]:
    """(key, e-mail) for every person the config sends to by address."""
    for name, team in config.teams.items():
        if team.manager:
            yield f"teams.{name}.manager", team.manager
    for index, level in enumerate(config.escalation):
        for who in level.notify:
            if "@" in who and not who.startswith("channel:"):
                yield f"escalation[{index}].notify", who


def _people_problems(config: SlaConfig, slack: SlackClient) -> Iterator[Problem]:
    for key, email in _people(config):
        try:
            user = slack.lookup_user_by_email(email)
        except SlaWorkerError as e:
            yield Problem(key, f"cannot look up {email} in Slack ({e})")
            continue
        if user is None or user.deleted:
            yield Problem(key, f"{email} is not an active member of the Slack workspace")


def _owner_problems(config: SlaConfig, crm: HubSpotClient) -> Iterator[Problem]:
    try:
        owners = [o for o in crm.list_owners() if not o.archived]
    except SlaWorkerError as e:
        yield Problem("crm", f"cannot list the CRM's owners ({e})")
        return
    emails = {(o.email or "").lower() for o in owners}
    teams = {t.lower() for o in owners for t in o.teams}
    for name, team in config.teams.items():
        for entry in team.owners:
            if entry == "*":
                continue
            if entry.startswith("team:"):
                if entry.removeprefix("team:").lower() not in teams:
                    yield Problem(
                        f"teams.{name}.owners",
                        f'no active CRM owner is in the team "{entry.removeprefix("team:")}"',
                    )
            elif entry.lower() not in emails:
                yield Problem(f"teams.{name}.owners", f"{entry} is not an active CRM owner")


def _properties(config: SlaConfig) -> Iterator[tuple[str, str]]:
    """(key, property) for every CRM property the config names."""
    crm = config.crm
    for key in ("priority_property", "status_property", "source_property", "score_property"):
        yield f"crm.{key}", getattr(crm, key)
    if config.marketing is not None:
        for index, name in enumerate(config.marketing.required_fields):
            yield f"marketing.required_fields[{index}]", name
        for key in ("reason_property", "campaign_property"):
            value = getattr(config.marketing, key)
            if value:
                yield f"marketing.{key}", value
    if config.recycle is not None:
        for name in config.recycle.set:
            yield f"recycle.set.{name}", name
        if config.recycle.reason_property:
            yield "recycle.reason_property", config.recycle.reason_property


def _property_problems(config: SlaConfig, crm: HubSpotClient) -> Iterator[Problem]:
    try:
        existing = crm.property_names()
    except SlaWorkerError as e:
        yield Problem("crm", f"cannot read the CRM's properties ({e})")
        return
    for key, name in _properties(config):
        if name not in existing:
            yield Problem(key, f'the CRM has no {config.crm.object} property "{name}"')
