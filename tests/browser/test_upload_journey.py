"""A fleet manager uploads the demo CSV, reads the preview, sends it, and watches
the table settle by itself; then filters and exports. Support follows up on a
failed VIN."""

import csv
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from connections.explanations import EXPLANATIONS
from connections.models import VinEntry
from tests.browser.gates import (
    assert_keyboard_reachable,
    assert_page_quality,
    choose_by_keyboard,
    login,
    logout,
    press_on,
    screenshot,
)

pytestmark = pytest.mark.browser

DEMO_CSV = Path(__file__).resolve().parents[2] / "docs" / "demo-vins.csv"
# Long enough for a batch POST, the first group poll (~2 s) and a table poll (2 s).
SETTLE_MS = 30_000

# Failed VINs of three more makes for the support journey (same sandbox outcome
# as the demo file's PERR0R11 VIN).
MORE_FAILURES = (
    "PERR0R11000000011,BMW,DE,,,,sandbox=error",
    "PERR0R11000000012,Renault,FR,,,,sandbox=error",
    "PERR0R11000000013,Tesla,GB,,,,sandbox=error",
)
ESCALATION_NOTE = "Four VINs of four makes failed with the same code"

EXPORT_COLUMNS = (
    "vin,make,country_code,registration_plate,status,error_codes,message,"
    "action_category,can_retry,vehicle_id,updated_at"
)


def row(page: Page, vin: str):
    """The first table row of a VIN (the demo file repeats one VIN on purpose)."""
    return page.locator("table.vin-table tbody tr").filter(has_text=vin).first


def upload_demo_csv(page: Page, path: Path = DEMO_CSV) -> None:
    """From the dashboard to the preview of a fresh upload of docs/demo-vins.csv
    (or of another file)."""
    page.get_by_role("link", name="Demo Fleet").click()
    page.get_by_role("link", name="Upload VINs").first.click()
    expect(page).to_have_url(re.compile(r"/fleets/demo-fleet/uploads/new/$"))
    assert_page_quality(page)
    file_field = page.locator("input[type=file]")
    assert_keyboard_reachable(page, file_field)
    file_field.set_input_files(str(path))  # the file chooser itself is the OS's
    press_on(page, page.get_by_role("button", name="Check VINs"), "Enter")
    expect(page).to_have_url(re.compile(r"/uploads/\d+/$"))


def send_and_settle(page: Page) -> None:
    send = page.get_by_role("button", name=re.compile(r"^Send \d+ valid VINs? to Volteras$"))
    press_on(page, send, "Enter")
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
    status = page.get_by_label("Status")
    assert_keyboard_reachable(page, status)
    choose_by_keyboard(page, status, "Error")
    expect(status).to_have_value("ERROR")
    press_on(page, page.get_by_role("button", name="Filter"), "Enter")
    expect(page).to_have_url(re.compile(r"[?&]status=ERROR"))
    rows = page.locator("table.vin-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("PERR0R11000000001")
    assert_page_quality(page)

    # Export the whole upload.
    page.goto(upload_url)
    with page.expect_download() as download_info:
        press_on(page, page.get_by_role("link", name="Export CSV"), "Enter")
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
    page: Page, users, portal_on_sandbox, worker, tmp_path
):
    # The demo file plus failed VINs of three more makes, so support's workspace
    # (and its screenshot) is a queue with charts, not a single row. Fewer than
    # INCIDENT_MIN_VINS of one make: no probable incident pauses the retry below.
    with_failures = tmp_path / "demo-vins-and-failures.csv"
    with_failures.write_text(
        DEMO_CSV.read_text(encoding="utf-8").rstrip("\n") + "\n" + "\n".join(MORE_FAILURES) + "\n",
        encoding="utf-8",
    )
    login(page, "manager")
    upload_demo_csv(page, with_failures)
    send_and_settle(page)
    failed_vin = "PERR0R11000000001"
    code = VinEntry.objects.get(vin=failed_vin).error_code
    assert code == "OEM_VEHICLE_UPDATE_REQUIRED"
    explained = EXPLANATIONS[code]  # the one table of knowledge the pages read too
    logout(page)

    login(page, "support")
    press_on(
        page,
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Support"),
        "Enter",
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Support")
    # The whole workspace: every failed VIN, counted by error code and by make.
    vin_rows = page.locator("table.vin-table tbody tr")
    expect(vin_rows.filter(has_text="PERR0R11")).to_have_count(1 + len(MORE_FAILURES))
    expect(page.get_by_role("group", name="VINs by error code")).to_be_visible()
    expect(page.get_by_role("group", name="VINs by make")).to_be_visible()
    screenshot(page, "support")

    # Only the failed VINs, chosen and filtered from the keyboard.
    status = page.get_by_label("Status")
    assert_keyboard_reachable(page, status)
    choose_by_keyboard(page, status, "Error")
    expect(status).to_have_value("ERROR")
    press_on(page, page.get_by_role("button", name="Filter"), "Enter")
    expect(page).to_have_url(re.compile(r"[?&]status=ERROR"))
    expect(vin_rows).to_have_count(1 + len(MORE_FAILURES))
    failed = vin_rows.filter(has_text=failed_vin)
    expect(failed).to_contain_text(code)
    expect(failed).to_contain_text(explained.title)
    expect(failed).to_contain_text(f"Next: {explained.next_step}")
    expect(failed).to_contain_text("Demo Fleet")

    # Bulk selection by Space: every box at once and back, then the one VIN.
    boxes = page.locator("table.vin-table tbody").get_by_role("checkbox")
    expect(boxes).to_have_count(1 + len(MORE_FAILURES))
    press_on(page, page.get_by_label("Select every VIN on this page"), "Space")
    for box in boxes.all():
        expect(box).to_be_checked()
    page.keyboard.press("Space")
    for box in boxes.all():
        expect(box).not_to_be_checked()
    press_on(page, page.get_by_label(f"Select {failed_vin}"), "Space")
    expect(page.get_by_label(f"Select {failed_vin}")).to_be_checked()
    action = page.get_by_label("With the selected VINs")
    assert_keyboard_reachable(page, action)
    choose_by_keyboard(page, action, "Escalate")
    expect(action).to_have_value("escalate")
    assert_keyboard_reachable(page, page.get_by_label("Note for Volteras (escalate)"))
    page.keyboard.type(ESCALATION_NOTE)
    press_on(page, page.get_by_role("button", name="Apply"), "Enter")
    expect(page.get_by_role("status")).to_contain_text("1 VIN escalated to Volteras.")
    expect(page).to_have_url(re.compile(r"[?&]status=ERROR"))
    expect(failed).to_contain_text("escalated")
    expect(vin_rows.filter(has_text="escalated")).to_have_count(1)

    # The sandbox's webhooks about these vehicles arrived and were processed.
    press_on(page, page.get_by_role("link", name="Webhook deliveries"), "Enter")
    expect(page.locator("table.data tbody tr").first).to_be_visible()
    deliveries = page.get_by_role("table", name=re.compile("^Webhook deliveries"))
    expect(deliveries).to_contain_text("device.connected")
    page.go_back()

    press_on(page, page.get_by_role("link", name=failed_vin), "Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(failed_vin)
    main = page.locator("main")
    expect(main).to_contain_text(code)
    expect(main).to_contain_text(explained.explanation)
    expect(main).to_contain_text(f"Next step: {explained.next_step}")
    expect(main).to_contain_text("a retry can help")
    timeline = page.locator("ol.timeline > li")
    expect(timeline.filter(has_text=f"Escalated to Volteras: {ESCALATION_NOTE}")).to_have_count(1)
    before = timeline.count()
    assert before >= 3
    screenshot(page, "vin-detail")

    actions = page.locator("#support-actions")
    assert_keyboard_reachable(page, actions.get_by_label("Action"))
    choose_by_keyboard(page, actions.get_by_label("Action"), "Retry")
    expect(actions.get_by_label("Action")).to_have_value("retry")
    press_on(page, actions.get_by_role("button", name="Apply"), "Enter")
    # Back on the VIN's page, whose timeline now records the retry and who asked.
    expect(page.get_by_role("status")).to_contain_text("1 VIN sent again.")
    expect(page.get_by_role("heading", level=1)).to_have_text(failed_vin)
    expect(page.locator("ol.timeline")).to_contain_text("by support")
    assert timeline.count() > before
