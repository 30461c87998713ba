"""The support workspace without Volteras: who may see it, filters, charts,
CSV export, stuck detection and incident grouping under controlled time, and
the explanation shown for every per-VIN error code in the contract."""

from __future__ import annotations

import csv
import html
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from connections.explanations import STATUS_EXPLANATIONS, explain
from connections.models import Upload, VinEntry, VinEvent, VinStatus
from connections.models.entries import SUPERSEDED_REFUSAL
from connections.support.actions import retry
from connections.support.workspace import incidents, stuck_entries, who_must_act_q
from connections.uploads.submission import submit
from tests.contract import codes_in, per_vin_codes_in_openapi
from tests.factories import add_entry, make_upload, make_vin, uploaded
from tests.permissions import assert_access

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def export_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def mixed(fleet, other_fleet, manager) -> dict[str, VinEntry]:
    """A few VINs in two fleets, in every kind of trouble (and one that is fine)."""
    a, b = make_upload(fleet, manager), make_upload(other_fleet)
    return {
        "offline": add_entry(
            a,
            VinStatus.ERROR,
            line=1,
            codes=["OEM_VEHICLE_OFFLINE"],
            action_category="CUSTOMER_ACTION",
            can_retry=True,
            registration_plate="LD71 XKE",
        ),
        "incompatible": add_entry(
            a,
            VinStatus.INCOMPATIBLE,
            line=2,
            codes=["OEM_VEHICLE_NOT_COMPATIBLE"],
            action_category="CONTACT_SUPPORT",
            make="TESLA",
        ),
        "consent": add_entry(b, VinStatus.CONNECTION_REQUIRED, line=1, make="BMW"),
        "pending": add_entry(b, VinStatus.PENDING, line=2, make="BMW"),
        "connected": add_entry(a, VinStatus.CONNECTED, line=3),
    }


def listed(client, **params) -> str:
    response = client.get(reverse("support_home"), params)
    assert response.status_code == 200
    return response.content.decode()


class TestAccess:
    def test_pages(self, client, users, fleet):
        for name in ("support_home", "support_export", "support_codes"):
            assert_access(client, reverse(name), users, member=404, outsider=404)

    def test_filtered_pages(self, client, users, fleet, mixed):
        url = reverse("support_home") + "?status=ERROR&sort=-age&page=2"
        assert_access(client, url, users, member=404, outsider=404)
        url = reverse("support_export") + "?fleet=demo-fleet"
        assert_access(client, url, users, member=404, outsider=404)

    @pytest.mark.parametrize("action", ["retry", "consent", "escalate", "dismiss"])
    def test_actions(self, client, users, mixed, action):
        entry = mixed["incompatible"]
        data = {"action": action, "entries": [entry.pk], "note": "n", "reason": "r"}
        assert_access(
            client,
            reverse("support_action"),
            users,
            member=404,
            outsider=404,
            support=302,
            admin=302,
            method="post",
            data=data,
        )
        # The manager of its fleet could see the VIN, yet changed nothing.
        entry.refresh_from_db()
        manual = entry.events.filter(actor=users["manager"])
        assert not manual.exists()

    def test_actions_need_post(self, client, users):
        # The role is checked first: a fleet manager's GET is a 404 like every
        # support page, not a 405 that reveals the route.
        url = reverse("support_action")
        assert_access(client, url, users, member=404, outsider=404, support=405, admin=405)

    def test_webhook_process_again_checks_the_role_before_the_method(self, client, users):
        from connections.models import WebhookEvent

        event = WebhookEvent.objects.create(svix_id="msg_x", body="{}")
        url = reverse("webhook_event_process", args=[event.pk])
        assert_access(client, url, users, member=404, outsider=404, support=405, admin=405)

    def test_plain_retry_is_a_troubleshooting_action_support_keeps(self, client, users, mixed):
        entry = mixed["incompatible"]  # refused with its reason: nothing is sent
        url = reverse("entry_retry", args=[entry.upload_id, entry.pk])
        assert_access(client, url, users, member=302, support=302, admin=302, method="post")

    def test_navigation_link_only_for_support(self, client, manager, support, fleet):
        client.force_login(manager)
        assert reverse("support_home") not in client.get(reverse("dashboard")).content.decode()
        client.force_login(support)
        assert reverse("support_home") in client.get(reverse("dashboard")).content.decode()

    def test_entry_page_shows_actions_to_support_only(self, client, manager, support, mixed):
        url = reverse("entry_detail", args=[mixed["offline"].pk])
        client.force_login(manager)
        assert "Support actions" not in client.get(url).content.decode()
        client.force_login(support)
        body = client.get(url).content.decode()
        assert "Support actions" in body
        assert reverse("support_action") in body


class TestWorkspace:
    def test_lists_every_fleet_but_only_what_is_not_connected(self, client, support, mixed):
        client.force_login(support)
        body = listed(client)
        for name in ("offline", "incompatible", "consent", "pending"):
            assert mixed[name].vin in body
        assert mixed["connected"].vin not in body
        assert "Other Fleet" in body and "Demo Fleet" in body

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"fleet": "other-fleet"}, {"consent", "pending"}),
            ({"status": "ERROR"}, {"offline"}),
            ({"error": "OEM_VEHICLE_NOT_COMPATIBLE"}, {"incompatible"}),
            ({"make": "BMW"}, {"consent", "pending"}),
            ({"who": "CUSTOMER_ACTION"}, {"offline", "consent"}),
            ({"who": "CONTACT_SUPPORT"}, {"incompatible"}),
            ({"q": "ld71xke"}, {"offline"}),
            ({"q": "LD71 XKE"}, {"offline"}),
        ],
    )
    def test_filters(self, client, support, mixed, params, expected):
        client.force_login(support)
        body = listed(client, **params)
        shown = {name for name, entry in mixed.items() if f"entry-{entry.pk}" in body}
        assert shown == expected

    def test_search_by_part_of_the_vin(self, client, support, mixed):
        client.force_login(support)
        body = listed(client, q=mixed["pending"].vin[-8:].lower())
        assert f"entry-{mixed['pending'].pk}" in body
        assert f"entry-{mixed['offline'].pk}" not in body

    def test_age_filter_and_sorting(self, client, support, fleet, mixed):
        VinEntry.objects.filter(pk=mixed["incompatible"].pk).update(
            status_changed_at=datetime.now(UTC) - timedelta(days=4)
        )
        client.force_login(support)
        body = listed(client, age="3d")
        assert f"entry-{mixed['incompatible'].pk}" in body
        assert f"entry-{mixed['offline'].pk}" not in body
        oldest_first = listed(client, sort="-age")
        assert oldest_first.index(mixed["incompatible"].vin) < oldest_first.index(
            mixed["offline"].vin
        )
        newest_first = listed(client, sort="age")
        assert newest_first.index(mixed["incompatible"].vin) > newest_first.index(
            mixed["offline"].vin
        )
        by_fleet = listed(client, sort="-fleet")
        assert by_fleet.index(mixed["consent"].vin) < by_fleet.index(mixed["offline"].vin)

    def test_a_bad_filter_is_ignored_not_an_error(self, client, support, mixed):
        client.force_login(support)
        body = listed(client, status="NOPE", sort="drop table")
        assert mixed["offline"].vin in body

    def test_dismissed_and_escalated_views(self, client, support, mixed):
        VinEntry.objects.filter(pk=mixed["offline"].pk).update(dismissed=True)
        VinEntry.objects.filter(pk=mixed["pending"].pk).update(escalated=True)
        client.force_login(support)
        assert f"entry-{mixed['offline'].pk}" not in listed(client)
        shown = listed(client, state="dismissed")
        assert f"entry-{mixed['offline'].pk}" in shown
        assert f"entry-{mixed['pending'].pk}" not in shown
        shown = listed(client, state="escalated")
        assert f"entry-{mixed['pending'].pk}" in shown
        assert f"entry-{mixed['incompatible'].pk}" not in shown

    def test_paginated_by_100_in_a_fixed_number_of_queries(
        self, client, support, fleet, django_assert_max_num_queries
    ):
        upload = make_upload(fleet)
        VinEntry.objects.bulk_create(
            VinEntry(
                upload=upload,
                fleet=fleet,
                line_number=i,
                vin=make_vin(i),
                make="FORD",
                validity="valid",
                status=VinStatus.ERROR,
                error_codes=["OEM_VEHICLE_OFFLINE"],
                error_code="OEM_VEHICLE_OFFLINE",
            )
            for i in range(1, 251)
        )
        client.force_login(support)
        with django_assert_max_num_queries(20):
            first = listed(client)
        assert first.count('name="entries"') == 100
        assert "Page 1 of 3 (250 VINs)" in first
        last = listed(client, page=3)
        assert last.count('name="entries"') == 50

    def test_charts_count_by_code_and_make(self, client, support, fleet, mixed):
        upload = make_upload(fleet)
        for line in range(10, 13):
            add_entry(upload, VinStatus.ERROR, line=line, codes=["OEM_VEHICLE_OFFLINE"], make="KIA")
        client.force_login(support)
        response = client.get(reverse("support_home"))
        charts = response.context["code_chart"], response.context["make_chart"]
        by_code = {bar.label: bar.count for bar in charts[0].bars}
        by_make = {bar.label: bar.count for bar in charts[1].bars}
        assert by_code == {"OEM_VEHICLE_OFFLINE": 4, "OEM_VEHICLE_NOT_COMPATIBLE": 1}
        assert by_make == {"Kia": 3, "Ford": 1, "Tesla": 1, "BMW": 2}
        body = response.content.decode()
        assert body.count("<svg") == 2
        assert "<title>OEM_VEHICLE_OFFLINE: 4 VINs</title>" in body
        assert 'href="?error=OEM_VEHICLE_OFFLINE"' in body
        # The longest bar is the widest; the counts follow the filters.
        widths = {bar.label: bar.width for bar in charts[0].bars}
        assert widths["OEM_VEHICLE_OFFLINE"] > widths["OEM_VEHICLE_NOT_COMPATIBLE"]
        filtered = client.get(reverse("support_home"), {"make": "KIA"}).context["code_chart"]
        assert [(bar.label, bar.count) for bar in filtered.bars] == [("OEM_VEHICLE_OFFLINE", 3)]

    def test_links_to_webhook_log(self, client, support):
        client.force_login(support)
        assert reverse("webhook_events") in listed(client)


class TestExport:
    def test_exports_the_filtered_view(self, client, support, mixed, fleet):
        upload = make_upload(fleet)
        add_entry(upload, VinStatus.ERROR, line=1, codes=["OEM_VEHICLE_OFFLINE"], message="=cmd|x")
        client.force_login(support)
        rows = export_rows(client.get(reverse("support_export"), {"status": "ERROR"}))
        assert sorted(r["vin"] for r in rows) == sorted(
            [mixed["offline"].vin, upload.entries.get().vin]
        )
        first = next(r for r in rows if r["vin"] == mixed["offline"].vin)
        x = explain("OEM_VEHICLE_OFFLINE")
        assert first["fleet"] == "demo-fleet"
        assert first["error_codes"] == "OEM_VEHICLE_OFFLINE"
        assert first["who_must_act"] == "Customer action: the vehicle's driver"
        assert first["explanation"] == x.explanation
        assert first["next_step"] == x.next_step
        assert first["retry_helps"] == "true"
        assert first["can_retry"] == "true"
        assert first["registration_plate"] == "LD71 XKE"
        assert first["portal_url"] == reverse("entry_detail", args=[mixed["offline"].pk])
        injected = next(r for r in rows if r["vin"] != mixed["offline"].vin)
        assert injected["message"] == "'=cmd|x"

    def test_export_covers_every_page(self, client, support, fleet):
        upload = make_upload(fleet)
        VinEntry.objects.bulk_create(
            VinEntry(
                upload=upload,
                fleet=fleet,
                line_number=i,
                vin=make_vin(i),
                validity="valid",
                status=VinStatus.PENDING,
            )
            for i in range(1, 151)
        )
        client.force_login(support)
        rows = export_rows(client.get(reverse("support_export")))
        assert len(rows) == 150
        assert {r["status"] for r in rows} == {"PENDING"}


class TestStuck:
    def test_per_make_thresholds(self, client, support, fleet, settings):
        settings.SUPPORT_STUCK_HOURS = 48
        settings.SUPPORT_STUCK_HOURS_BY_MAKE = {"BMW": 72, "TESLA": 24, "Mercedes-Benz": 10}
        with time_machine.travel(NOW - timedelta(hours=50), tick=False):
            upload = make_upload(fleet)
            bmw = add_entry(upload, VinStatus.PENDING, line=1, make="BMW")
            tesla = add_entry(upload, VinStatus.PROCESSING, line=2, make="TESLA")
            ford = add_entry(upload, VinStatus.PENDING, line=3, make="FORD")
            merc = add_entry(upload, VinStatus.PENDING, line=4, make="MERCEDES BENZ")
            failed = add_entry(upload, VinStatus.ERROR, line=5, make="FORD", codes=["X"])
        with time_machine.travel(NOW - timedelta(hours=30), tick=False):
            young_ford = add_entry(upload, VinStatus.PENDING, line=6, make="FORD")
        with time_machine.travel(NOW, tick=False):
            stuck = set(stuck_entries())
            assert stuck == {tesla, ford, merc}
            assert bmw not in stuck and young_ford not in stuck and failed not in stuck
            client.force_login(support)
            response = client.get(reverse("support_home"))
            body = response.content.decode()
            assert response.context["stuck_count"] == 3
            assert "BMW 72 h" in body and "48 h for any make" in body
            section = body[
                body.index('id="stuck"') : body.index("</table>", body.index('id="stuck"'))
            ]
            assert ford.vin in section and tesla.vin in section
            assert bmw.vin not in section
            assert "2\xa0days, 2\xa0hours" in section  # the age, as a person reads it
            filtered = listed(client, age="stuck")
            assert f"entry-{ford.pk}" in filtered and f"entry-{bmw.pk}" not in filtered
        # Three days on, the BMW is stuck too.
        with time_machine.travel(NOW + timedelta(hours=23), tick=False):
            assert bmw in set(stuck_entries())

    def test_the_clock_runs_from_submission_not_the_last_step(self, fleet, settings):
        """PROCESSING -> PENDING is progress of the same attempt: it does not
        restart the time a VIN has been on its way."""
        settings.SUPPORT_STUCK_HOURS = 48
        settings.SUPPORT_STUCK_HOURS_BY_MAKE = {}
        with time_machine.travel(NOW - timedelta(hours=50), tick=False):
            upload = make_upload(fleet)
            entry = add_entry(upload, VinStatus.PROCESSING, line=1, make="FORD")
            VinEntry.objects.filter(pk=entry.pk).update(submitted_at=timezone.now())
        with time_machine.travel(NOW - timedelta(hours=1), tick=False):
            VinEntry.objects.get(pk=entry.pk).observe(VinStatus.PENDING, "poll")
        with time_machine.travel(NOW, tick=False):
            entry.refresh_from_db()
            assert entry.is_stuck()
            assert set(stuck_entries()) == {entry}
            assert "for 2\xa0days, 2\xa0hours" in entry.retry_refusal()

    def test_settings_parse_make_thresholds(self, monkeypatch):
        from django.core.exceptions import ImproperlyConfigured

        from fleet_portal.settings import env_int_map

        monkeypatch.setenv("X_MAP", "bmw=72, Tesla=24")
        assert env_int_map("X_MAP") == {"BMW": 72, "TESLA": 24}
        monkeypatch.setenv("X_MAP", "BMW=soon")
        with pytest.raises(ImproperlyConfigured, match="X_MAP"):
            env_int_map("X_MAP")
        monkeypatch.delenv("X_MAP")
        assert env_int_map("X_MAP") == {}


class TestIncidents:
    def test_same_code_on_one_make_within_the_window(self, client, support, fleet, other_fleet):
        settings_min, window = 4, timedelta(hours=6)
        a, b = make_upload(fleet), make_upload(other_fleet)

        def fail(upload, line, make="BMW", code="OEM_VEHICLE_OFFLINE"):
            return add_entry(upload, VinStatus.ERROR, line=line, make=make, codes=[code])

        with time_machine.travel(NOW - timedelta(hours=10), tick=False):
            old = [fail(a, 1), fail(a, 2)]  # outside the window
        with time_machine.travel(NOW - timedelta(hours=2), tick=False):
            recent = [fail(a, 3), fail(b, 1), fail(b, 2)]
            fail(a, 4, make="KIA")  # another make
            fail(a, 5, code="OEM_VEHICLE_UPDATE_REQUIRED")  # another code
        with time_machine.travel(NOW, tick=False):
            from django.test import override_settings

            with override_settings(INCIDENT_MIN_VINS=settings_min, INCIDENT_WINDOW_HOURS=6):
                assert incidents() == []
                fourth = fail(b, 3)
                found = incidents()
                assert len(found) == 1
                incident = found[0]
                assert (incident.make, incident.error_code) == ("BMW", "OEM_VEHICLE_OFFLINE")
                assert incident.vins == 4 and incident.fleets == 2
                assert incident.first_at == NOW - timedelta(hours=2)
                assert incident.last_at == NOW
                client.force_login(support)
                body = listed(client)
                assert "Probable manufacturer-side incident" in body
                assert "Retries of these VINs are paused" in body
                assert escape(explain("OEM_VEHICLE_OFFLINE").next_step) in body
                assert len(old + recent) == 5 and fourth.pk
        # Once the window has moved past, the incident is over.
        with (
            time_machine.travel(NOW + window, tick=False),
            override_settings(INCIDENT_MIN_VINS=settings_min),
        ):
            assert incidents() == []

    def test_retry_is_held_back_during_an_incident(self, client, support, fleet, settings):
        settings.INCIDENT_MIN_VINS = 2
        upload = make_upload(fleet)
        entries = [
            add_entry(
                upload,
                VinStatus.ERROR,
                line=i,
                make="BMW",
                codes=["OEM_VEHICLE_OFFLINE"],
                can_retry=True,
            )
            for i in (1, 2)
        ]
        outcome = retry(entries, support)
        assert outcome.done == []
        assert all("manufacturer-side incident" in reason for _, reason in outcome.refused)
        assert not upload.batches.exists()
        assert not VinEvent.objects.filter(entry__in=entries).exists()


class TestExplanations:
    @pytest.mark.parametrize("code", sorted(codes_in("VIN_UPLOAD") | per_vin_codes_in_openapi()))
    def test_every_per_vin_code_is_explained_in_the_workspace(self, client, support, fleet, code):
        upload = make_upload(fleet)
        entry = add_entry(upload, VinStatus.ERROR, line=1, codes=[code])
        x = explain(code)
        assert x.code == code  # ours, not the generic fallback
        client.force_login(support)
        body = listed(client, error=code)
        assert f"entry-{entry.pk}" in body
        assert escape(x.title) in body
        assert escape(x.next_step) in body
        page = client.get(reverse("entry_detail", args=[entry.pk])).content.decode()
        assert escape(x.explanation) in page and escape(x.next_step) in page
        assert escape(x.who_acts_label) in page

    def test_codes_page_lists_the_table_with_open_counts(self, client, support, fleet):
        upload = make_upload(fleet)
        add_entry(upload, VinStatus.ERROR, line=1, codes=["OEM_VEHICLE_OFFLINE"])
        add_entry(upload, VinStatus.ERROR, line=2, codes=["SOMETHING_NEW"])
        client.force_login(support)
        body = client.get(reverse("support_codes")).content.decode()
        for code in codes_in("VIN_UPLOAD"):
            assert f'id="{code}"' in body
        assert "?error=OEM_VEHICLE_OFFLINE" in body
        assert "SOMETHING_NEW</a> (1)" in body
        # The states with a next step but no code are part of the same table.
        assert 'id="CONNECTION_REQUIRED"' in body

    def test_codes_page_counts_vins_waiting_for_consent(self, client, support, fleet):
        add_entry(make_upload(fleet), VinStatus.CONNECTION_REQUIRED, line=1)
        client.force_login(support)
        body = client.get(reverse("support_codes")).content.decode()
        row = body[body.index('id="CONNECTION_REQUIRED"') :]
        row = row[: row.index("</tr>")]
        assert '?status=CONNECTION_REQUIRED">1</a>' in row

    def test_consent_required_gets_its_next_step(self, client, manager, support, fleet):
        upload = make_upload(fleet)
        entry = add_entry(upload, VinStatus.CONNECTION_REQUIRED, line=1)
        x = STATUS_EXPLANATIONS[VinStatus.CONNECTION_REQUIRED]
        assert entry.explanation == x
        client.force_login(support)
        assert escape(x.next_step) in listed(client)
        assert entry.who_acts == "Customer action: the vehicle's driver"
        # The same table of knowledge gives the upload table its next step.
        client.force_login(manager)
        row = html.unescape(_row(client.get(upload.get_absolute_url()).content.decode(), entry))
        assert x.next_step in row and x.title in row


def _row(body: str, entry: VinEntry) -> str:
    start = body.index(f'id="entry-{entry.pk}"')
    return body[start : body.index("</tr>", start)]


class TestWhoActs:
    def test_the_python_rule_and_the_sql_filter_agree(self, fleet):
        upload = make_upload(fleet)
        cases = [
            (VinStatus.ERROR, ["OEM_VEHICLE_OFFLINE"], ""),
            (VinStatus.ERROR, ["OEM_VEHICLE_OFFLINE"], "CONTACT_SUPPORT"),
            (VinStatus.ERROR, ["DEVICE_LIMIT_REACHED"], ""),
            (VinStatus.ERROR, ["VIN_BLACKLISTED"], "UNDER_REVIEW"),
            (VinStatus.ERROR, ["SOMETHING_NEW"], ""),
            (VinStatus.ERROR, ["SOMETHING_NEW"], "NOT_A_CATEGORY"),
            (VinStatus.ERROR, [], ""),
            (VinStatus.CONNECTION_REQUIRED, [], ""),
            (VinStatus.CONNECTION_REQUIRED, ["VEHICLE_ALREADY_ADDED_CONNECTION_REQUIRED"], ""),
            (VinStatus.INCOMPATIBLE, ["OEM_VEHICLE_NOT_COMPATIBLE"], "CONTACT_SUPPORT"),
            (VinStatus.INVALID, [], ""),
            (VinStatus.PENDING, [], ""),
            (VinStatus.PENDING, ["VEHICLE_ALREADY_ADDED_PENDING_CONNECTION"], ""),
        ]
        entries = [
            add_entry(upload, status, line=i, codes=codes, action_category=category)
            for i, (status, codes, category) in enumerate(cases, start=1)
        ]
        for category in ("CUSTOMER_ACTION", "CONTACT_SUPPORT", "UNDER_REVIEW"):
            in_sql = set(VinEntry.objects.filter(who_must_act_q(category)))
            in_python = {e for e in entries if e.who_acts_category == category}
            assert in_sql == in_python, category
        by_vin = {e.pk: e.who_acts for e in entries}
        assert by_vin[entries[4].pk] == "Contact support"  # an unknown code: ours, generic
        assert by_vin[entries[10].pk] == "Customer action"  # never sent: fix the row
        assert by_vin[entries[11].pk] == ""  # nobody needs to act yet


class TestRetryRules:
    """`VinEntry.retry_refusal`: the per-VIN rules every retry path applies."""

    @pytest.mark.parametrize("code", ["VIN_UPLOAD_INVALID_FORMAT", "INVALID_VIN"])
    def test_our_explanation_decides_when_volteras_did_not(self, fleet, code):
        entry = add_entry(make_upload(fleet), VinStatus.ERROR, line=1, codes=[code])
        assert entry.can_retry is None
        refusal = entry.retry_refusal()
        assert refusal and explain(code).next_step in refusal

    def test_a_code_a_retry_can_help_is_retried(self, fleet):
        entry = add_entry(
            make_upload(fleet), VinStatus.ERROR, line=1, codes=["OEM_VEHICLE_OFFLINE"]
        )
        assert entry.retry_refusal() is None

    def test_volteras_word_wins_over_ours(self, fleet):
        entry = add_entry(
            make_upload(fleet), VinStatus.ERROR, line=1, codes=["INVALID_VIN"], can_retry=True
        )
        assert entry.retry_refusal() is None

    def test_superseded_rows_are_refused(self, fleet):
        entry = add_entry(
            make_upload(fleet),
            VinStatus.ERROR,
            line=1,
            codes=["OEM_VEHICLE_OFFLINE"],
            superseded=True,
        )
        assert entry.retry_refusal() == SUPERSEDED_REFUSAL

    def test_a_stuck_vin_says_escalate_not_wait(self, fleet, settings):
        settings.SUPPORT_STUCK_HOURS = 48
        with time_machine.travel(NOW - timedelta(hours=50), tick=False):
            old = add_entry(make_upload(fleet), VinStatus.PENDING, line=1)
        with time_machine.travel(NOW - timedelta(hours=1), tick=False):
            young = add_entry(make_upload(fleet), VinStatus.PENDING, line=2)
        with time_machine.travel(NOW, tick=False):
            assert (
                young.retry_refusal() == "This VIN is still being connected; wait for its result."
            )
            refusal = old.retry_refusal()
            assert "looks stuck" in refusal and "Escalate it to Volteras" in refusal
            assert "2\xa0days" in refusal and "wait for its result" not in refusal

    def test_the_upload_table_offers_retry_only_where_it_can_help(self, client, manager, fleet):
        upload = make_upload(fleet, manager)
        invalid = add_entry(upload, VinStatus.ERROR, line=1, codes=["INVALID_VIN"])
        offline = add_entry(upload, VinStatus.ERROR, line=2, codes=["OEM_VEHICLE_OFFLINE"])
        client.force_login(manager)
        body = client.get(upload.get_absolute_url()).content.decode()
        assert f"Retry {invalid.vin}" not in _row(body, invalid)
        assert f"Retry {offline.vin}" in _row(body, offline)
        page = client.get(reverse("entry_detail", args=[invalid.pk])).content.decode()
        assert reverse("entry_retry", args=[upload.pk, invalid.pk]) not in page
        page = client.get(reverse("entry_detail", args=[offline.pk])).content.decode()
        assert reverse("entry_retry", args=[upload.pk, offline.pk]) in page


class TestReopening:
    """Dismissed and escalated are about one state: a new one clears them."""

    def test_a_new_status_or_code_clears_both(self, fleet):
        entry = add_entry(
            make_upload(fleet), VinStatus.ERROR, line=1, codes=["OEM_VEHICLE_OFFLINE"]
        )
        VinEntry.objects.filter(pk=entry.pk).update(dismissed=True, escalated=True)
        entry.refresh_from_db()
        # The same answer again (only the wording differs) changes nothing.
        entry.observe(
            VinStatus.ERROR, "poll", error_codes=["OEM_VEHICLE_OFFLINE"], message="still offline"
        )
        entry.refresh_from_db()
        assert entry.dismissed and entry.escalated
        entry.observe(VinStatus.ERROR, "poll", error_codes=["OEM_VEHICLE_UPDATE_REQUIRED"])
        entry.refresh_from_db()
        assert not entry.dismissed and not entry.escalated
        event = entry.events.order_by("-pk").first()
        assert event.data["reopened"] == ["dismissed", "escalated"]

        VinEntry.objects.filter(pk=entry.pk).update(dismissed=True)
        entry.refresh_from_db()
        entry.observe(VinStatus.DISCONNECTED, "webhook")
        entry.refresh_from_db()
        assert not entry.dismissed


class TestEntryTimeline:
    def test_validation_is_the_first_item(self, client, manager, fleet):

        text = f"vin,make,country\n{make_vin(5).lower()},Ford,US\n"
        upload = uploaded(
            fleet, manager, text.encode(), filename="vans.csv", source_name="vans.csv"
        )
        entry = upload.entries.get()
        VinEntry.objects.filter(pk=entry.pk).update(problems=["A warning about this row"])
        client.force_login(manager)
        url = reverse("entry_detail", args=[entry.pk])
        body = client.get(url).content.decode()
        timeline = body[body.index('class="timeline"') :]
        first = timeline[: timeline.index("</li>")]
        assert "Validated from line 2</strong> of vans.csv" in first
        assert "A warning about this row" in first
        assert upload.created_at.strftime("%Y-%m-%dT%H:%M") in first
        assert "Nothing has happened since." in timeline
        submit(upload, manager)
        timeline = client.get(url).content.decode().split('class="timeline"')[1]
        assert timeline.index("Validated from line 2") < timeline.index("Confirmed and queued")

    def test_webhook_deliveries_are_listed_with_links_for_support(
        self, client, manager, support, fleet
    ):
        from connections.models import WebhookEvent

        entry = add_entry(make_upload(fleet), VinStatus.DISCONNECTED, line=1, vehicle_id="veh-42")
        mine = WebhookEvent.objects.create(
            svix_id="msg_1", event_type="device.disconnected", vehicle_id="veh-42", body="{}"
        )
        by_vin = WebhookEvent.objects.create(
            svix_id="msg_2", event_type="device.connected", vin=entry.vin, body="{}",
            vehicle_id="veh-of-another-fleet", result="Applied to 1 of 2 matching entries",
        )  # fmt: skip
        other = WebhookEvent.objects.create(
            svix_id="msg_3", event_type="device.other", vehicle_id="veh-7", body="{}"
        )
        url = reverse("entry_detail", args=[entry.pk])
        client.force_login(support)
        body = client.get(url).content.decode()
        section = body[body.index('id="webhook-deliveries"') :]
        assert mine.get_absolute_url() in section and by_vin.get_absolute_url() in section
        assert other.get_absolute_url() not in section and "device.other" not in section
        assert reverse("webhook_events") + "?vehicle=veh-42" in section
        # A manager sees the deliveries about this entry's own vehicle, without
        # links into support's log or processing results that count other fleets.
        client.force_login(manager)
        section = client.get(url).content.decode().split('id="webhook-deliveries"')[1]
        assert "device.disconnected" in section
        assert mine.get_absolute_url() not in section
        assert "device.connected" not in section and "matching entries" not in section


class TestActionForm:
    def test_single_vin_action_returns_to_its_page(self, client, support, mixed):
        pending = mixed["pending"]
        page = reverse("entry_detail", args=[pending.pk])
        client.force_login(support)
        data = {"action": "dismiss", "entries": [pending.pk], "reason": "Sold", "next": page}
        response = client.post(reverse("support_action"), data)
        assert response.status_code == 302 and response["Location"] == page
        body = client.get(page).content.decode()
        assert "1 VIN dismissed." in body and "Dismissed: Sold" in body and "by support" in body

    def test_foreign_next_is_ignored(self, client, support, mixed):
        client.force_login(support)
        data = {
            "action": "dismiss",
            "entries": [mixed["pending"].pk],
            "reason": "x",
            "next": "https://evil.example/",
            "return_query": "status=PENDING",
        }
        response = client.post(reverse("support_action"), data)
        assert response["Location"] == reverse("support_home") + "?status=PENDING"

    def test_nothing_selected_or_unknown_ids(self, client, support, mixed):
        client.force_login(support)
        response = client.post(reverse("support_action"), {"action": "retry"}, follow=True)
        assert "Select at least one VIN first." in response.content.decode()
        response = client.post(
            reverse("support_action"), {"action": "retry", "entries": [999999]}, follow=True
        )
        assert "none of the selected VINs exists" in response.content.decode()
        response = client.post(
            reverse("support_action"), {"action": "explode", "entries": [1]}, follow=True
        )
        assert "Nothing was done" in response.content.decode()


@pytest.mark.django_db
def test_retry_refusals_say_what_stage_a_vin_is_at(fleet):
    draft = Upload.objects.create(fleet=fleet)
    ready = add_entry(draft, VinStatus.READY, line=1)
    invalid = add_entry(draft, VinStatus.INVALID, line=2)
    assert "not been sent yet" in ready.retry_refusal()
    assert "never sent: fix it" in invalid.retry_refusal()
