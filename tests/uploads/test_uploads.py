"""Upload, validation preview, submission into batches, the live table, export."""

import csv
import io
import math
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from connections.models import ConnectBatch, Fleet, Upload, UploadSummary, VinEntry, VinStatus
from connections.models.summaries import count_groups, entry_groups
from connections.uploads.forms import apply_filters
from connections.uploads.reading import read_upload
from connections.uploads.submission import create_upload, submit
from connections.web.access import READ_ONLY
from tests.factories import make_vin, stored_link
from tests.permissions import assert_access

ROOT = Path(__file__).resolve().parents[2]
DEMO_CSV = ROOT / "docs" / "demo-vins.csv"


def upload_text(client, fleet, text: str, **extra):
    return client.post(
        reverse("upload_new", args=[fleet.slug]), {"text": text, **extra}, follow=False
    )


@pytest.fixture
def demo_upload(client, manager, fleet) -> Upload:
    client.force_login(manager)
    with DEMO_CSV.open("rb") as handle:
        response = client.post(
            reverse("upload_new", args=[fleet.slug]),
            {"file": SimpleUploadedFile("demo-vins.csv", handle.read(), "text/csv")},
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    return Upload.objects.get()


class TestUploadForm:
    def test_page_matrix(self, client, users, fleet):
        # Support staff read every fleet but do not upload to one (issue 2's roles).
        url = reverse("upload_new", args=[fleet.slug])
        assert_access(client, url, users, support=403, forbidden_says=READ_ONLY)

    def test_support_cannot_upload(self, client, support, fleet):
        client.force_login(support)
        assert upload_text(client, fleet, make_vin(1)).status_code == 403
        assert not Upload.objects.exists()

    def test_outsider_cannot_post_to_another_fleet(self, client, outsider, fleet):
        client.force_login(outsider)
        assert upload_text(client, fleet, make_vin(1)).status_code == 404
        assert not Upload.objects.exists()

    def test_csv_upload_redirects_to_preview(self, demo_upload):
        assert demo_upload.state == Upload.State.DRAFT
        assert demo_upload.source_name == "demo-vins.csv"
        assert demo_upload.entries.count() > 20

    def test_pasted_text(self, client, manager, fleet):
        client.force_login(manager)
        response = upload_text(client, fleet, f"{make_vin(1)}\n{make_vin(2)},Ford,US\n")
        upload = Upload.objects.get()
        assert response["Location"] == f"/uploads/{upload.pk}/"
        assert list(upload.entries.values_list("status", flat=True)) == ["READY", "READY"]

    def test_nothing_given(self, client, manager, fleet):
        client.force_login(manager)
        response = upload_text(client, fleet, "   ")
        assert response.status_code == 200
        assert "Choose a file or paste some VINs" in response.content.decode()

    def test_file_without_vin_column_is_explained(self, client, manager, fleet):
        client.force_login(manager)
        data = SimpleUploadedFile("x.csv", b"name,colour\nvan,red\n", "text/csv")
        response = client.post(reverse("upload_new", args=[fleet.slug]), {"file": data})
        assert response.status_code == 200
        assert "VIN" in response.content.decode()
        assert not Upload.objects.exists()

    def test_row_limit(self, client, manager, fleet, settings):
        settings.UPLOAD_MAX_ROWS = 3
        client.force_login(manager)
        response = upload_text(client, fleet, "\n".join(make_vin(i) for i in range(5)))
        assert response.status_code == 200
        assert "more than 3 rows" in response.content.decode()
        assert not Upload.objects.exists()

    def test_size_limit(self, client, manager, fleet, settings):
        settings.UPLOAD_MAX_BYTES = 100
        client.force_login(manager)
        data = SimpleUploadedFile("big.csv", b"vin\n" + b"1FA6P8TH4J5100001\n" * 20)
        response = client.post(reverse("upload_new", args=[fleet.slug]), {"file": data})
        assert response.status_code == 200
        assert "the limit is" in response.content.decode()


class TestPreview:
    def test_matrix(self, client, users, fleet, manager):
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        assert_access(client, reverse("upload_detail", args=[upload.pk]), users)
        assert_access(client, reverse("upload_export", args=[upload.pk]), users)
        assert_access(client, reverse("upload_invalid_csv", args=[upload.pk]), users)

    def test_rows_are_classified_with_reasons(self, client, demo_upload):
        entries = {e.line_number: e for e in demo_upload.entries.all()}
        # line 24 repeats line 2's VIN
        assert entries[24].status == VinStatus.SKIPPED
        assert "duplicate of line 2" in entries[24].problems[0]
        # an O in the VIN
        assert entries[23].status == VinStatus.INVALID
        # the magic sandbox VINs are sendable
        magic = [e for e in entries.values() if e.vin.startswith(("PERR0R11", "1NC0MP11"))]
        assert magic and all(e.status == VinStatus.READY for e in magic)
        body = client.get(demo_upload.get_absolute_url()).content.decode()
        assert "Nothing has been sent yet" in body
        assert "duplicate of line 2" in body

    def test_rows_valid_with_a_warning_are_marked_and_counted(self, client, demo_upload):
        response = client.get(demo_upload.get_absolute_url())
        assert response.context["summary"]["warnings"] == 1
        body = response.content.decode()
        count = body.split('id="warning-count"')[1].split("</li>")[0]
        assert "Valid, with a warning</span> 1 " in count

        def row(line):
            entry = demo_upload.entries.get(line_number=line)
            return body.split(f'id="entry-{entry.pk}"')[1].split("</tr>")[0]

        # line 25: Audi written on a BMW VIN; line 2: valid without a warning
        assert '<span class="badge warn">Valid, with a warning</span>' in row(25)
        assert "Valid, with a warning" not in row(2)
        submit(demo_upload, demo_upload.created_by)
        body = client.get(demo_upload.get_absolute_url()).content.decode()
        assert "Valid, with a warning" not in body

    def test_filters_and_search(self, client, demo_upload):
        url = demo_upload.get_absolute_url()
        invalid = client.get(url, {"status": "INVALID"}).context["page"]
        assert invalid.paginator.count == demo_upload.entries.filter(status="INVALID").count()
        found = client.get(url, {"q": "wvgzzz-e29mp012345"}).context["page"]
        assert {e.vin for e in found} == {"WVGZZZE29MP012345"}
        by_plate = client.get(url, {"q": "LD71"}).context["page"]
        assert [e.make for e in by_plate] == ["BMW"]
        ordered = client.get(url, {"sort": "-vin"}).context["page"]
        vins = [e.vin for e in ordered]
        assert vins == sorted(vins, reverse=True)

    def test_remove_row_before_submission(self, client, demo_upload):
        entry = demo_upload.entries.first()
        response = client.post(reverse("entry_remove", args=[demo_upload.pk, entry.pk]))
        assert response.status_code == 302
        assert not VinEntry.objects.filter(pk=entry.pk).exists()

    def test_remove_row_matrix(self, client, users, demo_upload):
        entries = list(demo_upload.entries.order_by("line_number")[:2])
        url = reverse("entry_remove", args=[demo_upload.pk, entries[0].pk])
        assert_access(
            client, url, users, member=302, support=403, admin=404, method="post",
            forbidden_says=READ_ONLY,
        )  # fmt: skip
        # The manager removed it; support could not have.
        assert not VinEntry.objects.filter(pk=entries[0].pk).exists()
        url = reverse("entry_remove", args=[demo_upload.pk, entries[1].pk])
        client.force_login(users["support"])
        assert client.post(url).status_code == 403
        assert VinEntry.objects.filter(pk=entries[1].pk).exists()

    def test_invalid_rows_download(self, client, demo_upload):
        response = client.get(reverse("upload_invalid_csv", args=[demo_upload.pk]))
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        invalid = demo_upload.entries.filter(status="INVALID").count()
        assert invalid >= 2
        assert len(rows) == invalid + 1
        assert "problem" in [c.lower() for c in rows[0]]


class TestSubmit:
    def test_batches_of_100(self, client, manager, fleet, django_capture_on_commit_callbacks):
        client.force_login(manager)
        n = 250
        upload_text(client, fleet, "\n".join(make_vin(i) for i in range(n)))
        upload = Upload.objects.get()
        from django_tasks_db.models import DBTaskResult

        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("upload_submit", args=[upload.pk]))
        assert response.status_code == 302
        batches = list(ConnectBatch.objects.filter(upload=upload).order_by("number"))
        assert len(batches) == math.ceil(n / 100)
        assert [b.entries.count() for b in batches] == [100, 100, 50]
        assert upload.entries.filter(status=VinStatus.SUBMITTING).count() == n
        assert DBTaskResult.objects.filter(task_path__endswith="send_batch").count() == 3
        upload.refresh_from_db()
        assert upload.state == Upload.State.SUBMITTED
        # A second confirmation (double click, second tab) sends nothing more.
        client.post(reverse("upload_submit", args=[upload.pk]))
        assert ConnectBatch.objects.filter(upload=upload).count() == 3

    def test_submit_needs_post_and_visibility(self, client, users, fleet, manager):
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        url = reverse("upload_submit", args=[upload.pk])
        client.force_login(users["outsider"])
        assert client.post(url).status_code == 404
        client.force_login(manager)
        assert client.get(url).status_code == 405
        assert not ConnectBatch.objects.exists()

    def test_action_urls_answer_outsiders_404_whatever_the_method(
        self, client, users, fleet, manager
    ):
        """A GET of another fleet's action URL gets the 404 its pages get; a
        405 would confirm the upload or link exists. Members get the 405."""
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        entry = upload.entries.get()
        link = stored_link(fleet)
        urls = [
            reverse("upload_submit", args=[upload.pk]),
            reverse("upload_check_eligibility", args=[upload.pk]),
            reverse("entry_remove", args=[upload.pk, entry.pk]),
            reverse("entry_retry", args=[upload.pk, entry.pk]),
            reverse("upload_consent_links", args=[upload.pk]),
            reverse("consent_link_revoke", args=[fleet.slug, link.pk]),
            reverse("consent_link_reissue", args=[fleet.slug, link.pk]),
            reverse("consent_link_reissue_expiring", args=[fleet.slug]),
            reverse("consent_account_refresh", args=[fleet.slug]),
        ]
        for who, expected in (("outsider", 404), ("manager", 405)):
            client.force_login(users[who])
            assert [client.get(url).status_code for url in urls] == [expected] * len(urls), who

    def test_support_cannot_submit(self, client, users, fleet, manager):
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        url = reverse("upload_submit", args=[upload.pk])
        client.force_login(users["support"])
        response = client.post(url)
        assert response.status_code == 403
        assert "Support staff can read every fleet but not change it" in response.content.decode()
        upload.refresh_from_db()
        assert upload.state == Upload.State.DRAFT and not ConnectBatch.objects.exists()
        assert_access(client, url, users, member=302, support=403, admin=302, method="post")

    def test_support_is_not_offered_the_changes_it_cannot_make(self, client, users, fleet):
        """Support reads the preview but is offered no Send, eligibility check,
        Remove or Upload more (the views would answer 403); managers are."""
        upload = create_upload(fleet, users["manager"], read_upload(make_vin(1)))
        offers = ("Send 1 valid VIN", "Check eligibility first", "Remove line", "Upload more")
        for who, offered in (("manager", True), ("admin", True), ("support", False)):
            client.force_login(users[who])
            page = client.get(upload.get_absolute_url())
            assert page.status_code == 200
            body = page.content.decode()
            assert [offer in body for offer in offers] == [offered] * len(offers), who
        client.force_login(users["support"])
        url = reverse("upload_check_eligibility", args=[upload.pk])
        assert client.post(url).status_code == 403

    def test_existing_vins_are_skipped_unless_asked(self, client, manager, fleet):
        first = create_upload(fleet, manager, read_upload(make_vin(7)))
        submit(first, manager)
        again = create_upload(fleet, manager, read_upload(make_vin(7)))
        assert again.entries.get().status == VinStatus.SKIPPED
        forced = create_upload(fleet, manager, read_upload(make_vin(7)), include_existing=True)
        assert forced.entries.get().status == VinStatus.READY
        submit(forced, manager)
        assert VinEntry.objects.get(upload=first).superseded


class TestLiveTable:
    def test_unchanged_poll_answers_204(self, client, manager, fleet):
        client.force_login(manager)
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        submit(upload, manager)
        upload.refresh_from_db()
        url = reverse("upload_rows", args=[upload.pk])
        same = client.get(url, {"v": upload.version}, headers={"HX-Request": "true"})
        assert same.status_code == 204
        assert same.content == b""
        changed = client.get(url, {"v": upload.version - 1}, headers={"HX-Request": "true"})
        assert changed.status_code == 200
        assert 'id="live"' in changed.content.decode()
        assert "every 2s" in changed.content.decode()

    def test_consent_needs_appear_with_the_poll_that_brings_them(self, client, manager, fleet):
        """When VINs come back needing consent, the next poll counts them and
        brings their tick boxes; the bulk actions themselves sit outside the
        polled part (a refresh never takes a control from under the user)."""
        client.force_login(manager)
        upload = create_upload(fleet, manager, read_upload(f"{make_vin(1)}\n{make_vin(2)}"))
        submit(upload, manager)
        url = reverse("upload_rows", args=[upload.pk])
        upload.refresh_from_db()
        first = client.get(url, {"v": upload.version - 1}, headers={"HX-Request": "true"})
        assert "needs the owner's consent" not in first.content.decode()
        upload.entries.order_by("line_number").first().observe(
            VinStatus.CONNECTION_REQUIRED, "poll"
        )
        upload.refresh_from_db()
        later = client.get(url, {"v": upload.version - 1}, headers={"HX-Request": "true"})
        body = later.content.decode()
        assert "1 VIN needs the owner's consent" in body
        assert 'form="consent-pick"' in body and 'id="consent-pick"' not in body
        page = client.get(upload.get_absolute_url()).content.decode()
        assert 'id="consent-pick"' in page
        # No link made yet: the mail-merge CSV would be empty, so it is not offered.
        assert "Consent links CSV" not in page

    def test_unchanged_poll_is_one_query_past_the_session(
        self, client, manager, fleet, django_assert_num_queries
    ):
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        submit(upload, manager)
        upload.refresh_from_db()
        client.force_login(manager)
        url = reverse("upload_rows", args=[upload.pk])
        # session, user, then the version (with the visibility check in the same query)
        with django_assert_num_queries(3):
            response = client.get(url, {"v": upload.version}, headers={"HX-Request": "true"})
        assert response.status_code == 204

    def test_poll_version_check_sees_what_visible_to_sees(self, users, manager, fleet, other_fleet):
        """The poll's read of the upload (`polled_upload`, one statement composed
        per upload and user) sees what `Fleet.objects.visible_to` sees."""
        from django.contrib.auth.models import AnonymousUser, Group, User

        from connections.uploads.polled import polled_upload

        ours = create_upload(fleet, manager, read_upload(make_vin(1)))
        theirs = create_upload(other_fleet, manager, read_upload(make_vin(2)))
        Upload.objects.filter(pk=theirs.pk).update(version=5)
        inactive = User.objects.create_user("gone", is_active=False)
        inactive.groups.add(Group.objects.get_or_create(name="Support")[0])
        member_of_both = User.objects.create_user("both")
        member_of_both.memberships.create(fleet=fleet)
        member_of_both.memberships.create(fleet=other_fleet)
        everyone = {
            **users,
            "inactive": inactive,
            "both": member_of_both,
            "anonymous": AnonymousUser(),
        }
        seen = {}
        for name, user in everyone.items():
            for upload_id in (ours.pk, theirs.pk, theirs.pk + 1000):
                expected = (
                    Upload.objects.filter(pk=upload_id, fleet__in=Fleet.objects.visible_to(user))
                    .values_list("version", flat=True)
                    .first()
                )
                polled = polled_upload(user, upload_id)
                assert (polled and polled.version) == expected, (name, upload_id)
                if polled is not None:
                    assert polled.upload().pk == upload_id
                seen[name, upload_id] = expected
        # The roles do differ, so the comparison above means something.
        assert seen["manager", theirs.pk] is None and seen["admin", theirs.pk] == 5
        assert seen["support", theirs.pk] == 5 and seen["outsider", ours.pk] is None
        assert seen["both", theirs.pk] == 5 and seen["inactive", ours.pk] is None

    def test_unchanged_poll_of_another_fleet_is_404(self, client, outsider, manager, fleet):
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        client.force_login(outsider)
        response = client.get(
            reverse("upload_rows", args=[upload.pk]),
            {"v": upload.version},
            headers={"HX-Request": "true"},
        )
        assert response.status_code == 404

    def test_settled_upload_stops_polling(self, client, manager, fleet):
        client.force_login(manager)
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        submit(upload, manager)
        entry = upload.entries.get()
        entry.observe(VinStatus.CONNECTED, "poll", vehicle_id="veh-1")
        response = client.get(
            reverse("upload_rows", args=[upload.pk]), {"v": 0}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 286
        # The table's fast poll is gone; only the slow watcher (its own element) remains.
        body = response.content.decode()
        assert body.count("hx-trigger") == 1
        assert 'id="watch"' in body and 'every 30s" data-hidden-every="60"' in body

    @pytest.mark.parametrize(
        ("status", "shown"),
        [(VinStatus.DISCONNECTED, "Disconnected"), (VinStatus.CONNECTED, "Connected")],
    )
    def test_settled_upload_shows_a_later_webhook_change(
        self, client, manager, fleet, status, shown
    ):
        """Every VIN final (286), then a webhook disconnects one or an owner consents:
        the watcher's next poll renders the table again; before that it costs a 204."""
        client.force_login(manager)
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        submit(upload, manager)
        entry = upload.entries.get()
        first = VinStatus.CONNECTED if status == VinStatus.DISCONNECTED else (
            VinStatus.CONNECTION_REQUIRED
        )  # fmt: skip
        entry.observe(first, "poll", vehicle_id="veh-1" if first == VinStatus.CONNECTED else "")
        url = reverse("upload_rows", args=[upload.pk])
        settled = client.get(url, {"v": 0}, headers={"HX-Request": "true"})
        assert settled.status_code == 286
        # The rows partial renders no sub-template now, so the test client captures
        # no context: the version rendered is the upload's current one.
        upload.refresh_from_db()
        watch = upload.version
        assert f"v={watch}" in settled.content.decode()
        unchanged = client.get(url, {"v": watch}, headers={"HX-Request": "true"})
        assert (unchanged.status_code, unchanged.content) == (204, b"")

        entry.refresh_from_db()
        entry.observe(status, "webhook", vehicle_id="veh-1")
        changed = client.get(url, {"v": watch}, headers={"HX-Request": "true"})
        assert changed.status_code == 286  # still all final: the watcher carries on
        row = changed.content.decode().split(f'id="entry-{entry.pk}"')[1].split("</tr>")[0]
        assert f">{shown}<" in row
        assert f"v={watch + 1}" in changed.content.decode()

    def test_watcher_of_a_settled_upload_resumes_fast_polling(self, client, manager, fleet):
        client.force_login(manager)
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        submit(upload, manager)
        entry = upload.entries.get()
        entry.observe(VinStatus.ERROR, "poll", error_codes=["OEM_VEHICLE_OFFLINE"])
        upload.refresh_from_db()
        watch = upload.version
        entry.observe(VinStatus.SUBMITTING, "manual")  # a retry
        response = client.get(
            reverse("upload_rows", args=[upload.pk]), {"v": watch}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200
        body = response.content.decode()
        assert "every 2s" in body and 'id="watch"' not in body

    def test_draft_and_live_uploads_have_no_watcher(self, client, manager, fleet):
        client.force_login(manager)
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        assert 'id="watch"' not in client.get(upload.get_absolute_url()).content.decode()
        submit(upload, manager)
        assert 'id="watch"' not in client.get(upload.get_absolute_url()).content.decode()

    def test_only_pending_left_polls_slowly(self, client, manager, fleet):
        client.force_login(manager)
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        submit(upload, manager)
        upload.entries.get().observe(VinStatus.PENDING, "poll")
        body = client.get(upload.get_absolute_url()).content.decode()
        assert "every 30s" in body
        assert "Only pending VINs remain" in body

    def test_rows_matrix(self, client, users, fleet, manager):
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        # A draft that is not being checked has nothing to poll for: 286 stops htmx.
        url = reverse("upload_rows", args=[upload.pk])
        assert_access(client, url, users, member=286, support=286, admin=286)


class TestStoredCounts:
    """The live table's counts are stored per upload version (models_summary)."""

    def submitted(self, fleet, manager, n: int, first: int = 1) -> Upload:
        text = "\n".join(make_vin(i) for i in range(first, first + n))
        upload = create_upload(fleet, manager, read_upload(text))
        submit(upload, manager)
        upload.refresh_from_db()
        return upload

    def test_stored_counts_equal_a_fresh_count_after_observations(self, manager, fleet):
        upload = self.submitted(fleet, manager, 6)
        assert entry_groups(upload) == count_groups(upload)
        assert UploadSummary.objects.get(upload=upload).version == upload.version
        first, second, *_ = upload.entries.order_by("line_number")
        first.observe(VinStatus.CONNECTED, "poll", vehicle_id="veh-1")
        second.observe(VinStatus.ERROR, "webhook", error_codes=["OEM_VEHICLE_OFFLINE"])
        upload.refresh_from_db()
        groups = entry_groups(upload)
        assert groups == count_groups(upload)
        assert groups.counts == {"CONNECTED": 1, "ERROR": 1, "SUBMITTING": 4}
        assert groups.errors == {"OEM_VEHICLE_OFFLINE"}
        assert UploadSummary.objects.get(upload=upload).version == upload.version

    def test_counts_of_another_version_are_never_shown(self, client, manager, fleet):
        upload = self.submitted(fleet, manager, 3)
        # A stored count of an older version (here: a wrong one) is not used.
        UploadSummary.objects.create(
            upload=upload,
            version=upload.version - 1,
            groups=[["CONNECTED", "", "FORD", "valid", 99]],
        )
        client.force_login(manager)
        body = client.get(upload.get_absolute_url()).content.decode()
        assert "<strong>0</strong> of 3 VINs" in body
        assert UploadSummary.objects.get(upload=upload).groups == [
            list(row) for row in count_groups(upload).rows
        ]

    def test_removing_a_row_recounts(self, client, manager, fleet):
        upload = create_upload(fleet, manager, read_upload(f"{make_vin(1)}\nBAD"))
        client.force_login(manager)
        body = client.get(upload.get_absolute_url()).content.decode()
        # Nothing is sent yet: the rows are counted as checked, with no "final result".
        assert "2 rows checked: <strong>1</strong> ready to send, 1 invalid." in body
        assert "final result" not in body
        invalid = upload.entries.get(status=VinStatus.INVALID)
        client.post(reverse("entry_remove", args=[upload.pk, invalid.pk]))
        body = client.get(upload.get_absolute_url()).content.decode()
        assert "1 row checked: <strong>1</strong> ready to send." in body

    @pytest.mark.parametrize(
        "filters",
        [{}, {"status": "ERROR"}, {"make": "FORD"}, {"status": "SUBMITTING", "make": "FORD"},
         {"error": "OEM_VEHICLE_OFFLINE"}, {"q": make_vin(3)[-6:]}],
    )  # fmt: skip
    def test_pager_total_is_the_filtered_count(self, client, manager, fleet, filters):
        upload = self.submitted(fleet, manager, 205)
        for entry in upload.entries.order_by("line_number")[:3]:
            entry.observe(VinStatus.ERROR, "poll", error_codes=["OEM_VEHICLE_OFFLINE"])
        client.force_login(manager)
        response = client.get(upload.get_absolute_url(), filters)
        page = response.context["page"]
        form = response.context["form"]
        assert form.is_valid()
        counted = apply_filters(upload.entries.all(), form.cleaned_data).count()
        assert page.paginator.count == counted

    def test_changed_poll_queries_do_not_grow_with_the_rows(self, client, manager, fleet):
        from connections.models import ConsentLink

        client.force_login(manager)
        counted = []
        for n, first in ((2, 1), (120, 1000)):
            upload = self.submitted(fleet, manager, n, first)
            # All but the first row wait for consent (the first keeps the table
            # polling), half with a link already sent: the rows' link cells must
            # not cost a query each.
            for i, entry in enumerate(upload.entries.order_by("line_number")):
                if not i:
                    continue
                entry.observe(VinStatus.CONNECTION_REQUIRED, "poll")
                if i % 2:
                    ConsentLink.objects.create(
                        fleet=fleet,
                        vin_entry=entry,
                        vin=entry.vin,
                        authentication_url="https://example.test/consent",
                        expires_at=timezone.now() + timedelta(days=3),
                    )
            response, queries = changed_poll(client, upload)
            assert response.status_code == 200
            assert response.content.decode().count('<tr id="entry-') == min(n, 100)
            sql = [q["sql"] for q in queries.captured_queries]
            assert not any("COUNT(" in q for q in sql), sql  # neither the scan nor the pager's
            counted.append(len(sql))
        assert counted[0] == counted[1]

    def test_a_drafts_rows_read_no_column_left_unread(self, client, manager, fleet):
        """A row sent whole is built from the columns the table reads, the rest
        deferred: what a draft's rows show (edit and remove buttons, problems,
        warnings, repeated rows, eligibility) must not read one more per row."""
        client.force_login(manager)
        counted = []
        for n, first in ((3, 1), (60, 1000)):
            vins = [make_vin(i) for i in range(first, first + n)]
            # An invalid row, a repeated row, and rows checked for eligibility.
            text = "\n".join([*vins, "NOT-A-VIN", vins[0]])
            upload = create_upload(fleet, manager, read_upload(text))
            upload.entries.filter(validity=VinEntry.Validity.VALID).set_eligibility("ELIGIBLE")
            response, queries = changed_poll(client, upload)
            html = response.content.decode()
            assert html.count('<tr id="entry-') == n + 2
            assert html.count(">Remove</button>") == n + 2
            assert "Open line 1" in html
            assert "Eligible" in html
            counted.append(len(queries.captured_queries))
        assert counted[0] == counted[1]


def changed_poll(client, upload):
    """The live table's poll of a browser one version behind, with its queries
    (a first poll stores the version's counts)."""
    upload.refresh_from_db()
    url = reverse("upload_rows", args=[upload.pk])
    headers = {"HX-Request": "true"}
    client.get(url, {"v": upload.version - 1}, headers=headers)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, {"v": upload.version - 1}, headers=headers)
    return response, queries


class TestFleetPage:
    def stats(self, client, fleet, version):
        url = reverse("fleet_stats", args=[fleet.slug])
        return client.get(url, {"v": version}, headers={"HX-Request": "true"})

    def test_headline_counts_follow_a_webhook(self, client, manager, fleet):
        client.force_login(manager)
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        submit(upload, manager)
        entry = upload.entries.get()
        entry.observe(VinStatus.CONNECTED, "poll", vehicle_id="veh-1")
        page = client.get(fleet.get_absolute_url())
        version = page.context["version"]
        body = page.content.decode()
        assert f'hx-get="{reverse("fleet_stats", args=[fleet.slug])}?v={version}"' in body
        assert 'hx-trigger="every 30s" data-hidden-every="60"' in body
        region = body.split('<div id="fleet-stats"')[1][:200]
        assert 'hx-ext="live"' in region and "aria-live" not in region
        assert page.context["counts"]["connected"] == 1
        unchanged = self.stats(client, fleet, version)
        assert (unchanged.status_code, unchanged.content) == (204, b"")

        entry.refresh_from_db()
        entry.observe(VinStatus.DISCONNECTED, "webhook")
        changed = self.stats(client, fleet, version)
        assert changed.status_code == 200
        body = changed.content.decode()
        assert body.lstrip().startswith('<div id="fleet-stats" hx-ext="live"')
        # Each tile is keyed by what it shows: the browser keeps the unchanged ones.
        assert 'id="tile-connected" data-key="' in body
        # Each tile links to its rows in the fleet's vehicle list.
        assert 'aria-label="0 connected vehicles: list them">0</a>' in body
        assert '?group=needs" aria-label="1 VIN needing action: list them">1</a>' in body
        new_version = fleet.live_version()
        assert new_version != version and f"?v={new_version}" in body
        assert self.stats(client, fleet, new_version).status_code == 204

    def test_uploads_and_links_change_the_version(self, manager, fleet, time_machine):
        before = fleet.live_version()
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        assert fleet.live_version() != before
        before = fleet.live_version()
        submit(upload, manager)
        assert fleet.live_version() != before
        before = fleet.live_version()
        stored_link(fleet)
        assert fleet.live_version() != before
        before = fleet.live_version()
        time_machine.move_to(timezone.now() + timedelta(hours=2))  # the link expired
        assert fleet.live_version() != before

    def test_unchanged_poll_does_not_count_vins(
        self, client, manager, fleet, django_assert_num_queries
    ):
        create_upload(fleet, manager, read_upload(make_vin(1)))
        client.force_login(manager)
        version = fleet.live_version()
        # session, user, the fleet (visibility), uploads' versions, active links
        with django_assert_num_queries(5):
            assert self.stats(client, fleet, version).status_code == 204

    def test_matrix(self, client, users, fleet):
        assert_access(client, reverse("fleet_stats", args=[fleet.slug]), users)


class TestExport:
    def test_columns_and_injection(self, client, manager, fleet):
        client.force_login(manager)
        text = f"vin,make,country,plate\n{make_vin(3)},Ford,US,=HYPERLINK(1)\n"
        upload = create_upload(fleet, manager, read_upload(text, filename="x.csv"))
        entry = upload.entries.get()
        submit(upload, manager)
        entry.refresh_from_db()
        entry.observe(
            VinStatus.ERROR, "poll", error_codes=["OEM_VEHICLE_OFFLINE", "X"],
            message="-offline", action_category="CUSTOMER_ACTION", can_retry=True,
        )  # fmt: skip
        response = client.get(reverse("upload_export", args=[upload.pk]))
        text = b"".join(response.streaming_content).decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == [
            "vin", "make", "country_code", "registration_plate", "status", "error_codes",
            "message", "action_category", "can_retry", "vehicle_id", "updated_at",
        ]  # fmt: skip
        row = dict(zip(rows[0], rows[1], strict=True))
        assert row["status"] == "ERROR"
        assert row["error_codes"] == "OEM_VEHICLE_OFFLINE;X"
        assert row["registration_plate"].startswith("'=")
        assert row["message"].startswith("'-")
        assert row["can_retry"] == "true"

    def test_statuses_in_export(self, client, manager, fleet):
        client.force_login(manager)
        upload = create_upload(fleet, manager, read_upload(f"{make_vin(4)}\nNOTAVIN\n"))
        submit(upload, manager)
        response = client.get(reverse("upload_export", args=[upload.pk]))
        text = b"".join(response.streaming_content).decode("utf-8-sig")
        statuses = sorted(r["status"] for r in csv.DictReader(io.StringIO(text)))
        assert statuses == ["INVALID", "SUBMITTING"]

    def test_unsent_rows_export_as_contract_statuses(self, client, manager, fleet):
        """A draft's ready rows are SUBMITTING (not accepted yet) and its skipped rows
        INVALID (never sent), with the reason in the message: never READY or SKIPPED."""
        client.force_login(manager)
        text = f"{make_vin(5)}\n{make_vin(6)}\n{make_vin(5)}\nNOTAVIN\n"
        upload = create_upload(fleet, manager, read_upload(text))
        response = client.get(reverse("upload_export", args=[upload.pk]))
        text = b"".join(response.streaming_content).decode("utf-8-sig")
        rows = [(r["status"], r["message"]) for r in csv.DictReader(io.StringIO(text))]
        assert [status for status, _ in rows] == ["SUBMITTING", "SUBMITTING", "INVALID", "INVALID"]
        assert rows[0][1] == "Valid, not sent yet: the upload has not been confirmed."
        assert "duplicate of line 1" in rows[2][1]
        assert "characters" in rows[3][1]


class TestEntryPage:
    def test_matrix_and_timeline(self, client, users, fleet, manager):
        upload = create_upload(fleet, manager, read_upload(make_vin(1)))
        submit(upload, manager)
        entry = upload.entries.get()
        url = reverse("entry_detail", args=[entry.pk])
        assert_access(client, url, users)
        client.force_login(manager)
        body = client.get(url).content.decode()
        assert "Confirmed and queued for Volteras" in body


def test_every_submitted_vin_records_where_it_came_from(client, manager, fleet):
    upload = create_upload(fleet, manager, read_upload("\n".join(make_vin(i) for i in range(3))))
    submit(upload, manager)
    from connections.models import VinEvent

    moves = set(VinEvent.objects.values_list("status_from", "status_to"))
    assert moves == {(VinStatus.READY, VinStatus.SUBMITTING)}


def test_stored_rows_keep_every_field(manager, fleet):
    """Both storage paths (COPY on PostgreSQL, bulk INSERT elsewhere) keep the same values."""
    text = (
        "vin,make,country,plate,model,model year,tags\n"
        f"{make_vin(1)},Ford,US,7ABC123,Mustang,2018,depot=Leeds;team=vans\n"
        "NOTAVIN,Ford,US,,,,\n"
    )
    rows = read_upload(text.encode(), filename="x.csv")
    upload = create_upload(fleet, manager, rows)
    good, bad = upload.entries.order_by("line_number")
    assert (good.line_number, good.vin, good.make, good.country_code) == (
        2,
        make_vin(1),
        "FORD",
        "US",
    )
    assert (good.registration_plate, good.model, good.model_year) == ("7ABC123", "Mustang", 2018)
    assert good.tags == [{"key": "depot", "value": "Leeds"}, {"key": "team", "value": "vans"}]
    assert (good.status, good.problems, good.error_codes, good.dismissed) == (
        "READY",
        [],
        [],
        False,
    )
    assert good.fleet_id == fleet.pk and good.upload_id == upload.pk
    assert good.status_changed_at is not None and good.updated_at is not None
    assert good.can_retry is None and good.batch_id is None
    assert bad.status == "INVALID" and bad.problems


@pytest.mark.parametrize("status", [*VinStatus.values, "SOMETHING_NEW"])
def test_status_label_is_the_choice_label(status):
    entry = VinEntry(status=status)
    assert entry.status_label == entry.get_status_display()
