"""Fixtures shared by the foundation's tests (health, access, routes)."""

import http.server
import threading

import pytest
from django.core.cache import cache


class _Answer401(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_volteras(settings):
    """A loopback server that answers like an API without a token."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer401)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.VOLTERAS_API_URL = f"http://127.0.0.1:{server.server_port}"
    cache.clear()
    yield
    server.shutdown()
    cache.clear()
