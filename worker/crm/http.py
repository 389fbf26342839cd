"""Shared plumbing of the CRM HTTP clients: one ``requests.Session`` pinned to one origin,
transport failures mapped onto ``worker.errors``, and an opt-in, bounded retry.

Each provider's client subclasses :class:`CrmHttpClient` and overrides only
:meth:`~CrmHttpClient.raise_for_response` (healthchecks' transport pattern), so its remote error
format stays in its own module. This module knows no provider and no SLA; it must never put a
credential into a log line, an exception message or a repr, and never send one to another host.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from worker.crm.quota import DailyQuota, DailyUse
from worker.errors import AuthError, PermanentError, TransientError
from worker.metrics import counting_errors
from worker.ratelimit import RateLimiter, Unlimited

T = TypeVar("T")

#: Retries never sleep longer than this at once; a longer Retry-After (HubSpot's daily limit)
#: is handed to the caller instead of blocking a worker process.
MAX_RETRY_SLEEP = timedelta(seconds=60)
_BACKOFF_BASE = timedelta(milliseconds=500)


class RecordNotFound(PermanentError):
    """The remote system answered 404 for one record (deleted, merged away, never existed)."""


class CrmHttpClient:
    """Base of the CRM clients: URLs, the request, transport errors, retries, redaction.

    ``secrets`` are strings scrubbed from every message this class or a subclass builds through
    :meth:`redact`. ``max_retries`` (0 = the caller owns retries) re-runs a request after a
    :class:`TransientError`, sleeping its ``retry_after`` or a jittered exponential backoff.
    ``limiter`` spends one request of :meth:`rate_bucket`'s budget before every attempt;
    ``quota`` counts every attempt against the day's requests (and reads the provider's own
    figure, :meth:`daily_quota_headers`). One client may be used by two threads at once (sync
    reads ahead while it stores): each thread sends through its own HTTP session unless
    ``session`` is given, and the limiter and the quota lock what they share.
    """

    provider = "CRM"

    def __init__(
        self,
        base_url: str,
        *,
        secrets: Sequence[str],
        logger: logging.Logger,
        timeout: float = 10.0,
        max_retries: int = 0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limiter: RateLimiter | None = None,
        quota: DailyQuota | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"{self.provider} base URL must be http(s)://host[:port], got {parts.scheme}://"
            )
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._origin = (parts.scheme, parts.netloc.lower())
        self._base_url = base_url.rstrip("/")
        self._secrets = tuple(s for s in secrets if s)
        self._log = logger
        self._timeout = timeout
        self._max_retries = max_retries
        # requests does not promise that a Session is thread-safe (psf/requests#2766), and sync
        # reads ahead on a second thread: one session per thread, unless the caller gives one.
        self._given_session = session
        self._per_thread = threading.local()
        self._sleep = sleep
        self._random = random.Random()
        self._limiter: RateLimiter = limiter or Unlimited()
        self._quota = quota

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base_url!r})"

    # -- hooks for subclasses --------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request; sent per request, never stored on the session
        (a caller-supplied session may be shared or logged)."""
        return {}

    def rate_bucket(self, method: str, path: str) -> str:
        """The rate-limit budget a request spends (providers with several limits override)."""
        return "burst"

    def daily_quota_headers(self, response: requests.Response) -> tuple[int, int] | None:
        """(the day's request limit, requests left today) when the response says; the default
        knows no such headers."""
        return None

    def raise_for_response(self, method: str, path: str, response: requests.Response) -> None:
        """Raise the project's error for a failed response; the default knows only HTTP."""
        status = response.status_code
        if status < 300:
            return
        detail = self.redact(f"{self.provider} {method} {path} -> HTTP {status}")
        retry_after = retry_after_header(response)
        if status in (401, 403):
            raise AuthError(detail, code=f"HTTP_{status}")
        if status == 404:
            raise RecordNotFound(detail, code="HTTP_404")
        if status == 429 or status >= 500:
            raise TransientError(detail, retry_after=retry_after)
        raise PermanentError(detail, code=f"HTTP_{status}")

    # -- requests ----------------------------------------------------------------------------------
    def url(self, path_or_url: str) -> str:
        """An absolute URL on this client's origin; refuses any other host (a paging link or a
        redirect that points elsewhere must not receive the token)."""
        if "://" not in path_or_url:
            return self._base_url + "/" + path_or_url.lstrip("/")
        parts = urlsplit(path_or_url)
        if (parts.scheme, parts.netloc.lower()) != self._origin:
            raise PermanentError(
                f"{self.provider}: refusing to follow a URL on another host ({parts.netloc})",
                code="FOREIGN_HOST",
            )
        return path_or_url

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> tuple[int, Any]:
        """Send one request (with the opt-in retries) and return (status, decoded JSON body).

        A body that is not JSON on a successful status is a :class:`TransientError`: a proxy or
        an overloaded edge answered, and the same request may well succeed later.
        """
        return self.with_retries(lambda: self._send_once(method, path, params=params, json=json))

    def with_retries(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt``; after a TransientError, sleep and re-run it up to ``max_retries``
        times. Permanent errors and a ``retry_after`` beyond MAX_RETRY_SLEEP end at once."""
        failures = 0
        while True:
            try:
                return counting_errors(self.provider, attempt)
            except TransientError as error:
                if failures >= self._max_retries:
                    raise
                delay = self._retry_delay(failures, error.retry_after)
                if delay is None:
                    raise
                failures += 1
                self._log.warning(
                    "%s: retry %d/%d in %.2fs after: %s",
                    self.provider,
                    failures,
                    self._max_retries,
                    delay,
                    self.redact(str(error)),
                )
                self._sleep(delay)

    def daily_use(self) -> DailyUse | None:
        """Today's spent share of the daily request quota (None: this client has none)."""
        return self._quota.use() if self._quota is not None else None

    def _session(self) -> requests.Session:
        if self._given_session is not None:
            return self._given_session
        session: requests.Session | None = getattr(self._per_thread, "session", None)
        if session is None:
            session = self._per_thread.session = requests.Session()
        return session

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def _retry_delay(self, failures: int, retry_after: timedelta | None) -> float | None:
        cap = MAX_RETRY_SLEEP.total_seconds()
        backoff = min(cap, _BACKOFF_BASE.total_seconds() * 2.0**failures)
        # Up to 25 % jitter so that workers rate-limited together do not retry in lockstep.
        backoff += self._random.uniform(0, backoff / 4)
        if retry_after is None:
            return min(cap, backoff)
        wanted = retry_after.total_seconds()
        if wanted > cap:
            return None
        # Never earlier than the server asked; the jitter only ever adds.
        return max(wanted, min(cap, backoff)) + self._random.uniform(0, min(1.0, wanted / 4))

    def _send_once(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        json: Any,
    ) -> tuple[int, Any]:
        url = self.url(path)
        self._limiter.acquire(self.rate_bucket(method, path))
        if self._quota is not None:
            self._quota.sent()
        try:
            response = self._session().request(
                method,
                url,
                params=dict(params) if params else None,
                json=json,
                headers={"Accept": "application/json", **self.auth_headers()},
                timeout=self._timeout,
                # Never follow redirects: requests would re-send the body, and a redirect is
                # not something these JSON APIs do on purpose.
                allow_redirects=False,
            )
        except requests.Timeout as e:
            raise TransientError(
                self.redact(f"{self.provider} {method} {path}: timed out after {self._timeout}s")
            ) from e
        except requests.RequestException as e:
            # Connection refused/reset, DNS, broken chunked bodies: all worth a later retry.
            raise TransientError(
                self.redact(f"{self.provider} {method} {path}: {type(e).__name__}")
            ) from e
        told = self.daily_quota_headers(response)
        if told is not None and self._quota is not None:
            self._quota.told(*told)
        try:
            self.raise_for_response(method, path, response)
        except TransientError as e:
            if response.status_code == 429 and e.retry_after:
                # Tell every worker sharing the budget, not only this one (HubSpot counts
                # the portal's requests, whoever sends them).
                self._limiter.pause(self.rate_bucket(method, path), e.retry_after)
            raise
        try:
            return response.status_code, response.json()
        except ValueError as e:
            raise TransientError(
                self.redact(
                    f"{self.provider} {method} {path} -> HTTP {response.status_code} with a body "
                    "that is not JSON"
                )
            ) from e


def retry_after_header(response: requests.Response) -> timedelta | None:
    """The Retry-After header as a duration: delta-seconds or an HTTP date (RFC 9110)."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return timedelta(seconds=int(raw))
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(timedelta(0), when - datetime.now(UTC))
