"""``sla-worker web`` in a test: the bolt app served by waitress on a free loopback port, pointed
at the e2e world's fake Slack, with Celery in eager mode so the task a command queues runs at
once in the web server's thread, on the world's context. The fake Slack then posts signed
commands to it, exactly as Slack does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select

from tests.e2e.world import World
from worker import tasks
from worker.celery_app import app as celery_app
from worker.fakes.slack import AppAnswer
from worker.pipeline.context import Context
from worker.settings import Settings
from worker.store.models import Action
from worker.web.bolt_app import make_bolt_app
from worker.web.handoff import submit_action, submit_command
from worker.web.server import WebServer, make_wsgi_app


@contextmanager
def eager_celery() -> Iterator[None]:
    before = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = celery_app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = before


@dataclass
class Web:
    world: World
    ctx: Context
    server: WebServer

    @property
    def url(self) -> str:
        return self.server.events_url

    def command(self, user_id: str, text: str) -> str:
        """Post ``/sla <text>`` as ``user_id``, signed; the answer it got at its response_url."""
        answer = self.post(user_id, text)
        assert answer.status == 200, answer.body
        response = self.world.slack.await_response(answer.response_url)
        assert response["response_type"] == "ephemeral"  # seen by the caller alone
        text_: str = response["text"]
        return text_

    def post(self, user_id: str, text: str, **options: object) -> AppAnswer:
        return self.world.slack.post_command(self.url, user_id, text, **options)  # type: ignore[arg-type]

    def actions(self) -> list[Action]:
        with self.ctx.sessions() as session:
            return list(session.scalars(select(Action).order_by(Action.id)))


@contextmanager
def serving_web(world: World) -> Iterator[Web]:
    with world.context() as ctx, tasks.bound_to(ctx), eager_celery():
        bolt = make_bolt_app(Settings.from_env(world.env()), submit_command, submit_action)
        server = WebServer(make_wsgi_app(bolt), "127.0.0.1", 0)
        server.start()
        try:
            yield Web(world, ctx, server)
        finally:
            server.stop()
