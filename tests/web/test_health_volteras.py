"""/healthz checks Volteras with the portal's real credentials: an API that
answers but refuses them, or a URL that redirects, is not "ok"."""

import http.server
import json
import threading

import pytest
from django.core.cache import cache

from connections.models import ApiToken, WorkerHeartbeat
from tests.fixtures_sandbox import point_portal_at


class _Redirect(http.server.BaseHTTPRequestHandler):
    def _moved(self):
        self.send_response(302)
        self.send_header("Location", "https://login.example.com/")
        self.end_headers()

    do_GET = do_POST = _moved

    def log_message(self, *args):
        pass


@pytest.fixture(autouse=True)
def fresh_cache(db):
    WorkerHeartbeat.beat("w1")
    cache.clear()
    yield
    cache.clear()


def health(client) -> tuple[int, dict]:
    response = client.get("/healthz")
    return response.status_code, json.loads(response.content)


def test_right_credentials_are_ok(client, settings, sandbox):
    point_portal_at(settings, sandbox)
    status, body = health(client)
    assert (status, body["status"], body["volteras"]) == (200, "ok", {"ok": True, "code": "ok"})


def test_wrong_credentials_are_degraded_with_a_short_code_for_anyone(
    client, settings, sandbox, support
):
    point_portal_at(settings, sandbox)
    settings.VOLTERAS_CLIENT_SECRET = "not-the-secret"
    status, body = health(client)
    assert (status, body["status"]) == (503, "degraded")
    assert body["volteras"] == {"ok": False, "code": "auth_failed"}
    assert "not-the-secret" not in json.dumps(body) and sandbox.url not in json.dumps(body)

    client.force_login(support)
    _, body = health(client)
    assert body["volteras"]["code"] == "auth_failed"
    assert "AuthenticationError" in body["volteras"]["detail"]


def test_a_redirecting_url_is_degraded(client, settings):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.VOLTERAS_API_URL = f"http://127.0.0.1:{server.server_port}"
        settings.VOLTERAS_CLIENT_ID, settings.VOLTERAS_CLIENT_SECRET = "id", "secret"
        status, body = health(client)
    finally:
        server.shutdown()
    assert (status, body["status"], body["volteras"]["ok"]) == (503, "degraded", False)
    assert body["volteras"]["code"] != "ok"


def test_the_answer_is_cached_briefly(client, settings, sandbox):
    point_portal_at(settings, sandbox)
    assert health(client)[1]["volteras"]["ok"]
    settings.VOLTERAS_CLIENT_SECRET = "not-the-secret"
    assert health(client)[1]["volteras"]["ok"]  # within CACHE_SECONDS
    cache.clear()
    # The token the workers share is still good: Volteras is usable until it lapses.
    assert health(client)[1]["volteras"]["ok"]
    ApiToken.objects.all().delete()
    cache.clear()
    assert not health(client)[1]["volteras"]["ok"]
