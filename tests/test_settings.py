from pathlib import Path

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
