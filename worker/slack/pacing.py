"""Pacing posts per channel: Slack's chat.postMessage allows about one message per second per
channel, bursts tolerated (docs.slack.dev/reference/methods/chat.postMessage), while different
channels may interleave. Waits go through an injected ``sleep``, so tests never sleep for real.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Protocol, TypeVar

#: chat.postMessage allows about one message per second per channel (bursts tolerated).
CHANNEL_PACE = timedelta(seconds=1)


class _HasChannel(Protocol):
    @property
    def channel(self) -> str: ...


_P = TypeVar("_P", bound=_HasChannel)


class ChannelPacer:
    """Orders posts so that each channel gets at most one message per ``pace`` while other
    channels go on; waits (through the injected ``sleep``) only when every channel with work
    left is still inside its pace."""

    def __init__(
        self,
        pace: timedelta = CHANNEL_PACE,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.pace = pace.total_seconds()
        self.clock = clock
        self.sleep = sleep

    def order(self, posts: Sequence[_P]) -> Iterator[_P]:
        queues: dict[str, list[_P]] = {}
        for post in posts:
            queues.setdefault(post.channel, []).append(post)
        ready: list[tuple[float, int, str]] = []
        start = self.clock()
        for seq, channel in enumerate(queues):
            heapq.heappush(ready, (start, seq, channel))
        seq = len(queues)
        while ready:
            at, _, channel = heapq.heappop(ready)
            wait = at - self.clock()
            if wait > 0:
                self.sleep(wait)
            yield queues[channel].pop(0)
            if queues[channel]:
                seq += 1
                heapq.heappush(ready, (self.clock() + self.pace, seq, channel))
