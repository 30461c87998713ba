"""A manager uploads a file with an invalid row, fixes it in the table by
keyboard (a wrong try first: the problem shows next to the field), sees it turn
ready, sends, and watches it connect."""

import re

import pytest
from playwright.sync_api import Page, expect

from connections.models import Upload
from tests.browser.gates import assert_page_quality, login, press_on, screenshot
from tests.browser.test_phones import PHONE
from tests.browser.test_upload_journey import SETTLE_MS, row, upload_demo_csv
from tests.factories import make_vin

pytestmark = pytest.mark.browser

FIXED = make_vin(12345, "VOLKSWAGEN")  # the sandbox connects it at once
TYPO = FIXED[:11] + "O" + FIXED[12:]  # the letter O for the digit 0
ROWS = (
    "VIN,Brand,Country,Licence Plate\n"
    "WVGZZZE29MP012345,Volkswagen,DE,B-FP 1021\n"
    f"{TYPO},Volkswagen,DE,HB-VW 12\n"
    "ALERT511800000004,Tesla,DE,\n"
)

_PANS_JS = "() => document.documentElement.scrollWidth > window.innerWidth"


def send_button(page: Page):
    return page.get_by_role("button", name=re.compile(r"^Send \d+ valid VINs? to Volteras$"))


def test_manager_fixes_a_row_inline_sends_it_and_sees_it_connect(
    page: Page, users, portal_on_sandbox, worker, tmp_path
):
    file = tmp_path / "fleet-with-a-typo.csv"
    file.write_text(ROWS, encoding="utf-8")
    login(page, "manager")
    upload_demo_csv(page, file)
    expect(row(page, TYPO)).to_contain_text("Invalid")
    expect(send_button(page)).to_have_text("Send 2 valid VINs to Volteras")

    # Open the row's form by keyboard: the VIN field takes the focus.
    press_on(page, page.get_by_role("link", name="Edit line 3"), "Enter")
    vin = page.get_by_label("VIN", exact=True)
    expect(vin).to_be_focused()
    expect(vin).to_have_value(TYPO)

    # On a phone the form fits the screen.
    page.set_viewport_size(PHONE)
    assert not page.evaluate(_PANS_JS), "the row's form pans sideways at 390 px"
    page.set_viewport_size({"width": 1280, "height": 900})

    # A wrong try: nothing is saved, the problem is next to the field, which keeps the focus.
    vin.fill(FIXED[:11] + "I" + FIXED[12:])
    page.keyboard.press("Enter")
    expect(page.locator(f"#{vin.get_attribute('id')}-errors")).to_contain_text("letter I")
    expect(page.get_by_text("would still be invalid, so it was not saved")).to_be_visible()
    expect(vin).to_be_focused()
    expect(vin).to_have_attribute("aria-invalid", "true")
    assert_page_quality(page)
    screenshot(page, "upload-inline-fix")

    # The right VIN: the row turns ready in place, the counts and Send follow.
    vin.fill(FIXED)
    page.keyboard.press("Enter")
    fixed = row(page, FIXED)
    expect(fixed).to_contain_text("Ready")
    expect(page.get_by_role("link", name="Edit line 3")).to_be_focused()
    expect(page.locator("#live-summary")).to_contain_text("3 ready to send")
    expect(send_button(page)).to_have_text("Send 3 valid VINs to Volteras")
    assert_page_quality(page)

    # Send at once, with the button the fix brought (swapped out of band).
    press_on(page, send_button(page), "Enter")
    expect(page.locator(".message.success")).to_contain_text("3 VINs are on their way")
    expect(row(page, FIXED)).to_contain_text("Connected", timeout=SETTLE_MS)
    expect(page.get_by_role("link", name="Edit line 3")).to_have_count(0)

    # The timeline says who changed what, in plain words.
    page.goto(row(page, FIXED).get_by_role("link", name=FIXED).get_attribute("href"))
    expect(page.locator("body")).to_contain_text(f"Edited by manager: VIN {TYPO} → {FIXED}")


def test_manager_replaces_the_earlier_draft_with_a_corrected_file(
    page: Page, users, portal_on_sandbox, tmp_path
):
    file = tmp_path / "fleet.csv"
    file.write_text(ROWS, encoding="utf-8")
    login(page, "manager")
    upload_demo_csv(page, file)
    first_url = page.url
    first = re.search(r"/uploads/(\d+)/$", first_url).group(1)

    # The corrected file, under the same name, without the third row.
    file.write_text(ROWS.replace(TYPO, FIXED).rsplit("ALERT", 1)[0], encoding="utf-8")
    page.goto("/")
    upload_demo_csv(page, file)
    offer = page.locator("#replace-offer")
    expect(offer).to_contain_text(f"Draft upload #{first}")
    expect(offer).to_contain_text("has the same file name as this one")
    expect(offer).to_contain_text("2 of its rows have VINs that are not in this file")
    assert_page_quality(page)
    press_on(
        page, offer.get_by_role("button", name=f"Replace draft #{first} with this upload"), "Enter"
    )
    expect(page.locator(".message.success")).to_contain_text(
        f"Draft upload #{first} and its 3 rows were deleted"
    )
    expect(page.locator("#replace-offer")).to_have_count(0)
    assert not Upload.objects.filter(pk=first).exists()
