"""The fake Slack the Slack client and fake tests share: a settable clock and a small
workspace (a rep, a deactivated user, a channel, one the bot is not in, an archived one)."""

from __future__ import annotations

from collections.abc import Iterator

from worker.fakes.slack import FakeSlack


class EpochClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def running_fake_slack(token: str, clock: EpochClock) -> Iterator[FakeSlack]:
    slack = FakeSlack(token, clock=clock)
    slack.add_user("U0LENA", "lena@example.com", "Lena Fischer", tz="Europe/Berlin")
    slack.add_user("U0GONE", "gone@example.com", "Gone Person", deleted=True)
    slack.add_channel("C0ESC", "sales-escalations")
    slack.add_channel("C0OUT", "not-joined", is_member=False)
    slack.add_channel("C0OLD", "old-news", is_archived=True)
    with slack:
        yield slack
