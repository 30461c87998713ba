"""An outsider (manager of Other Fleet) sees nothing of Demo Fleet: not its
page, uploads, VINs, exports or consent links; a manager sees no support page."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from connections.models import ConsentLink, Upload, VinStatus
from tests.browser.gates import login
from tests.factories import add_entry, make_upload

pytestmark = pytest.mark.browser

SECRET_VIN = "WVGZZZE29MP012345"
SECRET_LABEL = "Demo Fleet's secret link"


@pytest.fixture
def demo_fleet_data(fleet, manager) -> dict[str, str]:
    """One upload with a VIN and one consent link in Demo Fleet; their URLs."""
    upload = make_upload(fleet, manager, source_name="secret.csv", state=Upload.State.DRAFT)
    entry = add_entry(
        upload, VinStatus.READY, vin=SECRET_VIN, line=2, make="VOLKSWAGEN", country_code="DE"
    )
    link = ConsentLink.objects.create(
        fleet=fleet,
        label=SECRET_LABEL,
        authentication_url="http://127.0.0.1:9/consent",
        expires_at=timezone.now() + timedelta(days=1),
        created_by=manager,
    )
    return {
        "fleet page": "/fleets/demo-fleet/",
        "upload form": "/fleets/demo-fleet/uploads/new/",
        "upload": f"/uploads/{upload.pk}/",
        "upload rows": f"/uploads/{upload.pk}/rows/",
        "upload export": f"/uploads/{upload.pk}/export.csv",
        "vin": f"/vins/{entry.pk}/",
        "consent links": "/fleets/demo-fleet/consent-links/",
        "new consent link": "/fleets/demo-fleet/consent-links/new/",
        "consent link": f"/fleets/demo-fleet/consent-links/{link.pk}/",
        "their link under my fleet": f"/fleets/other-fleet/consent-links/{link.pk}/",
        "accounts": "/fleets/demo-fleet/accounts/",
    }


def test_outsider_gets_404_for_every_demo_fleet_page(
    page: Page, users, demo_fleet_data, browser_problems
):
    for url in demo_fleet_data.values():
        browser_problems.allow(404, url)
    login(page, "outsider")
    expect(page.locator("main")).not_to_contain_text("Demo Fleet")
    for what, url in demo_fleet_data.items():
        response = page.goto(url)
        assert response is not None
        assert response.status == 404, f"{what} ({url}) answered {response.status}"
        body = page.locator("body")
        expect(body).to_contain_text("Page not found")
        for secret in ("Demo Fleet", SECRET_VIN, SECRET_LABEL, "secret.csv"):
            expect(body).not_to_contain_text(secret)


def test_members_see_the_same_pages(page: Page, users, demo_fleet_data):
    """The other side of the 404s above: the URLs are real for Demo Fleet's manager."""
    login(page, "manager")
    for what, url in demo_fleet_data.items():
        if what in {"their link under my fleet", "upload rows"}:
            continue  # not theirs either; a partial for htmx, not a page
        if what == "upload export":
            with page.expect_download():
                page.evaluate("url => { location.href = url; }", url)
            continue
        response = page.goto(url)
        assert response is not None
        assert response.status == 200, f"{what} ({url}) answered {response.status}"


def test_fleet_manager_gets_404_for_support(page: Page, users, browser_problems):
    browser_problems.allow(404, "/support/")
    login(page, "manager")
    links = page.get_by_role("navigation", name="Main").get_by_role("link").all_inner_texts()
    assert "Support" not in links
    response = page.goto("/support/")
    assert response is not None
    assert response.status == 404


def test_a_forged_short_link_answers_404(page: Page, browser_problems):
    browser_problems.allow(404, "/l/")
    response = page.goto("/l/not-a-real-token-0123456789")
    assert response is not None
    assert response.status == 404
