"""The Django admin obeys the portal's rules: a VIN's state, timeline and flags
are read-only there, its actions go through the portal's own methods, and the
internal tables cannot be edited by hand."""

import pytest
from django.urls import reverse

from connections.models import (
    ApiToken,
    Source,
    Upload,
    UploadSummary,
    VinEntry,
    VinEvent,
    VinStatus,
    WorkerHeartbeat,
)

pytestmark = pytest.mark.django_db


def failed_entry(fleet, **fields) -> VinEntry:
    upload = Upload.objects.create(fleet=fleet, state=Upload.State.SUBMITTED)
    values = {
        "upload": upload,
        "fleet": fleet,
        "line_number": 2,
        "vin": "WVWZZZ1JZXW000001",
        "make": "VOLKSWAGEN",
        "validity": VinEntry.Validity.VALID,
        "status": VinStatus.ERROR,
        "error_codes": ["UNKNOWN_ERROR"],
        "error_code": "UNKNOWN_ERROR",
        "can_retry": True,
    }
    values.update(fields)
    return VinEntry.objects.create(**values)


def run_action(client, action: str, entry: VinEntry):
    return client.post(
        reverse("admin:connections_vinentry_changelist"),
        {"action": action, "_selected_action": [entry.pk]},
        follow=True,
    )


def test_a_vins_state_and_flags_cannot_be_edited_in_the_admin(client, admin_user, fleet):
    entry = failed_entry(fleet)
    client.force_login(admin_user)
    page = client.get(reverse("admin:connections_vinentry_change", args=[entry.pk]))
    body = page.content.decode()
    for field in ("status", "error_codes", "dismissed", "escalated", "superseded", "batch"):
        assert f'name="{field}"' not in body, field
    assert 'name="events-0-detail"' not in body  # the timeline is shown, never edited


def test_admin_retry_goes_through_the_portal_rules(client, admin_user, fleet):
    entry = failed_entry(fleet)
    client.force_login(admin_user)
    page = run_action(client, "retry", entry)
    assert "1 VIN sent again." in page.content.decode()
    entry.refresh_from_db()
    assert entry.status == VinStatus.SUBMITTING
    assert entry.batch is not None
    assert entry.events.filter(status_to=VinStatus.SUBMITTING).count() == 1


def test_admin_retry_is_refused_with_the_reason(client, admin_user, fleet):
    entry = failed_entry(fleet, status=VinStatus.CONNECTED, error_codes=[], error_code="")
    client.force_login(admin_user)
    page = run_action(client, "retry", entry)
    assert "This VIN is already connected." in page.content.decode()
    entry.refresh_from_db()
    assert entry.status == VinStatus.CONNECTED


def test_admin_dismiss_and_escalate_record_the_timeline(client, admin_user, fleet):
    entry = failed_entry(fleet)
    client.force_login(admin_user)
    run_action(client, "escalate", entry)
    run_action(client, "dismiss", entry)
    entry.refresh_from_db()
    assert entry.escalated and entry.dismissed
    details = list(entry.events.filter(source=Source.MANUAL).values_list("detail", flat=True))
    assert any(
        d.startswith("Escalated to Volteras: Escalated from the Django admin") for d in details
    )
    assert "Dismissed: Dismissed in the Django admin" in details
    version = Upload.objects.get(pk=entry.upload_id).version
    assert version >= 2  # each action moved the live table's version


def test_read_again_says_when_there_is_no_vehicle_yet(client, admin_user, fleet):
    entry = failed_entry(fleet)
    client.force_login(admin_user)
    page = run_action(client, "read_again", entry)
    assert "0 vehicles read again; 1 VIN has no vehicle at Volteras yet." in (page.content.decode())


@pytest.mark.parametrize(
    "model",
    [ApiToken, WorkerHeartbeat, UploadSummary, VinEvent],
    ids=lambda m: m.__name__,
)
def test_internal_tables_are_read_only(client, admin_user, model):
    client.force_login(admin_user)
    name = model._meta.model_name
    assert client.get(reverse(f"admin:connections_{name}_add")).status_code == 403
    assert client.get(reverse(f"admin:connections_{name}_changelist")).status_code == 200


def test_admin_names_read_right(client, admin_user):
    client.force_login(admin_user)
    body = client.get(reverse("admin:index")).content.decode()
    for name in ("Upload summaries", "VIN events", "VIN entries", "Connect batches"):
        assert name in body, name
