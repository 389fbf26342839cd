"""The worker's wiring: settings + ruleset + database + the two clients, built once per process.

Only this module knows which CRM provider and which Slack endpoint are in use; stages receive
what they need as arguments. Tokens are passed to the clients and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from worker.config import Ruleset, load_ruleset
from worker.crm.client import CrmClient
from worker.errors import ConfigError
from worker.pipeline.deliver import ChannelPacer, SlackSender
from worker.settings import Settings
from worker.store.db import make_engine, make_sessionmaker


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    settings: Settings
    rules: Ruleset
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime] = utc_now
    #: Paces Slack posts per channel; tests inject one on a virtual clock.
    pacer: ChannelPacer | None = None
    _crm: CrmClient | None = None
    _slack: SlackSender | None = None

    @property
    def crm(self) -> CrmClient:
        if self._crm is None:
            self._crm = make_crm_client(self.settings, self.rules)
        return self._crm

    @property
    def slack(self) -> SlackSender:
        if self._slack is None:
            self._slack = make_slack_client(self.settings)
        return self._slack

    def close(self) -> None:
        self.engine.dispose()


def make_crm_client(settings: Settings, rules: Ruleset) -> CrmClient:
    crm = rules.config.crm
    if crm.provider != "hubspot":
        raise ConfigError(f'crm.provider: "{crm.provider}" is not supported yet (use hubspot)')
    if not settings.hubspot_token:
        raise ConfigError("HUBSPOT_TOKEN is not set: the worker cannot read the CRM")
    from worker.crm.hubspot import HubSpotClient, HubSpotFieldMap
    from worker.ratelimit import Budget, make_rate_limiter

    limiter = make_rate_limiter(
        settings.broker_url,
        {
            "burst": Budget(crm.rate_limit.per_10s, timedelta(seconds=10)),
            "search": Budget(crm.rate_limit.search_per_s, timedelta(seconds=1)),
        },
        prefix=f"sla-worker:ratelimit:{crm.provider}",
    )
    return HubSpotClient(
        settings.hubspot_base_url,
        settings.hubspot_token,
        lead_object=crm.object,
        field_map=HubSpotFieldMap(
            priority=crm.priority_property,
            status=crm.status_property,
            source=crm.source_property,
            score=crm.score_property,
            extra=rules.extra_crm_properties(),
        ),
        max_retries=3,
        limiter=limiter,
    )


def make_slack_client(settings: Settings) -> SlackSender:
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set: the worker cannot send to Slack")
    from worker.slack.client import SlackClient

    return SlackClient(settings.slack_bot_token, settings.slack_api_url)


def build_context(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Context:
    rules = load_ruleset(settings.config_path)
    engine = make_engine(settings.database_url)
    return Context(settings, rules, engine, make_sessionmaker(engine), clock)
