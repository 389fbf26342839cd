"""`sla-worker report --period`: figures over a period, checked against figures worked out by
hand — business time to first touch across a weekend and a DST change, deadlines on either
side of the period's ends, per rep and in total."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.world import Clock, World, make_world
from tests.period_world import BERLIN, CONFIG, berlin, crm_edit, qualify, report, seed
from worker.cli import main
from worker.period_figures import median, percentile
from worker.periods import parse_period


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    clock = Clock(berlin(6, 12, month=4))
    yield from make_world(tmp_path, database_url, clock=clock, config=CONFIG)


def test_figures_over_a_period_match_the_hand_computed_ones(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(world)
    document = json.loads(report(world, monkeypatch, "--format", "json"))

    assert document["period"]["start"] == "2026-03-22T23:00:00+00:00"  # midnight CET
    assert document["period"]["end"] == "2026-03-30T22:00:00+00:00"  # midnight CEST
    total = document["total"]
    assert total["received"] == 5  # not Finn, assigned the week before
    assert (total["first_touch_met"], total["first_touch_met_late"]) == (3, 1)
    assert (total["first_touch_breached"], total["first_touch_open"]) == (1, 0)  # not Eva's
    assert total["first_touch_met_pct"] == 60.0
    # 30m, 2h15m, 3h, 6h: the median is between 2h15m and 3h; the 90th percentile is 6h.
    assert total["median_to_first_touch_min"] == 157.5
    assert total["p90_to_first_touch_min"] == 360.0
    # Anna's, Ben's and Cora's calls in the period (Eva's was on the 31st): 3 of 5 leads.
    assert (total["touches"], total["touches_per_lead"], total["time_spent_min"]) == (3, 0.6, 15.0)
    assert total["missed_first_touch"] == 2

    lena = document["by"]["rep"]["Lena Fischer"]
    assert (lena["received"], lena["first_touch_met_pct"]) == (3, 66.7)
    assert lena["median_to_first_touch_min"] == 180.0  # 30m, 3h, 6h
    tom = document["by"]["rep"]["Tom Berger"]
    assert (tom["received"], tom["first_touch_met_pct"]) == (2, 50.0)
    assert tom["median_to_first_touch_min"] == 135.0
    assert document["by"]["team"]["emea"] == total
    assert document["by"]["policy"]["inbound"] == total


def test_marketing_counts_the_leads_qualified_in_the_period_against_its_share_of_the_quota(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    qualify(world, seed(world))
    marketing = json.loads(report(world, monkeypatch, "--format", "json"))["marketing"]

    # Anna, Ben and Eva (qualified 23:30 on the 30th); not Cora (20th), Dan (31st), Finn.
    assert marketing["basis"] == "entered marketingqualifiedlead"
    # 8 of March's 31 days: 31 × 8/31 = 8 leads; the team's 62 → 16; the source's 31 → 8.
    assert (marketing["delivered"], marketing["quota"], marketing["attainment_pct"]) == (
        3,
        8.0,
        37.5,
    )
    assert marketing["teams"] == {"emea": {"delivered": 3, "quota": 16.0, "attainment_pct": 18.8}}
    assert marketing["sources"]["ORGANIC_SEARCH"] == {
        "delivered": 1,
        "quota": 8.0,
        "attainment_pct": 12.5,
    }
    assert marketing["completeness_pct"] == 33.3  # Anna alone has a phone
    assert marketing["feedback"] == {"unknown source": {"UNQUALIFIED": 1}}


def test_the_csv_and_the_table_show_the_same_figures(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seed(world)
    out = tmp_path / "week.csv"
    said = report(world, monkeypatch, "--format", "csv", "--output", str(out))
    assert "written to" in said
    rows = {(r["dimension"], r["segment"]): r for r in csv.DictReader(out.open())}
    assert rows[("all", "all")]["first_touch_met_pct"] == "60.0"
    assert rows[("rep", "Tom Berger")]["first_touch_breached"] == "1"

    table = report(world, monkeypatch)
    assert "Compliance, 2026-03-23..2026-03-30 (Mon 23 Mar 2026 to Mon 30 Mar 2026" in table
    assert "  Lena Fischer  " in table and "67 %" in table and "2h37m30s" in table


def test_the_png_chart_is_drawn_and_not_blank(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    qualify(world, seed(world))
    out = tmp_path / "review.png"
    report(world, monkeypatch, "--format", "png", "--output", str(out))

    image = Image.open(out)
    assert image.format == "PNG" and image.size == (800, 600)
    colours = Counter({rgb: n for n, rgb in image.convert("RGB").getcolors(800 * 600) or []})
    assert len(colours) > 50  # lines, bars, text: far from a blank canvas
    assert colours.most_common(1)[0][1] < 0.95 * 800 * 600
    assert colours[(0x00, 0x72, 0xB2)] > 20  # the team's line
    assert colours[(0x56, 0xB4, 0xE9)] > 500  # the quota bar of the period (37.5 %)
    # The same figures draw the same bytes (no date in the file).
    again = tmp_path / "again.png"
    report(world, monkeypatch, "--format", "png", "--output", str(again))
    assert again.read_bytes() == out.read_bytes()


class _Cells(HTMLParser):
    """The text of each table row of a page, by the table's data-dimension."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.tiles: dict[str, str] = {}
        self._table = ""
        self._tile = ""
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "table":
            self._table = named.get("data-dimension") or ""
            self.rows[self._table] = []
        elif tag == "tr":
            self.rows[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "div" and named.get("class") == "tile" and named.get("id"):
            self._tile = named["id"] or ""
        elif tag == "b" and self._tile:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "b" and self._tile and self._cell is not None:
            self.tiles[self._tile] = "".join(self._cell).strip()
            self._cell, self._tile = None, ""

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_the_html_page_shows_the_csv_figures_and_escapes_crm_text(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ids = seed(world)
    qualify(world, ids)
    crm_edit(world, ids["Ben"], berlin(23, 8), hs_analytics_source="<b>PAID</b>")
    page = report(world, monkeypatch, "--format", "html")
    table = csv.DictReader(io.StringIO(report(world, monkeypatch, "--format", "csv")))
    rows = {(r["dimension"], r["segment"]): r for r in table}

    assert "<b>PAID</b>" not in page and "&lt;b&gt;PAID&lt;/b&gt;" in page
    assert "<script" not in page and "<svg" in page
    cells = _Cells()
    cells.feed(page)
    assert cells.tiles["received"] == rows[("all", "all")]["received"] == "5"
    assert cells.tiles["first-touch"] == "60 %"
    assert cells.tiles["quota"] == "38 %"  # 37.5 in the CSV
    for name, received, on_time, *_ in cells.rows["rep"][1:]:
        assert received == rows[("rep", name)]["received"]
        assert on_time.split(" %")[0] == f"{float(rows[('rep', name)]['first_touch_met_pct']):.0f}"


def test_a_team_filter_and_a_bad_period_are_handled(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(world)
    assert json.loads(report(world, monkeypatch, "--team", "emea", "--format", "json"))
    monkeypatch.undo()
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    assert main(["report", "--period", "week", "--team", "apac"]) == 2
    assert '--team: no team "apac" in the config (teams: emea)' in capsys.readouterr().err
    assert main(["report", "--period", "2026-03-23..soon"]) == 2
    assert "needs two ISO dates" in capsys.readouterr().err
    assert main(["report", "--format", "csv"]) == 2
    assert "go with --period" in capsys.readouterr().err


def test_named_periods_are_the_last_complete_ones_in_the_zone() -> None:
    now = berlin(1, 10, month=4)  # Wednesday 1 April
    week = parse_period("week", now, BERLIN)
    assert (week.label, week.start, week.end) == ("week 2026-W13", berlin(23, 0), berlin(30, 0))
    month = parse_period("month", now, BERLIN)
    assert (month.label, month.start, month.end) == ("March 2026", berlin(1, 0), berlin(1, 0, 0, 4))
    quarter = parse_period("quarter", now, BERLIN)
    assert quarter.label == "Q1 2026"
    assert quarter.start == datetime(2026, 1, 1, tzinfo=BERLIN).astimezone(UTC)
    assert quarter.previous().label == "Q4 2025"
    assert week.previous().label == "week 2026-W12"
    assert month.previous().label == "February 2026"
    assert week.end - week.start == timedelta(days=7, hours=-1)  # the clocks went forward
    assert berlin(30, 0) not in week and berlin(23, 0) in week
    so_far = parse_period("this-month", now, BERLIN)
    assert (so_far.label, so_far.start, so_far.end) == (
        "April 2026 so far",
        berlin(1, 0, 0, 4),
        now,
    )
    assert so_far.previous() == month
    this_week = parse_period("this-week", now, BERLIN)
    assert this_week.start == berlin(30, 0) and this_week.previous() == week


def test_median_and_percentile_by_nearest_rank() -> None:
    minutes = [timedelta(minutes=m) for m in (10, 40, 20, 30)]
    assert median(minutes) == timedelta(minutes=25)
    assert median(minutes[:3]) == timedelta(minutes=20)
    assert percentile(minutes, 90) == timedelta(minutes=40)
    assert percentile(minutes, 50) == timedelta(minutes=20)
    assert median([]) is None and percentile([], 90) is None
