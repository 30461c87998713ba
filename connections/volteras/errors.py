"""Exceptions for everything that can go wrong talking to Volteras.

Volteras answers errors with an envelope `{requestId, timestamp, error, message,
data}` whose `error` is a code from its registry. Each code belongs to a family,
and each family is one exception class, so callers catch what they can act on
(`NotFound`, `RateLimited`, ...) and read `code` when the detail matters
(`NotPermitted` with code `DEVICE_LIMIT_REACHED`).
"""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.utils import timezone


class VolterasError(Exception):
    """Base class: `code` is the registry code when Volteras sent one, `status`
    the HTTP status when there was an answer at all."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.request_id = request_id
        self.data = data

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"code={self.code}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)


class AuthenticationError(VolterasError):
    """Credentials or token refused (AUTHENTICATION_ERROR, HTTP 401)."""


class ValidationError(VolterasError):
    """The request was malformed in Volteras' eyes; sending it again will not help.
    Includes the paging codes PAGE_SIZE_TOO_LARGE and PAGINATED_QUERY_FILTER_CHANGED,
    and UNSUPPORTED_OEM (a make not offered in the region asked for)."""


class PageTokenExpired(VolterasError):
    """QUERY_PAGE_TOKEN_EXPIRED: a cursor query took too long and its page token
    lapsed. Nothing was wrong with the request: the registry says to start the
    query again without a token, which the client's paging iterators do by
    themselves (a bounded number of times) before raising this."""


class NotFound(VolterasError):
    """RESOURCE_NOT_FOUND: the id is unknown to Volteras (or not ours)."""


class NotPermitted(VolterasError):
    """The organisation may not do this: NOT_PERMITTED, or DEVICE_LIMIT_REACHED
    (a plan limit, resolved with Volteras support, never by retrying)."""


class RateLimited(VolterasError):
    """HTTP 429. `retry_after` is the server's Retry-After in seconds, if it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(VolterasError):
    """Volteras failed (SERVER_ERROR or any 5xx)."""


class NetworkError(VolterasError):
    """No usable answer: connection refused, DNS, timeout on a read-only call.
    For a write this is only raised when the request provably never left."""


class UnexpectedResponse(VolterasError):
    """A success answer that does not have the shape the contract promises."""


class AmbiguousWrite(VolterasError):
    """A POST or DELETE failed after the request may have reached Volteras
    (timeout while waiting, connection dropped mid-answer, any 5xx answer).
    It may or may not have been applied: the caller must reconcile (read back)
    rather than assume either outcome."""

    def __init__(self, message: str, *, method: str, path: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.method = method
        self.path = path


# Registry code -> family. Codes not listed fall back to the HTTP status.
CODE_FAMILIES: dict[str, type[VolterasError]] = {
    "AUTHENTICATION_ERROR": AuthenticationError,
    "REQUEST_VALIDATION_ERROR": ValidationError,
    "PAGE_SIZE_TOO_LARGE": ValidationError,
    "QUERY_PAGE_TOKEN_EXPIRED": PageTokenExpired,
    "PAGINATED_QUERY_FILTER_CHANGED": ValidationError,
    # The make/region asked for is not offered: fixed by changing the request.
    "UNSUPPORTED_OEM": ValidationError,
    "RESOURCE_NOT_FOUND": NotFound,
    "NOT_PERMITTED": NotPermitted,
    "DEVICE_LIMIT_REACHED": NotPermitted,
    "SERVER_ERROR": ServerError,
    "INTERNAL_RATE_LIMITED": RateLimited,
}

STATUS_FAMILIES: dict[int, type[VolterasError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: NotPermitted,
    404: NotFound,
    409: ValidationError,
    422: ValidationError,
    429: RateLimited,
}

MAX_MESSAGE_CHARS = 300


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; Volteras sends seconds, an HTTP date is honoured too."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def request_id_of(response: httpx.Response, body: Any = None) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("requestId"), str):
        return body["requestId"]
    return response.headers.get("x-request-id") or response.headers.get("request-id")


def error_from_response(response: httpx.Response) -> VolterasError:
    """Turn an error answer into the exception of its family.

    A 429 is always `RateLimited` and a 5xx always `ServerError`, whatever the
    body says, because that is what decides retrying. Otherwise the registry
    code decides, then the status. A body that is not the envelope (a proxy's
    HTML page, FastAPI's `{"detail": ...}`) still maps by status, with a
    trimmed excerpt as the message.
    """
    status = response.status_code
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        body = None

    code = message = None
    data = None
    if isinstance(body, dict):
        code = body.get("error") if isinstance(body.get("error"), str) else None
        message = body.get("message") if isinstance(body.get("message"), str) else None
        data = body.get("data", body.get("detail"))
    if not message:
        text = response.text.strip() if body is None else ""
        message = text[:MAX_MESSAGE_CHARS] or f"HTTP {status} {response.reason_phrase}".strip()

    if status == 429:
        family: type[VolterasError] = RateLimited
    elif status >= 500:
        family = ServerError
    elif code in CODE_FAMILIES:
        family = CODE_FAMILIES[code]
    else:
        family = STATUS_FAMILIES.get(status, VolterasError)

    kwargs: dict[str, Any] = {
        "code": code,
        "status": status,
        "request_id": request_id_of(response, body),
        "data": data,
    }
    if family is RateLimited:
        return RateLimited(
            message, retry_after=parse_retry_after(response.headers.get("retry-after")), **kwargs
        )
    return family(message, **kwargs)
