"""The webhook receiver's path skips the middleware it does not need (session,
auth, CSRF, axes, CSP, ...): the busiest URL does one INSERT and nothing else."""

import json
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from svix.webhooks import Webhook

from connections.models import WebhookEvent

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.VOLTERAS_WEBHOOK_SECRET = SECRET


def signed_post(client):
    body = json.dumps({"type": "device.connected", "data": {"id": "veh-1"}})
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    headers = {
        "svix-id": msg_id,
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": Webhook(SECRET).sign(msg_id, now, body),
    }
    return client.post(
        "/webhooks/volteras/", data=body, content_type="application/json", headers=headers
    )


@pytest.mark.django_db
def test_the_receiver_runs_past_the_page_middleware(client, monkeypatch):
    def not_for_webhooks(*args, **kwargs):
        raise AssertionError("session middleware ran for a webhook")

    monkeypatch.setattr(
        "django.contrib.sessions.middleware.SessionMiddleware.process_request", not_for_webhooks
    )
    with CaptureQueriesContext(connection) as queries:
        response = signed_post(client)
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "accepted"}
    assert len(queries) == 1
    assert "Content-Security-Policy" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db
def test_other_pages_keep_the_whole_chain(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert "Content-Security-Policy" in response.headers
    assert client.get("/webhooks/volteras/").status_code == 405
