"""Progress of a long command on a terminal (``report --period``, ``backtest --since``): a bar on
standard error while it is a terminal, nothing otherwise — logs, pipes and CI stay quiet."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(what: str, unit: str = "lead") -> Iterator[Callable[[int, int], None]]:
    """A function to call with (done, total) as work goes on."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    bar = tqdm(desc=what, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
