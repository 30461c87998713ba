"""Logging in as each role, seeing the right fleets, and nothing of other fleets."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.gates import (
    assert_keyboard_reachable,
    assert_page_quality,
    login,
    logout,
    screenshot,
)
from tests.factories import add_entry, make_upload

pytestmark = pytest.mark.browser

FLEETS_SEEN = {
    "manager": ["Demo Fleet"],
    "outsider": ["Other Fleet"],
    "support": ["Demo Fleet", "Other Fleet"],
    "admin": ["Demo Fleet", "Other Fleet"],
}


def fleet_names(page: Page) -> list[str]:
    return page.locator("table.data tbody th[scope=row]").all_inner_texts()


def nav_links(page: Page) -> list[str]:
    return page.get_by_role("navigation", name="Main").get_by_role("link").all_inner_texts()


def test_login_page_is_labelled_and_works_from_the_keyboard(page: Page, users):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    assert_page_quality(page)
    screenshot(page, "login")

    assert assert_keyboard_reachable(page, "#id_username") <= 3
    assert_keyboard_reachable(page, "#id_password")
    assert_keyboard_reachable(page, "button[type=submit]")

    # The whole login by keyboard alone: type, Tab, type, Enter.
    page.locator("#id_username").focus()
    page.keyboard.type("manager")
    page.keyboard.press("Tab")
    page.keyboard.type("correct-horse-battery-staple")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/$"))
    assert fleet_names(page) == ["Demo Fleet"]


def test_a_wrong_password_is_refused_with_a_message(page: Page, users):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("manager")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    # The username is kept; the password is not.
    expect(page.get_by_label("Username")).to_have_value("manager")
    expect(page.get_by_label("Password")).to_have_value("")
    assert_page_quality(page)


@pytest.mark.parametrize("username", sorted(FLEETS_SEEN))
def test_each_role_sees_its_fleets_and_navigation(page: Page, users, username):
    login(page, username)
    assert fleet_names(page) == FLEETS_SEEN[username]
    links = nav_links(page)
    assert "Fleets" in links
    assert ("Admin" in links) is (username == "admin")
    expect(page.locator(".topbar .who")).to_have_text(username)
    assert_page_quality(page)
    if username == "manager":
        screenshot(page, "dashboard")


def test_manager_opens_the_fleet_page_by_keyboard(page: Page, users):
    login(page, "manager")
    assert_keyboard_reachable(page, "a[href='/fleets/demo-fleet/']")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/fleets/demo-fleet/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Demo Fleet")
    expect(page.get_by_text("No uploads yet.")).to_be_visible()
    assert_page_quality(page)
    screenshot(page, "fleet")
    assert_keyboard_reachable(page, "button:has-text('Log out')")


def test_outsider_gets_404_for_demo_fleet(page: Page, users, browser_problems):
    browser_problems.allow(404, "/fleets/demo-fleet/")
    login(page, "outsider")
    response = page.goto("/fleets/demo-fleet/")
    assert response is not None
    assert response.status == 404
    expect(page.locator("body")).not_to_contain_text("Demo Fleet")
    # Their own fleet opens as usual.
    response = page.goto("/fleets/other-fleet/")
    assert response is not None
    assert response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Other Fleet")


def test_admin_reaches_the_django_admin_from_the_navigation(page: Page, users, fleet):
    """The admin pages pass the same gates as the portal's (axe included)."""
    entry = add_entry(make_upload(fleet), "CONNECTION_REQUIRED")
    login(page, "admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("link", name="Fleets").first).to_be_visible()
    page.goto("/admin/connections/vinentry/")
    page.get_by_role("link", name=entry.vin).click()
    expect(page.get_by_role("heading", level=2).first).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/admin/connections/vinentry/{entry.pk}/change/$"))


def test_logout_ends_the_session(page: Page, users):
    login(page, "support")
    assert_keyboard_reachable(page, "button:has-text('Log out')")
    logout(page)
    page.goto("/fleets/demo-fleet/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/fleets/demo-fleet/$"))
