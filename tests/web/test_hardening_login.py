"""Login throttling (django-axes): a lockout after repeated failures, a page
saying what happened and what to do, and the ways out (unlock, cool-off)."""

from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests.conftest import PASSWORD


def log_in(client: Client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def fail_five_times(client: Client, username: str, address: str = "203.0.113.7") -> None:
    for _ in range(5):
        response = log_in(client, username, "wrong", address)
        assert response.status_code in (200, 429)


@pytest.fixture(autouse=True)
def five_failures_lock(settings):
    # Whatever LOGIN_FAILURE_LIMIT / LOGIN_COOLOFF_MINUTES the environment sets.
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


class TestLockout:
    def test_four_failures_then_the_right_password_works(self, client, manager):
        for _ in range(4):
            assert log_in(client, "manager", "wrong").status_code == 200
        response = log_in(client, "manager", PASSWORD)
        assert response.status_code == 302 and response["Location"] == "/"

    def test_five_failures_refuse_the_right_password_and_say_why(self, client, manager):
        fail_five_times(client, "manager")
        response = log_in(client, "manager", PASSWORD)
        assert response.status_code == 429
        body = response.content.decode()
        assert "Too many failed log-ins" in body
        assert "paused for 15 minutes" in body
        assert "ask a Fleet Portal administrator to unlock" in body
        assert "_auth_user_id" not in client.session

    def test_a_locked_username_is_locked_from_another_address(self, client, manager):
        fail_five_times(client, "manager", "203.0.113.7")
        assert log_in(Client(), "manager", PASSWORD, "198.51.100.9").status_code == 429

    def test_a_locked_address_is_locked_for_another_username(self, client, manager, outsider):
        fail_five_times(client, "manager", "203.0.113.7")
        assert log_in(Client(), "outsider", PASSWORD, "203.0.113.7").status_code == 429
        assert log_in(Client(), "outsider", PASSWORD, "198.51.100.9").status_code == 302

    def test_after_the_cool_off_the_right_password_works(self, client, manager):
        fail_five_times(client, "manager")
        with time_machine.travel(timezone.now() + timedelta(minutes=16)):
            assert log_in(Client(), "manager", PASSWORD).status_code == 302

    def test_an_admin_unlocks_with_the_command(self, client, manager):
        fail_five_times(client, "manager")
        call_command("axes_reset_username", "manager")
        call_command("axes_reset_ip", "203.0.113.7")
        assert log_in(Client(), "manager", PASSWORD).status_code == 302

    def test_an_admin_unlocks_in_the_admin(self, client, manager, admin_user):
        fail_five_times(client, "manager")
        staff = Client()
        staff.force_login(admin_user)
        attempts = AccessAttempt.objects.all()
        assert attempts.exists()
        listing = staff.get("/admin/axes/accessattempt/")
        assert listing.status_code == 200 and "manager" in listing.content.decode()
        response = staff.post(
            "/admin/axes/accessattempt/",
            {
                "action": "delete_selected",
                "_selected_action": [a.pk for a in attempts],
                "post": "yes",
            },
        )
        assert response.status_code == 302
        assert not AccessAttempt.objects.exists()
        assert log_in(Client(), "manager", PASSWORD).status_code == 302

    def test_the_admin_login_is_throttled_too(self, client, admin_user):
        for _ in range(5):
            client.post("/admin/login/", {"username": "admin", "password": "wrong"})
        response = client.post("/admin/login/", {"username": "admin", "password": PASSWORD})
        assert response.status_code == 429


class TestClientAddress:
    def test_remote_addr_without_proxies(self, rf, settings):
        from fleet_portal.client_ip import client_ip

        settings.TRUSTED_PROXY_COUNT = 0
        request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4")
        assert client_ip(request) == "10.0.0.2"

    def test_the_address_the_trusted_proxy_saw(self, rf, settings):
        from fleet_portal.client_ip import client_ip

        settings.TRUSTED_PROXY_COUNT = 1
        request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 1.2.3.4")
        assert client_ip(request) == "1.2.3.4"
        assert client_ip(rf.get("/", REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"
