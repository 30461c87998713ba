"""Is Volteras (or the sandbox) answering? Used by /healthz, cached briefly so
a load balancer's probes do not become traffic to Volteras."""

import httpx
from django.conf import settings
from django.core.cache import cache

CACHE_KEY = "volteras:reachable"
CACHE_SECONDS = 15


def volteras_reachable() -> tuple[bool, str]:
    cached = cache.get(CACHE_KEY)
    if cached is not None:
        return cached
    try:
        # Any HTTP answer, even 401 without a token, means the API is up.
        response = httpx.get(f"{settings.VOLTERAS_API_URL}/v1/vehicles", timeout=3.0)
        result = (response.status_code < 500, f"HTTP {response.status_code}")
    except httpx.HTTPError as exc:
        result = (False, exc.__class__.__name__)
    cache.set(CACHE_KEY, result, CACHE_SECONDS)
    return result
