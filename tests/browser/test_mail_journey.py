"""A manager sends a consent link by e-mail; the owner opens it from the
captured message, reads the owner's page in German, completes the sandbox's
consent flow, and the manager sees the link's story: sent → opened → completed.
The owner's page is also shown in French (both kept as screenshots)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect

from connections.models import ConsentLink, LinkStatus, MailMessage
from tests.browser.conftest import BrowserProblems
from tests.browser.gates import assert_page_quality, login, press_on, screenshot

pytestmark = pytest.mark.browser


def wait_for_sent(timeout: float = 15.0) -> MailMessage:
    """The worker thread delivers the message; wait for it (a real wait: another thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = MailMessage.objects.filter(state=MailMessage.State.SENT).first()
        if message is not None and mail.outbox:
            return message
        time.sleep(0.1)
    raise AssertionError(f"no message sent: {list(MailMessage.objects.values())}")


def test_send_a_link_by_email_and_the_owner_completes_it_in_german(
    page: Page,
    another_browser: Callable[[], BrowserContext],
    users,
    fleet,
    portal_on_sandbox,
    worker,
    browser_problems: BrowserProblems,
):
    users["manager"].email = "max@fleet.example"
    users["manager"].save()
    login(page, "manager")
    page.get_by_role("link", name="Demo Fleet").click()
    page.get_by_role("link", name="Consent links", exact=True).click()
    page.get_by_role("link", name="New consent link").click()
    page.get_by_label("Label").fill("Janas Firmenwagen")
    page.get_by_label("Send to (e-mail)").fill("jana@example.com")
    page.get_by_label("Recipient note").fill("Hallo Jana, bitte verbinde den Firmenwagen.")
    page.get_by_label("Language").select_option("de-DE")
    page.get_by_label("Country").fill("DE")
    press_on(page, page.get_by_role("button", name="Create link"), "Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Janas Firmenwagen")
    expect(page.locator(".messages")).to_contain_text("being e-mailed to jana@example.com")

    wait_for_sent()
    [message] = mail.outbox
    assert message.to == ["jana@example.com"] and message.reply_to == ["max@fleet.example"]
    assert message.subject == "Demo Fleet: Bitte verbinden Sie Ihr Fahrzeug"
    short_link = re.search(r"http://\S+/l/[\w-]+", message.body)[0]

    browser_problems.allow(404, f"{portal_on_sandbox.url}/favicon.ico")
    owner = another_browser().new_page()
    owner.goto(short_link)
    expect(owner.get_by_role("heading", level=1)).to_have_text(
        "Verbinden Sie Ihr Fahrzeug mit Demo Fleet"
    )
    expect(owner.locator("main")).to_contain_text("Hallo Jana, bitte verbinde den Firmenwagen.")
    expect(owner.locator("main")).to_contain_text("Was Volteras lesen darf:")
    expect(owner.locator("main")).to_contain_text("(Europe/Berlin)")
    assert_page_quality(owner)
    screenshot(owner, "owner-page-de")
    press_on(owner, owner.get_by_role("link", name="Weiter zu Volteras"), "Enter")
    owner.get_by_label("Manufacturer", exact=True).select_option(index=1)
    owner.get_by_label("Username at the manufacturer").fill("jana")
    owner.get_by_role("button", name="Continue").click()
    owner.get_by_role("button", name="Approve").click()
    expect(owner.get_by_role("heading", level=1)).to_have_text(
        "Vielen Dank, Ihr Fahrzeug ist verbunden"
    )

    link = ConsentLink.objects.get()
    assert link.state == LinkStatus.COMPLETED
    page.reload()
    history = page.locator("ol.timeline li")
    texts = history.all_inner_texts()
    sent = next(i for i, t in enumerate(texts) if "E-mail sent to jana@example.com" in t)
    opened = next(i for i, t in enumerate(texts) if "opened the link" in t)
    completed = next(i for i, t in enumerate(texts) if "owner connected account" in t)
    assert sent < opened < completed, texts
    expect(page.locator("table.data")).to_contain_text("Sent")
    assert_page_quality(page)


def test_the_owners_page_in_french(page: Page, fleet, live_server):
    link = ConsentLink.objects.create(
        fleet=fleet,
        label="Voiture de Camille",
        language="fr",
        recipient_note="Bonjour Camille, merci de connecter la voiture de service avant vendredi.",
        authentication_url="https://consent.example/flow/abc",
        options={
            "scopes": ["vehicle:information", "vehicle:telemetry", "vehicle:charging_history"],
            "deviceTypes": ["VEHICLE"],
            "countryCode": "FR",
        },
        expires_at=timezone.now() + timedelta(days=7),
    )
    page.goto(f"{live_server.url}/l/{link.token}")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Connectez votre véhicule à Demo Fleet"
    )
    expect(page.get_by_role("link", name="Continuer vers Volteras")).to_be_visible()
    assert_page_quality(page)
    screenshot(page, "owner-page-fr")
