"""Steps several test files take the same way: a manager creating a consent
link, an owner consenting at the sandbox, Volteras connecting a vehicle and
delivering a signed webhook, `manage.py` run with production settings."""

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from django.urls import reverse
from svix.webhooks import Webhook

from connections import volteras
from connections.models import ConsentLink, WebhookEvent

# The portal's address in links it hands out during tests (the Django test client's).
PORTAL = "http://testserver"
WEBHOOK_URL = "/webhooks/volteras/"
ROOT = Path(__file__).resolve().parent.parent


def new_link(client, fleet, *, expires_in: int = 7 * 24 * 3600, **fields) -> ConsentLink:
    data = {
        "label": "Jane's car",
        "recipient_note": "Hi Jane, please connect the company car.",
        "scopes": ["vehicle:information", "vehicle:telemetry"],
        "device_types": ["VEHICLE"],
        "country_code": "GB",
        "region": "EUROPE",
        "expiry_amount": expires_in // 3600,
        "expiry_unit": "hours",
        **fields,
    }
    before = set(ConsentLink.objects.values_list("pk", flat=True))
    response = client.post(reverse("consent_link_new", args=[fleet.slug]), data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    link = ConsentLink.objects.exclude(pk__in=before).get()
    assert response["Location"] == link.get_absolute_url()
    return link


def open_short_link(client, link: ConsentLink) -> str:
    """Visit /l/<token> anonymously (the owner's page), then press its button;
    returns where that redirects (Volteras' URL)."""
    client.logout()
    response = client.get(urlsplit(link.short_url).path)
    assert response.status_code == 200, response.status_code
    response = client.get(reverse("consent_continue", args=[link.token]))
    assert response.status_code == 302, response.status_code
    return response["Location"]


def consent_at_sandbox(auth_url: str, *, approve: bool, username: str = "jane") -> str:
    """Drive the sandbox's consent HTML form like an owner; returns the return URL."""
    with httpx.Client(timeout=10) as browser:
        page = browser.get(auth_url)
        assert page.status_code == 200
        assert 'id="consent-login"' in page.text
        if not approve:
            answer = browser.post(auth_url, data={"decision": "decline"})
            assert answer.status_code == 302, answer.text
            return answer.headers["location"]
        make = re.search(r'<option value="([^"]+)"', page.text.split('id="make"')[1])[1]
        vehicles = browser.post(
            auth_url, data={"make": make, "username": username, "action": "login"}
        )
        assert vehicles.status_code == 200, vehicles.text
        offered = re.findall(r'name="vehicles" value="([^"]+)"', vehicles.text)
        assert offered
        answer = browser.post(
            auth_url,
            data={"make": make, "username": username, "decision": "approve", "vehicles": offered},
        )
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]


def follow_return(client, return_url: str):
    """The last hop, back into the portal (the Django test client plays the browser)."""
    parts = urlsplit(return_url)
    assert f"{parts.scheme}://{parts.netloc}" == PORTAL
    client.logout()
    return client.get(f"{parts.path}?{parts.query}")


def connect(api: volteras.VolterasClient, vin: str, make: str = "VOLKSWAGEN"):
    group = api.connect_vehicles([volteras.VehicleInput(vin, make, "GB")])
    (result,) = api.connect_results(group.id)
    return group, result


def deliver(client, secret: str, event_type: str, vehicle_id: str, msg_id: str | None = None):
    body = json.dumps(
        {"type": event_type, "data": {"id": vehicle_id, "deviceType": "VEHICLE"}},
        separators=(",", ":"),
    )
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    headers = {
        "svix-id": msg_id,
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": Webhook(secret).sign(msg_id, now, body),
    }
    response = client.post(WEBHOOK_URL, data=body, content_type="application/json", headers=headers)
    assert response.status_code == 200, response.content
    return WebhookEvent.objects.get(svix_id=msg_id)


def run_django(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DEBUG"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True,
        text=True, check=False, timeout=120,
    )  # fmt: skip


PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-key-0123456789",
    "ALLOWED_HOSTS": "fleet.example.com",
    "PORTAL_BASE_URL": "https://fleet.example.com",
    "VOLTERAS_API_URL": "https://api.volteras.com",
    "VOLTERAS_CLIENT_ID": "id",
    "VOLTERAS_CLIENT_SECRET": "secret",
    "VOLTERAS_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}
