"""Password reset by e-mail (Django's views, the portal's look, the outbox), and
an admin inviting a manager to a fleet, who then sets their own password."""

from __future__ import annotations

import re

from django.core import mail
from django.urls import reverse

from connections import jobs
from connections.models import Fleet, MailMessage


def link_in(body: str) -> str:
    match = re.search(r"http://testserver(/accounts/reset/\S+/)", body)
    assert match, body
    return match[1]


def test_password_reset_by_email(client, manager):
    manager.email = "manager@example.com"
    manager.save()
    login = client.get(reverse("login")).content.decode()
    assert reverse("password_reset") in login
    response = client.post(reverse("password_reset"), {"email": "manager@example.com"})
    assert response["Location"] == reverse("password_reset_done")
    assert (
        client.post(reverse("password_reset"), {"email": "nobody@example.com"}).status_code == 302
    )
    assert mail.outbox == []  # the worker sends it
    jobs.drain()
    [message] = mail.outbox
    assert message.subject == "Fleet Portal: choose a new password"
    page = client.get(link_in(message.body), follow=True)
    assert "Choose a password" in page.content.decode()
    form_url = page.redirect_chain[-1][0]
    done = client.post(
        form_url, {"new_password1": "a-new-pass-2026", "new_password2": "a-new-pass-2026"}
    )
    assert done["Location"] == reverse("password_reset_complete")
    assert logs_in(client, "manager", "a-new-pass-2026")


def logs_in(client, username: str, password: str) -> bool:
    """Through the login page, as a person would (login throttling needs the request)."""
    client.logout()
    response = client.post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302


def test_an_admin_invites_a_manager(client, users, fleet):
    url = reverse("fleet_invite", args=[fleet.slug])
    for name, status in [("manager", 403), ("support", 403), ("outsider", 404)]:
        client.force_login(users[name])
        assert client.get(url).status_code == status, name
    client.force_login(users["admin"])
    response = client.post(url, {"email": "new@example.com", "username": "newbie"})
    assert response.status_code == 302
    assert client.post(url, {"email": "x@example.com", "username": "newbie"}).status_code == 200
    jobs.drain()
    [message] = mail.outbox
    assert message.to == ["new@example.com"] and message.reply_to == ["admin@example.com"]
    assert "manage Demo Fleet" in message.subject
    client.logout()
    page = client.get(link_in(message.body), follow=True)
    form_url = page.redirect_chain[-1][0]
    client.post(
        form_url, {"new_password1": "welcome-fleet-77", "new_password2": "welcome-fleet-77"}
    )
    assert logs_in(client, "newbie", "welcome-fleet-77")
    newbie_fleets = Fleet.objects.managed_by(
        users["admin"].__class__.objects.get(username="newbie")
    )
    assert list(newbie_fleets) == [fleet]
    assert MailMessage.objects.get(kind="invite").state == MailMessage.State.SENT
