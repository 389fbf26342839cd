"""The service command lines of docker-compose.yml: the integration test runs exactly these."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def services() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    result: dict[str, Any] = data["services"]
    return result


def command(service: str) -> list[str]:
    cmd = services()[service]["command"]
    assert isinstance(cmd, list), f"{service}: write the command as a list"
    return [str(part) for part in cmd]
