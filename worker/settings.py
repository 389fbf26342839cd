"""Settings from the environment (12-factor): secrets, endpoints and where the config lives.

Policies, calendars, teams and schedules are not here: they come from the YAML config
(``worker.config``). Nothing here may ever be logged whole: tokens are secrets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from worker.errors import ConfigError

DEFAULT_CONFIG = "config/sla.yaml"
DEFAULT_DATABASE_URL = "sqlite:///sla-worker.sqlite"
DEFAULT_BROKER_URL = "sqla+sqlite:///sla-worker-broker.sqlite"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_HUBSPOT_BASE_URL = "https://api.hubapi.com"
DEFAULT_SALESFORCE_LOGIN_URL = "https://login.salesforce.com"
#: The OpenTelemetry Prometheus exporter's default port: free of the usual exporters' ones.
DEFAULT_METRICS_PORT = 9464
#: Where ``sla-worker web`` (Slack commands and interactivity) listens: loopback unless told
#: otherwise (compose says 0.0.0.0 inside its container and publishes on the host's loopback).
DEFAULT_WEB_HOST = "127.0.0.1"
#: Bolt's own default port (``App.start``).
DEFAULT_WEB_PORT = 3000
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Settings:
    """Everything the worker reads from the environment, with embedded defaults."""

    config_path: Path = Path(DEFAULT_CONFIG)
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str = DEFAULT_BROKER_URL
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    hubspot_token: str | None = field(default=None, repr=False)
    hubspot_base_url: str = DEFAULT_HUBSPOT_BASE_URL
    salesforce_login_url: str = DEFAULT_SALESFORCE_LOGIN_URL
    salesforce_instance_url: str | None = None
    salesforce_client_id: str | None = field(default=None, repr=False)
    salesforce_client_secret: str | None = field(default=None, repr=False)
    salesforce_refresh_token: str | None = field(default=None, repr=False)
    #: Where the Celery worker serves /metrics (0: not at all).
    metrics_port: int = DEFAULT_METRICS_PORT
    #: ``text`` or ``json`` (one object a line).
    log_format: str = "text"
    #: The Slack app's signing secret: ``sla-worker web`` refuses requests not signed with it.
    slack_signing_secret: str | None = field(default=None, repr=False)
    web_host: str = DEFAULT_WEB_HOST
    #: 0: any free port (printed at start).
    web_port: int = DEFAULT_WEB_PORT
    #: The Slack app's app-level token (``xapp-…``, scope ``connections:write``): when set,
    #: ``sla-worker web`` takes Slack's requests over Socket Mode instead of HTTP.
    slack_app_token: str | None = field(default=None, repr=False)
    #: Who may see ``GET /dashboard`` of ``sla-worker web`` when it listens beyond this machine.
    dashboard_token: str | None = field(default=None, repr=False)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value set, for log redaction."""
        values = (
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.dashboard_token,
            self.hubspot_token,
            self.salesforce_client_secret,
            self.salesforce_refresh_token,
        )
        return tuple(v for v in values if v)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        def secret(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        return cls(
            config_path=Path(get("SLA_CONFIG", DEFAULT_CONFIG)),
            database_url=_with_password(
                get("DATABASE_URL", DEFAULT_DATABASE_URL), secret("DATABASE_PASSWORD")
            ),
            broker_url=get("BROKER_URL", DEFAULT_BROKER_URL),
            slack_bot_token=secret("SLACK_BOT_TOKEN"),
            slack_api_url=get("SLACK_API_URL", DEFAULT_SLACK_API_URL),
            hubspot_token=secret("HUBSPOT_TOKEN"),
            hubspot_base_url=get("HUBSPOT_BASE_URL", DEFAULT_HUBSPOT_BASE_URL),
            salesforce_login_url=get("SALESFORCE_LOGIN_URL", DEFAULT_SALESFORCE_LOGIN_URL),
            salesforce_instance_url=secret("SALESFORCE_INSTANCE_URL"),
            salesforce_client_id=secret("SALESFORCE_CLIENT_ID"),
            salesforce_client_secret=secret("SALESFORCE_CLIENT_SECRET"),
            salesforce_refresh_token=secret("SALESFORCE_REFRESH_TOKEN"),
            metrics_port=_port(
                "METRICS_PORT",
                get("METRICS_PORT", str(DEFAULT_METRICS_PORT)),
                "0 turns metrics off",
            ),
            log_format=_log_format(get("LOG_FORMAT", "text")),
            slack_signing_secret=secret("SLACK_SIGNING_SECRET"),
            web_host=get("WEB_HOST", DEFAULT_WEB_HOST),
            web_port=_port("WEB_PORT", get("WEB_PORT", str(DEFAULT_WEB_PORT)), "0: any free port"),
            slack_app_token=secret("SLACK_APP_TOKEN"),
            dashboard_token=secret("DASHBOARD_TOKEN"),
        )


def _port(name: str, text: str, zero_means: str) -> int:
    port = int(text) if text.isdigit() else -1
    if not 0 <= port <= 65535:
        raise ConfigError(f'{name}: "{text}" is not a port number ({zero_means})')
    return port


def _log_format(text: str) -> str:
    if text.lower() not in LOG_FORMATS:
        raise ConfigError(f'LOG_FORMAT: "{text}" is not one of {", ".join(LOG_FORMATS)}')
    return text.lower()


def _with_password(url: str, password: str | None) -> str:
    """``DATABASE_URL`` with ``DATABASE_PASSWORD`` put in, escaped: a password with ``@``, ``/``
    or ``%`` written into a URL by hand (as a compose file would) breaks it."""
    if password is None:
        return url
    from sqlalchemy import make_url

    return make_url(url).set(password=password).render_as_string(hide_password=False)
