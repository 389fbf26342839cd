"""``GET /dashboard`` of ``sla-worker web``: who may see it, and the page itself in a real
headless browser (Debian's Chromium driven by Playwright) against a seeded store — it loads, the
chart renders, and its numbers are the CSV's."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import IN_CI
from tests.e2e.world import Clock, World, make_world
from tests.period_world import CONFIG, berlin, qualify, report, seed
from worker.settings import Settings
from worker.web.bolt_app import make_bolt_app
from worker.web.dashboard import Dashboard
from worker.web.handoff import submit_action, submit_command
from worker.web.server import WebServer, make_wsgi_app

TOKEN = "dashboard-test-token"
WEEK = "2026-03-23..2026-03-30"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    clock = Clock(berlin(6, 12, month=4))
    yield from make_world(tmp_path, database_url, clock=clock, config=CONFIG)


@pytest.fixture
def seeded(world: World, monkeypatch: pytest.MonkeyPatch) -> str:
    """The March world synced and judged; the period's CSV as ``report`` writes it."""
    qualify(world, seed(world))
    return report(world, monkeypatch, "--format", "csv")


@contextmanager
def serve(world: World, token: str | None) -> Iterator[str]:
    with world.context() as ctx:
        bolt = make_bolt_app(Settings.from_env(world.env()), submit_command, submit_action)
        server = WebServer(make_wsgi_app(bolt, Dashboard(ctx, token)), "127.0.0.1", 0)
        base = server.start()
        try:
            yield base
        finally:
            server.stop()


@pytest.fixture
def web(world: World, seeded: str) -> Iterator[str]:
    with serve(world, TOKEN) as base:
        yield base


def test_the_dashboard_asks_for_its_token_and_keeps_it_out_of_the_address(web: str) -> None:
    refused = requests.get(f"{web}/dashboard", timeout=30)
    assert refused.status_code == 401 and "DASHBOARD_TOKEN" in refused.text
    wrong = requests.get(f"{web}/dashboard", headers={"Authorization": "Bearer x"}, timeout=30)
    assert wrong.status_code == 401

    session = requests.Session()
    first = session.get(f"{web}/dashboard?token={TOKEN}&period={WEEK}", timeout=30)
    assert first.history and first.history[0].status_code == 303
    assert first.url == f"{web}/dashboard?period={WEEK}"  # the token is gone from the address
    assert first.status_code == 200 and "SLA review: 2026-03-23..2026-03-30" in first.text
    assert "HttpOnly" in first.history[0].headers["Set-Cookie"]
    bearer = requests.get(
        f"{web}/dashboard?period={WEEK}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert bearer.status_code == 200
    bad = session.get(f"{web}/dashboard?period=soon", timeout=30)
    assert bad.status_code == 400 and "--period" in bad.text


def test_without_a_token_the_dashboard_is_for_this_machine_only(world: World, seeded: str) -> None:
    with serve(world, None) as base:
        page = requests.get(f"{base}/dashboard?period={WEEK}", timeout=30)
        assert page.status_code == 200  # from 127.0.0.1
    answered: list[str] = []
    with world.context() as ctx:
        body = Dashboard(ctx, None)(
            {"REMOTE_ADDR": "10.1.2.3", "QUERY_STRING": ""},
            lambda status, headers, *_: answered.append(status),  # type: ignore[arg-type,return-value]
        )
    assert answered == ["401 Unauthorized"] and b"this machine only" in b"".join(body)


def test_the_page_lists_the_leads_breaching_now_with_links_into_the_crm(web: str) -> None:
    page = requests.get(
        f"{web}/dashboard?period={WEEK}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ).text
    breaching = page[page.index("<h2>Breaching now</h2>") :]
    assert "Dan Never" in breaching and "Tom Berger" in breaching
    assert "Anna Weekend" not in breaching  # touched in time


@pytest.fixture
def browser_page() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.fail(str(e)) if IN_CI else pytest.skip(f"Playwright is not installed: {e}")
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    with sync_playwright() as playwright:
        # As root (CI) Chromium's sandbox cannot start; the page is our own, from loopback.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": 1200, "height": 900})
        finally:
            browser.close()


def test_the_dashboard_renders_in_a_browser_and_shows_the_csv_figures(
    web: str, seeded: str, browser_page: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page

    page = browser_page
    assert isinstance(page, Page)
    page.goto(f"{web}/dashboard?token={TOKEN}&period={WEEK}")
    assert page.url.endswith(f"/dashboard?period={WEEK}")
    chart = page.locator("#trend svg")
    box = chart.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 300  # drawn, not empty
    assert page.locator("#trend svg path").count() > 20

    rows = {(r["dimension"], r["segment"]): r for r in csv.DictReader(io.StringIO(seeded))}
    total = rows[("all", "all")]
    assert page.inner_text("#received b") == total["received"] == "5"
    assert page.inner_text("#first-touch b") == f"{float(total['first_touch_met_pct']):.0f} %"
    reps = page.locator("table[data-dimension=rep] tr")
    for i in range(1, reps.count()):
        cells = reps.nth(i).locator("td").all_inner_texts()
        name, received, on_time = cells[0], cells[1], cells[2]
        assert received == rows[("rep", name)]["received"]
        pct = float(rows[("rep", name)]["first_touch_met_pct"])
        assert on_time.startswith(f"{pct:.0f} %")
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("DASHBOARD_SCREENSHOT"):  # to refresh the README's picture
        shutil.copy(shot, os.environ["DASHBOARD_SCREENSHOT"])
