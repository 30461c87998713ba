"""Fixtures shared by the foundation's tests (health, access, routes)."""

import pytest
from django.core.cache import cache

from tests.fixtures_sandbox import point_portal_at


@pytest.fixture
def fake_volteras(settings, sandbox):
    """The sandbox, with the portal's credentials: /healthz asks it for a token
    (an API that merely answers, even 401, is no longer "ok")."""
    point_portal_at(settings, sandbox)
    cache.clear()
    yield
    cache.clear()
