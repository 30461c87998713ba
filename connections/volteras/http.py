"""The one place the portal sends HTTP to Volteras: timeouts, retries, logging
and the mapping of failures to `errors`.

Retry rules, because Volteras has no idempotency keys:
- Reads (GET, and calls the caller marks `idempotent`) are retried on network
  errors, 429 and 5xx with exponential backoff and jitter, at most
  `max_retries` times.
- Writes (POST, DELETE) are retried only when the request provably never
  reached Volteras: the connection could not be opened, or a 429 said "not
  now" (a rate-limited request is not applied). Any failure after the request
  may have been sent raises `AmbiguousWrite`, so the caller reconciles instead
  of risking a double submission.
- Which answers are ambiguous for a write: every 5xx. The contract lists
  SERVER_ERROR ("something went wrong while processing the request") for
  every operation without saying how far processing got, and its README says a
  POST that failed after sending "may or may not have been applied"; a 500
  after `POST /v1/vehicles/connect` stored the group is as possible as a 502
  or 504 from a gateway whose upstream carried on. Only 429 (rate limited,
  refused before processing) and the other 4xx (refused) say "not applied".
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from connections.backoff import exponential
from connections.volteras.errors import (
    AmbiguousWrite,
    NetworkError,
    RateLimited,
    ServerError,
    VolterasError,
    error_from_response,
    request_id_of,
)

logger = logging.getLogger("connections.volteras")

# Failures that happen before a single byte of the request is on the wire.
NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)

# Answers after which a write may or may not have been applied (see above):
# a server or gateway failure, none of which promises that nothing happened.
AMBIGUOUS_STATUSES = frozenset(range(500, 600))

USER_AGENT = "fleet-portal/0.1 (+volteras client)"


class VolterasHttp:
    """A thin wrapper around one `httpx.Client` (one connection pool).

    `sleep` and `jitter` are injectable so tests run without waiting and can
    assert on the delays chosen. `max_retry_wait` caps how long a single
    Retry-After is honoured in-process: a longer wait is raised as
    `RateLimited` for the caller (a worker) to reschedule instead of blocking.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        max_retries: int,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        transport: httpx.BaseTransport | None = None,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_retry_wait: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.sleep = sleep
        self.jitter = jitter
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_wait = max_retry_wait
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            event_hooks=dict(event_hooks or {}),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def backoff(self, attempt: int) -> float:
        """Exponential with "equal jitter": between half and all of the step."""
        step = exponential(attempt, self.backoff_base, self.backoff_cap)
        return step / 2 + self.jitter() * step / 2

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        idempotent: bool | None = None,
        wait_when_rate_limited: bool = True,
    ) -> httpx.Response:
        """Send one logical call, retrying per the module's rules; return a 2xx
        response or raise a `VolterasError` subclass.

        `wait_when_rate_limited=False` raises every 429 as `RateLimited` at once
        instead of sleeping in-process: a worker holding a lease on the work
        reschedules it rather than block for minutes."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in {"GET", "HEAD", "OPTIONS"}
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = self._client.request(
                    method,
                    path,
                    params=query or None,
                    json=json,
                    data=data,
                    headers=headers,
                    auth=auth,
                )
            except httpx.TransportError as exc:
                self._transport_failed(exc, method, path, attempt, started, idempotent)
                self.sleep(self.backoff(attempt))
                continue
            error = self._log_answer(response, method, path, started)
            if error is None:
                return response

            wait = self._retry_wait(error, attempt, idempotent, wait_when_rate_limited)
            if wait is not None:
                self.sleep(wait)
                continue
            if not idempotent and response.status_code in AMBIGUOUS_STATUSES:
                raise AmbiguousWrite(
                    f"{method} {path}: HTTP {response.status_code} after the request reached "
                    "Volteras; it may or may not have been applied",
                    method=method,
                    path=path,
                    code=error.code,
                    status=error.status,
                    request_id=error.request_id,
                ) from error
            raise error

    def _transport_failed(
        self,
        exc: httpx.TransportError,
        method: str,
        path: str,
        attempt: int,
        started: float,
        idempotent: bool,
    ) -> None:
        """Raise for a failure on the way that must not be retried; return to retry."""
        logger.warning(
            "volteras %s %s failed: %s after %.0fms (attempt %d)",
            method,
            path,
            exc.__class__.__name__,
            (time.monotonic() - started) * 1000,
            attempt,
        )
        sent = not isinstance(exc, NOT_SENT)
        if sent and not idempotent:
            raise AmbiguousWrite(
                f"{method} {path}: {exc.__class__.__name__} after the request may "
                "have reached Volteras; it may or may not have been applied",
                method=method,
                path=path,
            ) from exc
        if attempt > self.max_retries or isinstance(
            exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError
        ):
            raise NetworkError(
                f"{method} {path}: {exc.__class__.__name__} ({attempt} attempts)"
            ) from exc

    @staticmethod
    def _log_answer(
        response: httpx.Response, method: str, path: str, started: float
    ) -> VolterasError | None:
        """Log one answer; the error it carries, or None for a 2xx."""
        error = None if response.is_success else error_from_response(response)
        request_id = error.request_id if error else request_id_of(response)
        logger.log(
            logging.INFO if error is None or response.status_code < 500 else logging.WARNING,
            "volteras %s %s -> %d in %.0fms request_id=%s%s",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
            request_id or "-",
            f" error={error.code}" if error is not None and error.code else "",
        )
        return error

    def _retry_wait(
        self, error: VolterasError, attempt: int, idempotent: bool, wait_when_rate_limited: bool
    ) -> float | None:
        """How long to sleep before retrying, or None to give up now."""
        if attempt > self.max_retries:
            return None
        if isinstance(error, RateLimited):
            if not wait_when_rate_limited:
                return None
            # A 429 means "not processed", so even a write may go again.
            wait = error.retry_after if error.retry_after is not None else self.backoff(attempt)
            return wait if wait <= self.max_retry_wait else None
        if isinstance(error, ServerError) and idempotent:
            return self.backoff(attempt)
        return None
