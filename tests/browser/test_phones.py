"""Issue 15: on a phone (390 x 844) no page pans sideways. A manager, support
and the admin visit every page of the portal at that width; each page's
document must be no wider than the window."""

import os
import re
import shutil

import pytest
from playwright.sync_api import Page, expect

from connections.models import VinEntry
from tests.browser.gates import ARTIFACTS, COMMITTED, login, logout
from tests.browser.test_upload_journey import send_and_settle, upload_demo_csv

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# Wider than the window: the page pans sideways. Lists the widest offenders so
# a failure says what to fix.
_PAN_JS = """
() => {
  const width = window.innerWidth;
  const wide = Array.from(document.body.querySelectorAll("*"))
    .filter((el) => el.getBoundingClientRect().right > width + 0.5)
    .filter((el) => !el.closest("table.data:not(.stack)") || el.matches("table"))
    .slice(0, 5)
    .map((el) => `${el.tagName.toLowerCase()}.${el.className || ""}`
      + ` (right ${Math.round(el.getBoundingClientRect().right)})`);
  return {scroll: document.documentElement.scrollWidth, width, wide};
}
"""


def phone_screenshot(page: Page, name: str) -> None:
    """What the phone's screen shows (the first 844 px, not the whole page, so the
    README's copies stay small); kept like `gates.screenshot` keeps its own."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled")
    if os.environ.get("UPDATE_SCREENSHOTS", "") in {"1", "true", "yes"}:
        COMMITTED.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, COMMITTED / path.name)


def assert_no_pan(page: Page, name: str, failures: list[str]) -> None:
    """Record `name` as failing when its document is wider than the window."""
    page.wait_for_load_state("load")
    found = page.evaluate(_PAN_JS)
    if found["scroll"] > found["width"]:
        failures.append(
            f"{name} ({page.url}) pans sideways: scrollWidth {found['scroll']} > "
            f"{found['width']}; too wide: {', '.join(found['wide'])}"
        )


def visit(page: Page, path: str, name: str, failures: list[str]) -> None:
    page.goto(path)
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert_no_pan(page, name, failures)


def test_no_page_pans_sideways_on_a_phone(page: Page, users, portal_on_sandbox, worker):
    page.set_viewport_size(PHONE)
    failures: list[str] = []

    page.goto("/accounts/login/")
    assert_no_pan(page, "login page", failures)

    # The manager: an upload sent and settled, so every status shows.
    login(page, "manager")
    assert_no_pan(page, "dashboard (manager)", failures)
    upload_demo_csv(page)
    assert_no_pan(page, "upload preview", failures)
    send_and_settle(page)
    upload_url = re.sub(r"^https?://[^/]+", "", page.url)
    assert_no_pan(page, "upload detail with statuses", failures)
    # The table itself, not the buttons above it.
    page.locator("table.vin-table").evaluate("(table) => table.scrollIntoView()")
    phone_screenshot(page, "phone-upload")
    entry = VinEntry.objects.get(vin="PERR0R11000000001")
    vin_url = f"/vins/{entry.pk}/"

    fleet_pages = [
        ("/fleets/demo-fleet/", "fleet page"),
        ("/fleets/demo-fleet/vehicles/", "fleet vehicles"),
        (upload_url, "upload detail"),
        (vin_url, "VIN page"),
        ("/fleets/demo-fleet/consent-links/", "consent link list"),
        ("/fleets/demo-fleet/accounts/", "connected accounts"),
    ]
    # Pages for the fleet's managers only (support reads, never changes).
    manager_pages = [
        ("/fleets/demo-fleet/uploads/new/", "upload new"),
        ("/fleets/demo-fleet/consent-links/new/", "new consent link form"),
        ("/account/notifications/", "notification settings"),
    ]
    for path, name in fleet_pages + manager_pages:
        visit(page, path, f"{name} (manager)", failures)
        if name == "fleet page":
            phone_screenshot(page, "phone-fleet")
        if name == "VIN page":
            phone_screenshot(page, "phone-vin")

    page.goto("/fleets/demo-fleet/consent-links/new/")
    page.get_by_label("Label").fill("Jane's company car with a rather long label")
    page.get_by_role("button", name="Create link").click()
    expect(page.get_by_label("Short link")).to_be_visible()
    link_url = re.sub(r"^https?://[^/]+", "", page.url)
    assert_no_pan(page, "consent link detail (manager)", failures)
    visit(page, "/fleets/demo-fleet/consent-links/", "consent link list, one link", failures)
    logout(page)

    # Support: its own pages, and the fleet's pages as support sees them.
    login(page, "support")
    assert_no_pan(page, "dashboard (support)", failures)
    support_pages = [
        ("/support/", "support workspace"),
        ("/support/?status=ERROR", "support workspace, errors"),
        ("/support/codes/", "support codes"),
        ("/support/webhooks/", "delivery log"),
        ("/support/webhooks/refused/", "delivery log, refused"),
        ("/support/webhooks/unmatched/", "delivery log, unmatched"),
        ("/account/notifications/", "notification settings"),
    ]
    for path, name in support_pages + fleet_pages + [(link_url, "consent link detail")]:
        visit(page, path, f"{name} (support)", failures)
        if name == "support workspace":
            phone_screenshot(page, "phone-support")
    # On a 1280 px desktop, the tables support and managers read all day fit
    # the window: long error codes (OEM_VEHICLE_UPDATE_REQUIRED) break in
    # their cell instead of widening the table.
    page.set_viewport_size(DESKTOP)
    for path, region in [("/support/", "#support-table"), (upload_url, "#vin-table")]:
        page.goto(path)
        width = page.locator(region).evaluate("(el) => [el.scrollWidth, el.clientWidth]")
        if width[0] > width[1]:
            failures.append(f"{path}: {region} scrolls sideways at 1280 px ({width})")
    # The fleet's vehicle list has eleven columns: what happened keeps room to read.
    page.goto("/fleets/demo-fleet/vehicles/")
    what = page.locator("#vehicles-list thead th").nth(3).evaluate("(th) => th.offsetWidth")
    assert what >= 15 * 16, f"the vehicle list's 'what happened' column is {what} px wide"
    page.set_viewport_size(PHONE)
    logout(page)

    # The admin, where a page shows more to an admin.
    login(page, "admin")
    for path, name in [("/", "dashboard"), *fleet_pages[:2], *support_pages[:1]]:
        visit(page, path, f"{name} (admin)", failures)
    logout(page)
    assert_no_pan(page, "login page after logging out", failures)

    assert not failures, "pages that pan sideways:\n" + "\n".join(failures)
