"""The project's own error types, shared by every client of an external system.

A client maps its remote system's failures onto these so that the stages decide retry or not
without knowing which system failed. Messages must never contain tokens or secrets.
"""

from __future__ import annotations

from datetime import timedelta


class SlaWorkerError(Exception):
    """Base class of every error this project raises on purpose."""


class TransientError(SlaWorkerError):
    """Worth retrying later: timeouts, connection errors, 5xx, rate limits.

    ``retry_after`` is the remote system's own hint (a ``Retry-After`` header, HubSpot's
    ten-second window), or None when the caller should use its own backoff. ``code`` names the
    failure when the client knows it (``ratelimited``, ``internal_error``), for metrics.
    """

    def __init__(
        self, message: str, *, retry_after: timedelta | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


class PermanentError(SlaWorkerError):
    """Retrying the same request cannot succeed: bad input, unknown record, missing scope.

    ``code`` is the remote system's machine-readable error (``channel_not_found``,
    ``VALIDATION_ERROR``) so that callers can choose a fallback.
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class AuthError(PermanentError):
    """The credentials were rejected (revoked, expired, wrong). Nothing else will work either:
    a stage that sees this stops and leaves its work pending instead of marking it failed."""


class ConfigError(SlaWorkerError):
    """The configuration file or the environment is invalid; the message names the key, and
    ``source`` the file when the message's lines do not (key paths only)."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source
