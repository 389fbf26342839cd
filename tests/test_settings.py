from pathlib import Path

import pytest

from worker.errors import ConfigError
from worker.settings import DEFAULT_BROKER_URL, DEFAULT_DATABASE_URL, Settings


def test_settings_default_to_embedded_sqlite_and_broker() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.broker_url == DEFAULT_BROKER_URL
    assert settings.config_path == Path("config/sla.yaml")
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.hubspot_base_url == "https://api.hubapi.com"


def test_settings_read_the_documented_variables() -> None:
    settings = Settings.from_env(
        {
            "SLA_CONFIG": "/etc/sla.yaml",
            "DATABASE_URL": "postgresql://db/sla",
            "BROKER_URL": "redis://r:6379/0",
            "SLACK_BOT_TOKEN": "xoxb-secret",
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
            "HUBSPOT_TOKEN": "pat-secret",
            "HUBSPOT_BASE_URL": "http://127.0.0.1:8",
        }
    )
    assert settings.config_path == Path("/etc/sla.yaml")
    assert settings.database_url == "postgresql://db/sla"
    assert settings.broker_url == "redis://r:6379/0"
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.hubspot_base_url == "http://127.0.0.1:8"
    assert settings.slack_bot_token == "xoxb-secret"


def test_tokens_never_show_in_the_settings_repr() -> None:
    settings = Settings.from_env({"SLACK_BOT_TOKEN": "xoxb-secret", "HUBSPOT_TOKEN": "pat-secret"})
    assert "secret" not in repr(settings)


def test_empty_variables_fall_back_to_defaults() -> None:
    assert Settings.from_env({"DATABASE_URL": "  "}).database_url == DEFAULT_DATABASE_URL


def test_a_database_password_with_any_character_is_put_in_escaped() -> None:
    from sqlalchemy import make_url

    password = "p@ss/w:rd%40#?"
    settings = Settings.from_env(
        {"DATABASE_URL": "postgresql://sla@postgres:5432/sla", "DATABASE_PASSWORD": password}
    )
    url = make_url(settings.database_url)
    assert (url.username, url.password, url.host, url.database) == (
        "sla", password, "postgres", "sla"
    )  # fmt: skip


def test_the_web_service_listens_on_loopback_port_3000_unless_told() -> None:
    settings = Settings.from_env({})
    assert (settings.web_host, settings.web_port, settings.slack_signing_secret) == (
        "127.0.0.1", 3000, None
    )  # fmt: skip
    settings = Settings.from_env({"WEB_HOST": "0.0.0.0", "WEB_PORT": "8080"})
    assert (settings.web_host, settings.web_port) == ("0.0.0.0", 8080)


def test_a_web_port_that_is_not_a_port_is_refused_naming_the_variable() -> None:
    for bad in ("http", "-1", "70000"):
        with pytest.raises(ConfigError, match=f'WEB_PORT: "{bad}" is not a port number'):
            Settings.from_env({"WEB_PORT": bad})


def test_the_signing_secret_is_a_secret_redacted_from_logs() -> None:
    settings = Settings.from_env({"SLACK_SIGNING_SECRET": "8f14e45fceea167a5a36dedd4bea2543"})
    assert settings.slack_signing_secret == "8f14e45fceea167a5a36dedd4bea2543"
    assert "8f14e45f" not in repr(settings)
    assert "8f14e45fceea167a5a36dedd4bea2543" in settings.secrets()


def test_the_app_level_token_for_socket_mode_is_a_secret_redacted_from_logs() -> None:
    assert Settings.from_env({}).slack_app_token is None  # unset: HTTP mode
    settings = Settings.from_env({"SLACK_APP_TOKEN": " xapp-1-A0SLAAPP-1-0123abcd "})
    assert settings.slack_app_token == "xapp-1-A0SLAAPP-1-0123abcd"
    assert "0123abcd" not in repr(settings)
    assert "xapp-1-A0SLAAPP-1-0123abcd" in settings.secrets()
