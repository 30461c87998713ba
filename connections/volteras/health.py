"""Can the portal use Volteras now? /healthz asks with the real credentials
(a token through the client's token store, then `POST /v1/oauth2/test-token`),
cached briefly so a load balancer's probes do not become traffic to Volteras.

Any answer used to count as "up", so wrong credentials or a URL that redirects
read "ok" while every batch failed."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from connections.volteras.client import VolterasClient
from connections.volteras.errors import (
    AuthenticationError,
    NetworkError,
    NotPermitted,
    RateLimited,
    ServerError,
    UnexpectedResponse,
    VolterasError,
)

CACHE_KEY = "volteras:usable"
CACHE_SECONDS = 15
# A probe must answer fast: one try, a short timeout.
PROBE_TIMEOUT = 3.0

# Short codes anyone may read; the reasons behind them are for staff only.
CODES: tuple[tuple[type[VolterasError], str], ...] = (
    (AuthenticationError, "auth_failed"),
    (NotPermitted, "not_permitted"),
    (RateLimited, "rate_limited"),
    (ServerError, "server_error"),
    (NetworkError, "unreachable"),
    (UnexpectedResponse, "unexpected_answer"),
)


@dataclass(frozen=True)
class VolterasHealth:
    ok: bool
    code: str  # "ok", or a short code from CODES ("error" otherwise)
    reason: str  # what went wrong, for staff: may name hosts and request ids


_probes: dict[tuple[str, str, str], VolterasClient] = {}


def _probe_client() -> VolterasClient:
    key = (
        settings.VOLTERAS_API_URL,
        settings.VOLTERAS_CLIENT_ID,
        settings.VOLTERAS_CLIENT_SECRET,
    )
    client = _probes.get(key)
    if client is None:
        client = VolterasClient(*key, timeout=PROBE_TIMEOUT, max_retries=0)
        _probes[key] = client
    return client


def volteras_health() -> VolterasHealth:
    """Whether Volteras accepts the portal's credentials now (cached briefly)."""
    cached = cache.get(CACHE_KEY)
    if isinstance(cached, VolterasHealth):
        return cached
    result = check_volteras()
    cache.set(CACHE_KEY, result, CACHE_SECONDS)
    return result


def check_volteras() -> VolterasHealth:
    if not (settings.VOLTERAS_CLIENT_ID and settings.VOLTERAS_CLIENT_SECRET):
        return VolterasHealth(False, "not_configured", "VOLTERAS_CLIENT_ID/SECRET are not set.")
    try:
        info = _probe_client().test_token()
    except VolterasError as exc:
        code = next((code for kind, code in CODES if isinstance(exc, kind)), "error")
        return VolterasHealth(False, code, f"{type(exc).__name__}: {exc}"[:500])
    return VolterasHealth(True, "ok", f"authenticated as client {info.client_id}")
