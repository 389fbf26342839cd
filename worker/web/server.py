"""The HTTP side of ``sla-worker web``: a WSGI app served by waitress.

``POST /slack/events`` goes to bolt (commands and interactivity share the URL; bolt tells them
apart), ``GET /healthz`` answers ``ok`` while the process serves (compose's healthcheck),
``GET /dashboard`` is the review page (``worker.web.dashboard``), and everything else is 404.
Waitress is a pure-Python production server: it buffers each request
whole before the app sees it and answers from a pool of threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
DASHBOARD_PATH = "/dashboard"
#: Requests answered at once; a listener only acknowledges and queues, so a few suffice.
THREADS = 4


def make_wsgi_app(bolt_app: App, dashboard: WSGIApplication | None = None) -> WSGIApplication:
    """Slack's requests at :data:`EVENTS_PATH`, health, and the ``dashboard`` if given."""
    slack = SlackRequestHandler(bolt_app, path=EVENTS_PATH)

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == HEALTH_PATH and environ.get("REQUEST_METHOD") == "GET":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        if (
            dashboard is not None
            and environ.get("PATH_INFO") == DASHBOARD_PATH
            and environ.get("REQUEST_METHOD") == "GET"
        ):
            return dashboard(environ, start_response)
        # slack_sdk's SignatureVerifier.is_valid reads the timestamp with int(): a header that
        # is not a number raised ValueError, and bolt answered 500 with a traceback in the log.
        # It is refused as bolt refuses any request that does not verify.
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")
        if timestamp is not None and not (timestamp.isascii() and timestamp.isdigit()):
            _log_refused(environ)
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"error": "invalid request"}']

        def noting_refusals(status: str, headers: Any, *exc_info: Any) -> Any:
            if status.startswith("401"):
                _log_refused(environ)
            return start_response(status, headers, *exc_info)

        return slack(environ, noting_refusals)

    return application


def _log_refused(environ: WSGIEnvironment) -> None:
    """One line per refused request, without its body (it may hold a live response_url)."""
    log.warning(
        "refused %s %s from %s: its Slack signature or timestamp did not verify",
        environ.get("REQUEST_METHOD"),
        environ.get("PATH_INFO"),
        environ.get("REMOTE_ADDR"),
    )


class WebServer:
    """``application`` on ``host``:``port`` (0: a free port) until :meth:`stop`."""

    def __init__(self, application: WSGIApplication, host: str, port: int) -> None:
        #: Every socket the server serves from (its own, its trigger, each connection).
        self._sockets: dict[int, Any] = {}
        server = create_server(
            application, map=self._sockets, host=host, port=port, threads=THREADS,
            ident="sla-worker",
        )  # fmt: skip
        assert isinstance(server, BaseWSGIServer)  # one host and port: one socket
        self._server = server
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        listening = self._server.socket
        assert listening is not None  # bound when made, closed only by stop()
        host, port = listening.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def events_url(self) -> str:
        return self.base_url + EVENTS_PATH

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._server.run()

    def serve_until_interrupted(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C), then stop."""
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def start(self) -> str:
        """Serve in a thread; the base URL."""
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            # Closed by the serving thread itself, which the trigger wakes to run it: sockets
            # closed from here would be pulled from under its select() (EBADF in that thread).
            # (The stubs type ``trigger`` as an int; it is waitress.trigger.trigger.)
            trigger: Any = self._server.trigger
            trigger.pull_trigger(lambda: wasyncore.close_all(self._sockets))
            self._thread.join(timeout=5)
        else:
            wasyncore.close_all(self._sockets)
        self._server.task_dispatcher.shutdown()


def serve(
    bolt_app: App,
    host: str,
    port: int,
    *,
    ready: Callable[[WebServer], None],
    dashboard: WSGIApplication | None = None,
) -> None:
    """Serve ``bolt_app`` (and the ``dashboard``) until interrupted; ``ready`` is called once
    it listens."""
    server = WebServer(make_wsgi_app(bolt_app, dashboard), host, port)
    ready(server)
    server.serve_until_interrupted()
