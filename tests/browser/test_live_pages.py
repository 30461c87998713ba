"""Every page that shows changing state refreshes itself without disturbing the
person using it: the support workspace keeps a keyboard user's focus and ticks
through five refreshes, the VIN page and a consent link's page update by
themselves when the state changes, and focus lands on the outcome after an
action. The tests change state in the database between polls; polls are made
quick (1 s) so five refreshes take seconds."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from connections.consent import views as consent_views
from connections.consent.links import revoke
from connections.models import LinkStatus, Source, VinStatus, WebhookEvent
from connections.support import views as support_views
from connections.uploads.reading import read_upload
from connections.uploads.submission import create_upload, submit
from connections.webhooks import views as webhook_views
from tests.browser.gates import assert_keyboard_reachable, login, logout
from tests.factories import add_entry, make_upload, stored_link

pytestmark = pytest.mark.browser


def next_poll(page: Page, path: str):
    """Wait for a poll of `path` that brings something."""
    return page.expect_response(
        lambda r: r.url.split("?")[0].endswith(path) and "v=" in r.url and r.status in (200, 286),
        timeout=15_000,
    )


@pytest.fixture
def quick_support(monkeypatch):
    monkeypatch.setattr(support_views, "POLL_SECONDS", 1)


def test_support_focus_and_ticks_survive_five_refreshes(
    page: Page, support, fleet, manager, quick_support
):
    upload = make_upload(fleet, manager)
    entries = [add_entry(upload, VinStatus.ERROR, codes=["OEM_VEHICLE_OFFLINE"]) for _ in range(8)]
    login(page, "support")
    page.goto("/support/")
    # The skip link, first after the top bar, leads past filters, actions and
    # charts into the table.
    skip = page.get_by_role("link", name="Skip to the VIN table")
    assert assert_keyboard_reachable(page, skip) <= 8
    page.keyboard.press("Enter")
    # Newest change first: the last entry made is the first row.
    focused_row = entries[4]
    target = page.locator(f"#entry-{focused_row.pk} th a")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("(el) => document.activeElement === el", target.element_handle()):
            break
    else:
        raise AssertionError("the row's VIN link was not reached by Tab")
    page.locator(f"#pick-{entries[1].pk}").check()
    target.focus()
    href = target.get_attribute("href")
    untouched = page.locator(f"#entry-{entries[6].pk}").element_handle()
    for turn in range(5):
        moved = entries[turn if turn != 4 else 7]
        moved.observe(VinStatus.ERROR if turn % 2 else VinStatus.INCOMPATIBLE, Source.POLL)
        with next_poll(page, "/support/"):
            pass
        expect(page.locator(f"#entry-{moved.pk}")).to_contain_text(
            re.compile("Incompatible|Error"), timeout=10_000
        )
        focused = page.evaluate("() => document.activeElement.getAttribute('href')")
        assert focused == href, f"refresh {turn + 1} moved focus to {focused!r}"
    expect(page.locator(f"#pick-{entries[1].pk}")).to_be_checked()
    assert page.evaluate("(el) => document.contains(el)", untouched)
    expect(page.locator("#live-status")).to_have_text(re.compile(r"^1 VIN changed: 1 "))


def test_support_action_puts_focus_on_its_outcome(page: Page, support, fleet, manager):
    upload = make_upload(fleet, manager)
    entry = add_entry(upload, VinStatus.ERROR, codes=["OEM_VEHICLE_OFFLINE"])
    login(page, "support")
    page.goto("/support/")
    page.locator(f"#pick-{entry.pk}").check()
    page.get_by_label("With the selected VINs").select_option("dismiss")
    page.get_by_label("Reason (dismiss)").fill("Owner sold the van")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#messages")).to_contain_text("1 VIN dismissed")
    expect(page.locator("#messages")).to_be_focused()


def test_vin_page_updates_by_itself(page: Page, manager, fleet):
    entry = add_entry(make_upload(fleet, manager), VinStatus.PROCESSING)
    login(page, "manager")
    page.goto(f"/vins/{entry.pk}/")
    expect(page.locator("#vin-now")).to_contain_text("Processing")
    entry.observe(VinStatus.CONNECTED, Source.WEBHOOK)
    with next_poll(page, f"/vins/{entry.pk}/"):
        pass
    expect(page.locator("#vin-now")).to_contain_text("Connected")
    expect(page.locator("#vin-timeline li")).to_have_count(2)
    expect(page.locator("#live-status")).to_have_text("1 VIN changed: 1 Connected")
    # Final: the fast poll stopped; a slow watcher (a disconnect can still come) took over.
    expect(page.locator("#vin-live-poller")).to_have_attribute("hx-trigger", "every 30s")


def test_consent_link_page_updates_by_itself_and_stops(page: Page, manager, fleet, monkeypatch):
    monkeypatch.setattr(consent_views, "LINK_POLL_SECONDS", 1)
    link = stored_link(fleet, label="Van 12")
    login(page, "manager")
    page.goto(link.get_absolute_url())
    expect(page.locator("#link-title")).to_contain_text("Active")
    email = page.get_by_label("Send by e-mail")
    email.fill("owner@exam")
    link.count_open()
    with next_poll(page, link.get_absolute_url()):
        pass
    expect(page.locator("#link-title")).to_contain_text("Opened")
    expect(page.locator("#link-details")).to_contain_text("1 time")
    expect(email).to_have_value("owner@exam")  # the share card's controls stayed
    revoke(link, manager)
    link.refresh_from_db()
    assert link.status == LinkStatus.REVOKED
    expect(page.locator("#link-title")).to_contain_text("Revoked", timeout=10_000)
    expect(page.locator("#link-live-poller")).to_have_count(0)


def test_tab_counts_to_the_first_rows(page: Page, support, manager, fleet, capsys):
    """The figures the issue measured: key presses from the top of the page to
    the first row of the support table, straight and through the skip link."""
    upload = make_upload(fleet, manager)
    for _ in range(30):
        add_entry(upload, VinStatus.ERROR, codes=["OEM_VEHICLE_OFFLINE"])
    login(page, "support")
    page.goto("/support/")
    first = page.locator("#support-rows tr").first.locator("input")
    straight = assert_keyboard_reachable(page, first)
    to_skip = assert_keyboard_reachable(
        page, page.get_by_role("link", name="Skip to the VIN table")
    )
    page.keyboard.press("Enter")
    tabs = 0
    while tabs < 20 and not page.evaluate(
        "(el) => document.activeElement === el", first.element_handle()
    ):
        page.keyboard.press("Tab")
        tabs += 1
    expect(first).to_be_focused()
    with capsys.disabled():
        print(
            f"\nsupport table, first row: {straight} Tabs straight; via the skip link "
            f"{to_skip} Tabs, Enter, {tabs} Tabs (the header's tick-all box and sort links)"
        )
    # Past the header's 7 controls (tick all, 6 sort links), nothing else on the way.
    assert tabs == 8
    assert straight > to_skip + tabs  # the skip link is the short way


def test_tab_counts_to_row_25_of_the_upload_table(page: Page, manager, fleet, capsys):
    """The issue's other figure: key presses to row 25 of the upload's live table."""
    vins = "\n".join(f"WVWZZZ1JZ{n:08d}"[:17] for n in range(30))
    upload = create_upload(fleet, manager, read_upload(vins))
    submit(upload, manager)
    row_25 = upload.entries.order_by("line_number")[24]
    login(page, "manager")
    page.goto(upload.get_absolute_url())
    target = page.locator(f"#entry-{row_25.pk} th a")
    straight = assert_keyboard_reachable(page, target)
    to_skip = assert_keyboard_reachable(page, page.get_by_role("link", name="Skip to the table"))
    page.keyboard.press("Enter")
    tabs = 0
    while tabs < 60 and not page.evaluate(
        "(el) => document.activeElement === el", target.element_handle()
    ):
        page.keyboard.press("Tab")
        tabs += 1
    expect(target).to_be_focused()
    with capsys.disabled():
        print(
            f"\nupload table, row 25: {straight} Tabs straight; via the skip link "
            f"{to_skip} Tabs, Enter, {tabs} Tabs"
        )
    assert to_skip + tabs < straight


def test_consent_link_action_puts_focus_on_its_outcome(page: Page, manager, fleet):
    link = stored_link(fleet, label="Van 14")
    login(page, "manager")
    page.goto(link.get_absolute_url())
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator("#messages")).to_contain_text("Link revoked")
    expect(page.locator("#messages")).to_be_focused()


def test_link_list_and_delivery_log_update_by_themselves(
    page: Page, manager, support, fleet, monkeypatch
):
    monkeypatch.setattr(consent_views, "LIST_POLL_SECONDS", 1)
    monkeypatch.setattr(webhook_views, "LOG_POLL_SECONDS", 1)
    calm, opened = stored_link(fleet, label="Van 1"), stored_link(fleet, label="Van 2")
    login(page, "manager")
    page.goto(f"/fleets/{fleet.slug}/consent-links/")
    untouched = page.locator(f"#link-{calm.pk}").element_handle()
    opened.count_open()
    expect(page.locator(f"#link-{opened.pk}")).to_contain_text("Opened", timeout=10_000)
    assert page.evaluate("(el) => document.contains(el)", untouched)
    expect(page.locator("#live-status")).to_have_text("1 consent link changed: 1 Opened")
    logout(page)
    login(page, "support")
    page.goto("/support/webhooks/")
    event = WebhookEvent.objects.create(
        svix_id="msg_live_1", event_type="device.connected", vehicle_id="veh-7", body="{}"
    )
    expect(page.locator(f"#delivery-{event.pk}")).to_contain_text("veh-7", timeout=10_000)
