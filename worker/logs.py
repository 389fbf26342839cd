"""Log lines of every process, as text or as one JSON object a line (``LOG_FORMAT=json``).

Each record carries the fields of the work it belongs to: ``stage`` and ``run_id`` while a stage
runs (set by ``worker.pipeline.stages.run_stage`` through :func:`log_fields`), ``lead_id``
where a call passes ``extra={"lead_id": …}``. Tokens never reach a line in either format:
:class:`RedactSecrets` masks the configured secrets and anything shaped like a Slack token
(``xoxb-…``), a HubSpot private-app token (``pat-…``) or an ``Authorization: Bearer …`` value,
in the message, its arguments, and the traceback. The CLI calls :func:`setup_logging`; the
Celery worker and beat adopt their own handlers with :func:`adopt_handlers`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"

_SHAPES = re.compile(
    r"\b(?:xox[a-z]-|xapp-|pat-)[A-Za-z0-9-]+"  # Slack bot/user/app tokens, HubSpot private apps
    r"|(?<=Bearer )[A-Za-z0-9._~+/=-]+",  # whatever follows "Bearer "
    re.IGNORECASE,
)

_fields: ContextVar[dict[str, str] | None] = ContextVar("log_fields", default=None)


@contextmanager
def log_fields(**fields: str) -> Iterator[None]:
    """Every record logged inside the block (in this thread or task) carries ``fields``."""
    token = _fields.set({**(_fields.get() or {}), **fields})
    try:
        yield
    finally:
        _fields.reset(token)


def new_run_id() -> str:
    """A short id that tells one run's lines from another's."""
    return uuid.uuid4().hex[:12]


class ContextFields(logging.Filter):
    """Adds the :func:`log_fields` of the current context to each record (``extra`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_fields.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret in ``secrets`` and every token-shaped string masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _SHAPES.sub(REDACTED, text)


class RedactSecrets(logging.Filter):
    """Masks secrets in a record before any formatter sees it: the message is rendered with
    its arguments, redacted, and stored back; a traceback is rendered and redacted into
    ``exc_text`` (formatters print that instead of formatting ``exc_info`` again)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, dict):  # a JSON formatter's dict message: left as is
            record.msg = redact(record.getMessage(), self._secrets)
            record.args = None
        if record.exc_info:
            record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object a line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
    then the record's extra fields (``stage``, ``run_id``, ``lead_id``, Celery's ``data``, …)
    and ``exc_info`` when there is a traceback."""
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def adopt_handler(handler: logging.Handler, *, json: bool, secrets: Iterable[str]) -> None:
    """Make ``handler`` redact, carry the context fields, and (``json``) write JSON lines."""
    secrets = tuple(secrets)
    if not any(isinstance(f, RedactSecrets) for f in handler.filters):
        handler.addFilter(ContextFields())
        handler.addFilter(RedactSecrets(secrets))
    if json:
        handler.setFormatter(json_formatter())


def adopt_handlers(logger: logging.Logger, *, json: bool, secrets: Iterable[str]) -> None:
    """:func:`adopt_handler` for each of ``logger``'s handlers (Celery made them)."""
    secrets = tuple(secrets)
    for handler in logger.handlers:
        adopt_handler(handler, json=json, secrets=secrets)


def setup_logging(level: int, *, json: bool = False, secrets: Iterable[str] = ()) -> None:
    """The CLI's logging at ``level``: a handler on stderr unless the root logger has one
    already (as ``logging.basicConfig``), every root handler redacting, text or JSON."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
        root.addHandler(handler)
        root.setLevel(level)
    adopt_handlers(root, json=json, secrets=secrets)
