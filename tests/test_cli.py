"""The CLI as a user types it: subprocesses of the installed ``sla-worker`` script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "sla-worker"


def run(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_check_config_accepts_the_shipped_config() -> None:
    done = run("check-config", "config/sla.yaml")
    assert done.returncode == 0, done.stderr
    assert "config/sla.yaml: OK" in done.stdout


def test_check_config_uses_sla_config_by_default(tmp_path: Path) -> None:
    done = run("check-config", cwd=tmp_path, env={"SLA_CONFIG": str(ROOT / "config/sla.yaml")})
    assert done.returncode == 0, done.stderr


def test_check_config_names_the_key_of_a_mistyped_duration(tmp_path: Path) -> None:
    text = (ROOT / "config/sla.yaml").read_text().replace("first_touch: 4h", "first_touch: 4x")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    done = run("check-config", str(bad))
    assert done.returncode == 2
    assert 'policies[1].first_touch: "4x" is not a duration like 90m, 4h, 2d' in done.stderr


def test_check_config_lists_every_error_at_once(tmp_path: Path) -> None:
    text = (
        (ROOT / "config/sla.yaml")
        .read_text()
        .replace("calendar: emea", "calender: emea")
        .replace("timezone: America/New_York", "timezone: America/Gotham")
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    done = run("check-config", str(bad))
    assert done.returncode == 2
    assert 'teams.emea-sales.calender: unknown key (did you mean "calendar"?)' in done.stderr
    assert "calendars.americas.timezone" in done.stderr


def test_check_config_reports_a_yaml_syntax_error_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("teams:\n  a: [unclosed\n")
    done = run("check-config", str(bad))
    assert done.returncode == 2
    assert "line 3" in done.stderr and "not valid YAML" in done.stderr


def test_check_config_on_a_missing_file_says_so(tmp_path: Path) -> None:
    done = run("check-config", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert "cannot read the config file" in done.stderr


def test_python_dash_m_worker_is_the_same_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0
    for command in ("demo", "run-once", "check-config", "explain", "worker", "db"):
        assert command in done.stdout


def test_run_once_without_a_token_says_which_variable_is_missing(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}",
        "HUBSPOT_TOKEN": "",
        "SLA_CONFIG": str(ROOT / "config/sla.yaml"),
    }
    done = run("run-once", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert "HUBSPOT_TOKEN is not set" in done.stderr


@pytest.mark.slow
def test_the_demo_prints_the_slack_messages_and_exits_0(tmp_path: Path) -> None:
    env = {
        k: ""
        for k in (
            "SLA_CONFIG",
            "DATABASE_URL",
            "BROKER_URL",
            "HUBSPOT_TOKEN",
            "SLACK_BOT_TOKEN",
            "HUBSPOT_BASE_URL",
            "SLACK_API_URL",
        )
    }
    done = run("demo", cwd=tmp_path, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "DM to Lena Fischer" in out
    assert "Maria Lopez" in out
    assert "DM to Anna Schmidt" in out  # the manager escalation
    assert "DM to Jonas Weber" in out and "due soon" in out
    assert "DM to Sam Carter" in out
    assert "<!channel> Braun & Söhne" in out  # shown as text, sent escaped
    assert "Demo summary:" in out
    assert not list(tmp_path.iterdir())  # nothing left behind in the working directory


@pytest.mark.slow
def test_every_command_says_in_one_line_that_the_database_is_unreachable(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": "postgresql://admin:s3cret@127.0.0.1:1/nope",
        "SLA_CONFIG": str(ROOT / "config/sla.yaml"),
        "HUBSPOT_TOKEN": "t",
        "SLACK_BOT_TOKEN": "t",
    }
    commands = [
        ["run-once"],
        ["report"],
        ["health"],
        ["explain", "42"],
        ["leads"],
        ["recycle", "--dry-run"],
        ["backtest", str(ROOT / "config/sla.yaml")],
        ["db", "upgrade"],
    ]
    for command in commands:
        done = run(*command, cwd=tmp_path, env=env)
        assert done.returncode == 3, (command, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, (command, done.stderr)
        assert lines[0].startswith("error: the database at postgresql+psycopg://admin:***@")
        assert "s3cret" not in done.stderr + done.stdout


def test_version_prints_the_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == "sla-worker 0.1.0"


def test_a_reader_that_goes_away_is_not_an_error() -> None:
    """``sla-worker … | head``: the pipe closes before the command writes."""
    process = subprocess.Popen(
        [str(SCRIPT), "check-config", str(ROOT / "config/sla.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `| head -0`
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, stderr
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr


def test_a_bad_candidate_file_is_named_in_the_error(tmp_path: Path) -> None:
    bad = tmp_path / "candidate.yaml"
    bad.write_text(
        (ROOT / "config/sla.yaml").read_text().replace("first_touch: 4h", "first_touch: 4x")
    )
    done = run(
        "backtest", str(bad), cwd=tmp_path, env={"SLA_CONFIG": str(ROOT / "config/sla.yaml")}
    )
    assert done.returncode == 2
    assert f"configuration error in {bad}:" in done.stderr
    assert 'policies[1].first_touch: "4x"' in done.stderr
    assert "UTC" in run("backtest", "--help").stdout
