"""Who acts from Slack, and on which leads they may: shared by ``/sla`` commands
(``slack_commands``) and buttons (``slack_actions``), so both know a person the same way and
refuse with the same words.

A person is their Slack user id, known by the e-mail of their Slack profile (``users.info``,
remembered in the Slack user table for ``notifications.user_cache_for``); who may act on a
lead is ``worker.permissions``' rule. Reads the store and asks Slack; writes only that cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.config import Team
from worker.errors import ConfigError, SlaWorkerError
from worker.permissions import LeadAccess, lead_access
from worker.pipeline.context import Context
from worker.slack.client import SlackClient, SlackUser
from worker.store import outbox
from worker.store.db import session_scope
from worker.store.models import Lead, Owner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """The person behind a Slack user id: their Slack profile's e-mail (None: Slack gave
    none, so they may do nothing), time zone and real name (None: not known)."""

    slack_user_id: str
    email: str | None
    tz: str | None
    name: str | None = None

    @property
    def shown_name(self) -> str:
        """How messages name them: the real name, else the e-mail, else the Slack id."""
        return self.name or self.email or self.slack_user_id


class SlackDirectory(Protocol):
    """Who a Slack user is (``SlackClient.user_by_id``)."""

    def user_by_id(self, user_id: str) -> SlackUser | None: ...


def slack_client(ctx: Context) -> SlackClient:
    """The context's Slack client; answering Slack needs the real one (not a recorder)."""
    slack = ctx.slack
    if not isinstance(slack, SlackClient):
        raise ConfigError("answering Slack commands and actions needs the real Slack client")
    return slack


def identify(ctx: Context, now: datetime, user_id: str, directory: SlackDirectory) -> Caller:
    """The caller's e-mail, time zone and name: from the Slack user table while a lookup is
    fresh (``notifications.user_cache_for``), else from ``users.info``, remembered. A
    deactivated user, one without an e-mail, or Slack not answering: an unknown caller,
    allowed nothing."""
    ttl = ctx.agreement.config.notifications.user_cache_for
    with session_scope(ctx.sessions) as session:
        cached = outbox.cached_slack_user_by_id(session, user_id, now, ttl)
        if cached is not None:
            return Caller(user_id, cached.email, cached.tz, cached.name)
    try:
        user = directory.user_by_id(user_id)
    except SlaWorkerError as e:
        log.warning("Slack did not say who %s is: %s", user_id, e)
        return Caller(user_id, None, None)
    if user is None or user.deleted or not user.email:
        return Caller(user_id, None, None)
    with session_scope(ctx.sessions) as session:
        outbox.remember_slack_user(session, user.email, user.id, user.tz, now, name=user.name)
    return Caller(user_id, user.email.lower(), user.tz, user.name or None)


def team_of(session: Session, ctx: Context, email: str) -> Team:
    """The team of the owner with this e-mail (the first team when none is)."""
    owner = session.scalars(select(Owner).where(func.lower(Owner.email) == email.lower())).first()
    return ctx.agreement.team_for(email, owner.teams if owner else [])


def access_to(session: Session, ctx: Context, lead_id: str) -> LeadAccess:
    """Who may act on this stored lead: its owner, their team's manager, the admins."""
    lead = session.get(Lead, lead_id)
    owner = session.get(Owner, lead.owner_id) if lead is not None and lead.owner_id else None
    admins = ctx.agreement.config.slack.admins
    if owner is None or not owner.email:
        return lead_access(None, None, None, admins)
    team = ctx.agreement.team_for(owner.email, owner.teams)
    return lead_access(owner.email, owner.display_name, team.manager, admins)
