"""A fleet manager uploads the demo CSV, reads the preview, sends it, and watches
the table settle by itself; then filters and exports. Support follows up on a
failed VIN."""

import csv
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.gates import (
    assert_keyboard_reachable,
    assert_page_quality,
    login,
    logout,
    screenshot,
)

pytestmark = pytest.mark.browser

DEMO_CSV = Path(__file__).resolve().parents[2] / "docs" / "demo-vins.csv"
# Long enough for a batch POST, the first group poll (~2 s) and a table poll (2 s).
SETTLE_MS = 30_000

EXPORT_COLUMNS = (
    "vin,make,country_code,registration_plate,status,error_codes,message,"
    "action_category,can_retry,vehicle_id,updated_at"
)


def row(page: Page, vin: str):
    """The first table row of a VIN (the demo file repeats one VIN on purpose)."""
    return page.locator("table.vin-table tbody tr").filter(has_text=vin).first


def upload_demo_csv(page: Page) -> None:
    """From the dashboard to the preview of a fresh upload of docs/demo-vins.csv."""
    page.get_by_role("link", name="Demo Fleet").click()
    page.get_by_role("link", name="Upload VINs").first.click()
    expect(page).to_have_url(re.compile(r"/fleets/demo-fleet/uploads/new/$"))
    assert_page_quality(page)
    page.locator("input[type=file]").set_input_files(str(DEMO_CSV))
    page.get_by_role("button", name="Check VINs").click()
    expect(page).to_have_url(re.compile(r"/uploads/\d+/$"))


def send_and_settle(page: Page) -> None:
    page.get_by_role("button", name=re.compile(r"^Send \d+ valid VINs? to Volteras$")).click()
    expect(page.locator(".message.success")).to_contain_text("on their way to Volteras")
    # A marker that a reload would wipe: everything below happens on this very document.
    page.evaluate("() => { window.stillTheSamePage = true; }")
    expect(row(page, "ALERT511800000004")).to_contain_text("Connected", timeout=SETTLE_MS)
    expect(row(page, "PERR0R11000000001")).to_contain_text("Error", timeout=SETTLE_MS)
    expect(row(page, "1NC0MP11400000002")).to_contain_text("Incompatible", timeout=SETTLE_MS)
    # Everything but the pending VIN (which can take days) reaches a final state.
    expect(page.locator(".summary")).to_contain_text("Only pending VINs remain", timeout=SETTLE_MS)
    assert page.evaluate("() => window.stillTheSamePage === true"), "the page was reloaded"


def test_manager_uploads_sends_watches_filters_and_exports(
    page: Page, users, portal_on_sandbox, worker
):
    login(page, "manager")
    upload_demo_csv(page)

    # The preview: nothing sent yet, every row judged, with reasons.
    expect(page.locator("p.message")).to_contain_text("Nothing has been sent yet")
    expect(row(page, "WVWZZZ1KZ8WO12345")).to_contain_text("Invalid")
    expect(row(page, "WVGZZZE29MP012345")).to_contain_text("Ready")
    assert_page_quality(page)
    send = page.get_by_role("button", name=re.compile(r"^Send \d+ valid VINs? to Volteras$"))
    assert_keyboard_reachable(page, "button.primary:has-text('Send')")
    assert int(re.search(r"\d+", send.inner_text()).group()) > 10
    screenshot(page, "upload-preview")

    send_and_settle(page)
    upload_url = page.url
    expect(row(page, "ALERT511800000004")).to_contain_text("Connected")
    expect(row(page, "PERR0R11000000001")).to_contain_text("OEM_VEHICLE_UPDATE_REQUIRED")
    expect(row(page, "PR0C11AA500000003")).to_contain_text("Pending")
    assert_page_quality(page)
    screenshot(page, "upload-live")

    # Filter by status: only the failed VIN is left.
    page.get_by_label("Status").select_option("ERROR")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]status=ERROR"))
    rows = page.locator("table.vin-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("PERR0R11000000001")
    assert_page_quality(page)

    # Export the whole upload.
    page.goto(upload_url)
    assert_keyboard_reachable(page, "a:has-text('Export CSV')")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    exported = Path(download.path()).read_text(encoding="utf-8-sig")
    header, *lines = exported.splitlines()
    assert header == EXPORT_COLUMNS
    by_vin = {r["vin"]: r for r in csv.DictReader(io.StringIO(exported))}
    assert by_vin["PERR0R11000000001"]["status"] == "ERROR"
    assert by_vin["PERR0R11000000001"]["error_codes"] == "OEM_VEHICLE_UPDATE_REQUIRED"
    assert by_vin["ALERT511800000004"]["status"] == "CONNECTED"
    assert by_vin["ALERT511800000004"]["vehicle_id"]
    assert by_vin["1NC0MP11400000002"]["status"] == "INCOMPATIBLE"
    assert by_vin["WVWZZZ1KZ8WO12345"]["status"] == "INVALID"
    assert len(lines) == sum(1 for _ in DEMO_CSV.read_text(encoding="utf-8").splitlines()) - 1


def test_support_finds_a_failed_vin_reads_why_and_retries_it(
    page: Page, users, portal_on_sandbox, worker
):
    login(page, "manager")
    upload_demo_csv(page)
    send_and_settle(page)
    logout(page)

    login(page, "support")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Support").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Support")
    assert_page_quality(page)
    page.get_by_label("Status").select_option("ERROR")
    page.get_by_role("button", name="Filter").click()
    failed = page.locator("table.vin-table tbody tr").filter(has_text="PERR0R11000000001")
    expect(failed).to_contain_text("OEM_VEHICLE_UPDATE_REQUIRED")
    expect(failed).to_contain_text("Next:")
    expect(failed).to_contain_text("Demo Fleet")
    assert_page_quality(page)
    screenshot(page, "support")

    # The sandbox's webhooks about these vehicles arrived and were processed.
    page.get_by_role("link", name="Webhook deliveries").click()
    expect(page.locator("table.data tbody tr").first).to_be_visible()
    deliveries = page.get_by_role("table", name=re.compile("^Webhook deliveries"))
    expect(deliveries).to_contain_text("device.connected")
    assert_page_quality(page)
    page.go_back()

    page.get_by_role("link", name="PERR0R11000000001").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("PERR0R11000000001")
    main = page.locator("main")
    expect(main).to_contain_text("OEM_VEHICLE_UPDATE_REQUIRED")
    expect(main).to_contain_text("Next step:")
    expect(main).to_contain_text("a retry can help")
    assert_page_quality(page)
    timeline = page.locator("ol.timeline > li")
    before = timeline.count()
    assert before >= 2
    screenshot(page, "vin-detail")

    actions = page.locator("#support-actions")
    actions.get_by_label("Action").select_option(label="Retry")
    assert_keyboard_reachable(page, "#support-actions button[type=submit]")
    page.keyboard.press("Enter")
    # Back on the VIN's page, whose timeline now records the retry and who asked.
    expect(page.get_by_role("heading", level=1)).to_have_text("PERR0R11000000001")
    expect(page.locator("ol.timeline")).to_contain_text("by support")
    assert timeline.count() > before
