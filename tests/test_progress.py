"""A long command's progress bar: on a terminal only, never in logs or pipes."""

from __future__ import annotations

import io

import pytest

from worker.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_a_bar_is_drawn_on_a_terminal_and_nothing_elsewhere(
    terminal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    with progress_bar("replaying") as progress:
        for done in range(0, 3001, 1000):
            progress(done, 3000)
    drawn = stderr.getvalue()
    if terminal:
        assert "replaying" in drawn and "3000/3000" in drawn
    else:
        assert drawn == ""
