"""Per-VIN consent links for CONNECTION_REQUIRED VINs, and Volteras' refusals
shown as clear form errors (from the sandbox where it can refuse, else from
`httpx.MockTransport` at the edge)."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest
from django.urls import reverse
from django.utils import timezone

from connections.consent import links as consent_links
from connections.consent import vin_links as consent_vin_links
from connections.consent.forms import ConsentLinkForm
from connections.consent.options import VIN_LINK_EXPIRY
from connections.consent.vin_links import create_vin_links_batch
from connections.jobs import drain
from connections.models import ConsentLink, LinkStatus, Source, Upload, VinEntry, VinStatus
from connections.volteras import VolterasClient
from tests.factories import add_entry, make_upload, make_vin
from tests.flows import PORTAL, consent_at_sandbox, follow_return, new_link, open_short_link


@pytest.fixture
def upload(fleet, manager) -> Upload:
    upload = make_upload(fleet, manager)
    add_entry(
        upload,
        VinStatus.CONNECTION_REQUIRED,
        line=1,
        vin=make_vin(1, make="VOLKSWAGEN"),
        make="VOLKSWAGEN",
        registration_plate="AB12 CDE",
    )
    add_entry(
        upload,
        VinStatus.CONNECTION_REQUIRED,
        line=2,
        vin=make_vin(2, make="VOLKSWAGEN"),
        make="VOLKSWAGEN",
        registration_plate="=cmd|",
    )
    add_entry(
        upload, VinStatus.CONNECTED, line=3, vin=make_vin(3, make="VOLKSWAGEN"), make="VOLKSWAGEN"
    )
    add_entry(
        upload,
        VinStatus.CONNECTION_REQUIRED,
        line=4,
        vin=make_vin(4, make="VOLKSWAGEN"),
        make="VOLKSWAGEN",
        model="Golf",
        model_year=2021,
    )
    return upload


def export(client, upload: Upload) -> list[dict[str, str]]:
    response = client.get(reverse("upload_consent_links_csv", args=[upload.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = response.content.decode("utf-8")  # strictly: no byte-order mark
    assert text.startswith("vin,registration_plate,link,expires_at\r\n")
    return list(csv.DictReader(io.StringIO(text)))


class TestVinLinks:
    def test_bulk_from_upload(self, client, manager, upload, volteras_no_retries):
        client.force_login(manager)
        response = client.post(reverse("upload_consent_links", args=[upload.pk]))
        assert response["Location"] == upload.get_absolute_url()
        links = list(ConsentLink.objects.order_by("vin_entry__line_number"))
        needing = upload.entries.filter(status=VinStatus.CONNECTION_REQUIRED)
        assert [link.vin_entry for link in links] == list(needing.order_by("line_number"))
        for link in links:
            assert link.vin == link.vin_entry.vin
            assert link.options["vin"] == link.vin
            assert link.options["makes"] == ["VOLKSWAGEN"]
            assert link.options["urlExpiration"] == VIN_LINK_EXPIRY
            event = link.vin_entry.events.get()
            assert event.source == Source.MANUAL and event.actor == manager
            assert link.short_url in event.detail
        golf = links[2]
        assert golf.options["model"] == "Golf" and golf.options["modelYear"] == 2021

        rows = export(client, upload)
        assert [row["vin"] for row in rows] == [link.vin for link in links]
        assert rows[0]["registration_plate"] == "AB12 CDE"
        assert rows[1]["registration_plate"] == "'=cmd|"  # never run as a formula
        assert rows[0]["link"] == f"{PORTAL}/l/{links[0].token}"
        assert rows[0]["expires_at"] == links[0].expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")

        # Asking again keeps the links the VINs already have.
        client.post(reverse("upload_consent_links", args=[upload.pk]))
        assert ConsentLink.objects.count() == 3

    def test_selected_entries_only(self, client, manager, upload, volteras_no_retries):
        first, connected = upload.entries.filter(line_number__in=[1, 3]).order_by("line_number")
        client.force_login(manager)
        client.post(
            reverse("upload_consent_links", args=[upload.pk]),
            {"entry": [first.pk, connected.pk]},
        )
        assert [link.vin_entry for link in ConsentLink.objects.all()] == [first]

    def test_owner_consents_and_the_vin_connects(
        self, client, manager, upload, volteras_no_retries
    ):
        client.force_login(manager)
        client.post(reverse("upload_consent_links", args=[upload.pk]))
        link = ConsentLink.objects.get(vin_entry__line_number=1)
        auth_url = open_short_link(client, link)
        page = follow_return(client, consent_at_sandbox(auth_url, approve=True))
        assert "your vehicle is connected" in page.content.decode()
        drain()  # a worker reads the account's vehicles
        entry = VinEntry.objects.get(pk=link.vin_entry_id)
        assert entry.status == VinStatus.CONNECTED
        assert entry.vehicle_id
        connected = entry.events.get(status_to=VinStatus.CONNECTED)
        assert connected.source == Source.CONSENT
        assert connected.get_source_display() == "Owner completed a consent link"
        details = list(entry.events.values_list("detail", flat=True))
        assert any("Consent link created for the owner" in d for d in details)
        assert any("The owner connected account" in d for d in details)
        link.refresh_from_db()
        assert link.state == LinkStatus.COMPLETED
        # A completed link is no longer offered for the mail merge.
        client.force_login(manager)
        assert link.vin not in [row["vin"] for row in export(client, upload)]

    def test_reissue_keeps_the_vin(self, client, manager, upload, volteras_no_retries):
        client.force_login(manager)
        client.post(reverse("upload_consent_links", args=[upload.pk]))
        old = ConsentLink.objects.get(vin_entry__line_number=1)
        client.post(reverse("consent_link_reissue", args=[upload.fleet.slug, old.pk]))
        old.refresh_from_db()
        assert old.replaced_by.vin_entry_id == old.vin_entry_id
        assert old.replaced_by.options["vin"] == old.vin
        row = next(r for r in export(client, upload) if r["vin"] == old.vin)
        assert row["link"] == old.replaced_by.short_url

    def test_a_vin_volteras_refuses_is_reported_and_the_rest_go_on(
        self, client, manager, fleet, volteras_no_retries
    ):
        upload = Upload.objects.create(fleet=fleet, created_by=manager)
        good = make_vin(7, make="VOLKSWAGEN")
        bad = good[:8] + ("0" if good[8] != "0" else "1") + good[9:]  # wrong check digit
        add_entry(upload, VinStatus.CONNECTION_REQUIRED, line=1, vin=bad, make="VOLKSWAGEN")
        add_entry(upload, VinStatus.CONNECTION_REQUIRED, line=2, vin=good, make="VOLKSWAGEN")
        client.force_login(manager)
        response = client.post(reverse("upload_consent_links", args=[upload.pk]), follow=True)
        text = response.content.decode()
        assert f"{bad}: Volteras refused the link&#x27;s options" in text
        assert [link.vin for link in ConsentLink.objects.all()] == [good]
        refused = upload.entries.get(vin=bad).events.get()
        assert refused.detail.startswith("No consent link: Volteras refused")

    def test_bulk_is_bounded_per_request_and_resumes(
        self, client, manager, upload, volteras_no_retries, monkeypatch
    ):
        monkeypatch.setattr(consent_vin_links, "VIN_LINKS_PER_REQUEST", 2)
        client.force_login(manager)
        url = reverse("upload_consent_links", args=[upload.pk])
        text = client.post(url, follow=True).content.decode()
        assert "2 consent links created." in text
        assert "1 VIN still needs a link: at most 2 are created at a time" in text
        assert ConsentLink.objects.count() == 2
        text = client.post(url, follow=True).content.decode()
        assert "1 consent link created. 2 VINs already had one and keep theirs." in text
        assert "still need" not in text
        assert ConsentLink.objects.count() == 3

    def test_a_rate_limit_stops_the_run_with_what_is_left(
        self, client, manager, upload, volteras_no_retries
    ):
        volteras_no_retries.control(
            faults=[{"kind": "rate_limit", "path_prefix": "/v1/accounts:connect", "count": 1}]
        )
        client.force_login(manager)
        first = client.post(reverse("upload_consent_links", args=[upload.pk]), follow=True)
        text = first.content.decode()
        assert "Stopped: Volteras is receiving too many requests" in text
        assert "3 VINs still need a link" in text
        assert not ConsentLink.objects.exists()
        client.post(reverse("upload_consent_links", args=[upload.pk]))
        assert ConsentLink.objects.count() == 3

    def test_unbounded_creation_names_the_vin_a_rate_limit_stopped_at(
        self, manager, upload, volteras_no_retries
    ):
        volteras_no_retries.control(
            faults=[{"kind": "rate_limit", "path_prefix": "/v1/accounts:connect", "count": 1}]
        )
        run = create_vin_links_batch(upload, None, manager, limit=0)
        first = upload.entries.get(line_number=1)
        assert run.stopped_vin == first.vin and run.failures == {}
        assert "too many requests" in run.stopped
        assert run.links == [] and run.remaining == 3

    def test_csv_lists_only_vins_still_needing_consent(
        self, client, manager, upload, volteras_no_retries
    ):
        client.force_login(manager)
        client.post(reverse("upload_consent_links", args=[upload.pk]))
        first, second, golf = ConsentLink.objects.order_by("vin_entry__line_number")
        # The first VIN connected another way; the second's link ran out.
        VinEntry.objects.filter(pk=first.vin_entry_id).update(status=VinStatus.CONNECTED)
        ConsentLink.objects.filter(pk=second.pk).update(expires_at=timezone.now())
        assert [row["vin"] for row in export(client, upload)] == [golf.vin]
        page = client.get(upload.get_absolute_url()).content.decode()
        assert "The mail-merge CSV lists the 1 VIN with a usable consent link" in page
        assert "(2 need the owner's consent)" in page
        assert "1 VIN needs a reissue" in page
        # Creating links again reissues the expired one: the old short link forwards.
        client.post(reverse("upload_consent_links", args=[upload.pk]))
        second.refresh_from_db()
        assert second.state == LinkStatus.REISSUED
        assert second.replaced_by.vin_entry_id == second.vin_entry_id
        assert [row["link"] for row in export(client, upload)] == [
            second.replaced_by.short_url,
            golf.short_url,
        ]
        assert "needs a reissue" not in client.get(upload.get_absolute_url()).content.decode()

    def test_nothing_to_do_is_said(self, client, manager, fleet):
        upload = Upload.objects.create(fleet=fleet)
        add_entry(
            upload,
            VinStatus.CONNECTED,
            line=1,
            vin=make_vin(1, make="VOLKSWAGEN"),
            make="VOLKSWAGEN",
        )
        client.force_login(manager)
        response = client.post(reverse("upload_consent_links", args=[upload.pk]), follow=True)
        assert "No VIN of this upload needs the owner" in response.content.decode()
        assert not ConsentLink.objects.exists()


FORM = {
    "scopes": ["vehicle:all"],
    "device_types": ["VEHICLE"],
    "expiry_amount": 1,
    "expiry_unit": "hours",
}


def form_errors(client, fleet, **fields) -> str:
    response = client.post(reverse("consent_link_new", args=[fleet.slug]), {**FORM, **fields})
    assert response.status_code == 400
    assert not ConsentLink.objects.exists()
    return response.content.decode()


class TestFormValidation:
    def test_needs_a_scope_and_a_device_type(self, client, manager, fleet):
        client.force_login(manager)
        text = form_errors(client, fleet, scopes=[], device_types=[])
        assert text.count("This field is required.") == 2

    def test_expiry_range(self, client, manager, fleet):
        client.force_login(manager)
        text = form_errors(client, fleet, expiry_amount=15, expiry_unit="days")
        assert "A link is valid for 1 hour to 14 days (336 hours); 15 days is too long." in text
        text = form_errors(client, fleet, expiry_amount=337, expiry_unit="hours")
        assert "337 hours is too long" in text
        assert "0 hours is too short" in form_errors(client, fleet, expiry_amount=0)
        assert "Enter a whole number" in form_errors(client, fleet, expiry_amount="2.5")
        assert "Select a valid choice" in form_errors(client, fleet, expiry_unit="weeks")

    @pytest.mark.parametrize(
        ("amount", "unit", "seconds"),
        [(1, "hours", 3600), (36, "hours", 129600), (5, "days", 432000), (14, "days", 1209600)],
    )
    def test_any_expiry_in_range(self, fleet, amount, unit, seconds):
        data = {**FORM, "expiry_amount": amount, "expiry_unit": unit}
        form = ConsentLinkForm(data, fleet=fleet)
        assert form.is_valid(), form.errors
        assert form.options().expires_in == seconds

    def test_charger_location(self, client, manager, fleet):
        client.force_login(manager)
        text = form_errors(client, fleet, charger_latitude="91", charger_longitude="0")
        assert "Ensure this value is less than or equal to 90" in text
        text = form_errors(client, fleet, charger_latitude="51.5", charger_longitude="-181")
        assert "Ensure this value is greater than or equal to -180" in text
        text = form_errors(client, fleet, charger_latitude="51.5")
        assert "Give both the charger&#x27;s latitude and longitude, or neither." in text
        assert "Enter a number" in form_errors(
            client, fleet, charger_latitude="north", charger_longitude="0"
        )
        text = form_errors(client, fleet, integration_method="BMW_CARDATA")
        assert "Select a valid choice" in text

    def test_contract_options_reach_volteras(self, client, manager, fleet, volteras_no_retries):
        client.force_login(manager)
        link = new_link(
            client,
            fleet,
            makes=["BMW"],
            integration_method="BMW_ENERGY_API",
            charger_latitude="51.5074",
            charger_longitude="-0.1278",
        )
        assert link.options["integrationMethod"] == "BMW_ENERGY_API"
        assert link.options["chargerLocationLatitude"] == 51.5074
        assert link.options["chargerLocationLongitude"] == -0.1278
        page = client.get(link.get_absolute_url()).content.decode()
        assert "BMW_ENERGY_API" in page and "51.5074, -0.1278" in page
        # A reissue asks for the same.
        client.post(reverse("consent_link_reissue", args=[fleet.slug, link.pk]))
        link.refresh_from_db()
        new = link.replaced_by.options
        assert new["integrationMethod"] == "BMW_ENERGY_API"
        assert new["chargerLocationLatitude"] == 51.5074

    def test_region_rules(self, client, manager, fleet):
        client.force_login(manager)
        assert "BMW and MINI need a region" in form_errors(
            client, fleet, makes=["BMW", "MINI"], region=""
        )
        assert "Kia connect in Europe only" in form_errors(
            client, fleet, makes=["KIA"], region="NORTH_AMERICA"
        )

    def test_vin_and_country(self, client, manager, fleet):
        client.force_login(manager)
        text = form_errors(client, fleet, vin="WVWZZZ1JZ0W00000", country_code="Atlantis")
        assert "Unknown country" in text
        assert "has 16 characters" in text
        assert "only sent with a VIN" in form_errors(client, fleet, model="Golf")

    def test_defaults_come_from_the_fleet(self, client, manager, fleet):
        client.force_login(manager)
        page = client.get(reverse("consent_link_new", args=[fleet.slug])).content.decode()
        assert 'value="GB"' in page
        assert "Everything about the vehicle" in page  # scopes are explained


class TestRefusals:
    def test_device_limit_reached(self, client, manager, fleet, volteras_no_retries):
        client.force_login(manager)
        link = new_link(client, fleet)
        follow_return(client, consent_at_sandbox(open_short_link(client, link), approve=True))
        volteras_no_retries.control(vehicle_limit=3)
        client.force_login(manager)
        text = form_errors_after(client, fleet)
        assert "reached its vehicle limit" in text

    def test_validation_refusal_from_the_sandbox(self, client, manager, fleet, volteras_no_retries):
        # A European VIN whose check digit is wrong passes our form with a
        # warning (Europe does not require it); the sandbox, like Volteras', refuses it.
        good = make_vin(9, make="VOLKSWAGEN")
        bad = good[:8] + ("0" if good[8] != "0" else "1") + good[9:]
        client.force_login(manager)
        text = form_errors_after(client, fleet, vin=bad)
        assert "Volteras refused the link&#x27;s options: vin:" in text

    def test_server_down(self, client, manager, fleet, volteras_no_retries):
        # A 5xx on a POST may have been applied (the contract's README): the
        # manager is told so, not that nothing happened.
        volteras_no_retries.control(faults=[{"kind": "error", "path_prefix": "/v1/accounts"}])
        client.force_login(manager)
        text = form_errors_after(client, fleet)
        assert "may or may not have done it" in text

    @pytest.mark.parametrize(
        ("code", "status", "expected"),
        [
            ("NOT_PERMITTED", 403, "does not allow your organisation"),
            ("DEVICE_LIMIT_REACHED", 403, "reached its vehicle limit"),
            ("UNSUPPORTED_OEM", 400, "cannot connect one of the chosen makes"),
            ("REQUEST_VALIDATION_ERROR", 422, "Volteras refused the link&#x27;s options"),
        ],
    )
    def test_refusals_at_the_edge(
        self, client, manager, fleet, settings, monkeypatch, code, status, expected
    ):
        def answer(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/oauth2/token":
                return httpx.Response(
                    200,
                    json={
                        "access_token": "t",
                        "token_type": "Bearer",
                        "expires_in": 3600,
                        "refresh_token": "r",
                    },
                )
            assert request.url.path == "/v1/accounts:connect"
            assert json.loads(request.content)["scopes"] == ["vehicle:all"]
            return httpx.Response(
                status,
                json={
                    "requestId": "req-42",
                    "timestamp": "2026-01-01T00:00:00Z",
                    "error": code,
                    "message": "scopes: not in your plan",
                    "data": {},
                },
            )

        client_ = VolterasClient(
            "https://volteras.test",
            "id",
            "secret",
            max_retries=0,
            transport=httpx.MockTransport(answer),
        )
        monkeypatch.setattr(consent_links, "get_client", lambda: client_)
        client.force_login(manager)
        text = form_errors_after(client, fleet)
        assert expected in text
        assert "Volteras request req-42" in text


def form_errors_after(client, fleet, **fields) -> str:
    """Post a valid form; Volteras' refusal comes back as a form error (400)."""
    data = {**FORM, "country_code": "GB", "region": "EUROPE", **fields}
    before = ConsentLink.objects.count()
    response = client.post(reverse("consent_link_new", args=[fleet.slug]), data)
    assert response.status_code == 400, response.status_code
    assert ConsentLink.objects.count() == before
    text = response.content.decode()
    assert 'class="message error" role="alert"' in text
    return text
