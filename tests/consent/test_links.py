"""Consent Flow links: the whole journey against the sandbox's consent page
over real HTTP, plus permissions, expiry, revocation, reissue, per-VIN links
and Volteras' refusals."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import time_machine
from django.urls import reverse
from django.utils import timezone

from connections.consent import returns as consent_returns
from connections.consent.links import create_link
from connections.consent.options import LinkOptions
from connections.consent.returns import (
    PENDING_RETURN_GIVE_UP,
    PENDING_RETURN_RECHECK,
    claim_pending_returns,
)
from connections.jobs import drain, sweep
from connections.models import (
    ConnectedAccount,
    ConsentLink,
    ConsentLinkEvent,
    LinkStatus,
    Upload,
    Vehicle,
    VinStatus,
)
from connections.web.access import READ_ONLY
from tests.factories import add_entry, make_upload, stored_link
from tests.flows import PORTAL, consent_at_sandbox, follow_return, new_link, open_short_link
from tests.live import poll
from tests.permissions import assert_access


def snapshot() -> tuple:
    return (
        list(ConsentLink.objects.values().order_by("pk")),
        ConsentLinkEvent.objects.count(),
        ConnectedAccount.objects.count(),
    )


class TestJourney:
    def test_approve(self, client, manager, fleet, volteras_no_retries):
        client.force_login(manager)
        link = new_link(client, fleet)
        assert link.state == LinkStatus.ACTIVE
        assert link.options["returnUrl"] == f"{PORTAL}/consent/return/{link.return_token}"
        # The shared short link does not give away the return URL.
        assert link.return_token != link.token
        assert link.token not in link.options["returnUrl"]
        assert link.options["scopes"] == ["vehicle:information", "vehicle:telemetry"]
        assert link.authentication_url.startswith(volteras_no_retries.url)
        assert fleet.active_consent_link_count() == 1

        detail = client.get(link.get_absolute_url()).content.decode()
        assert link.short_url in detail
        assert "<svg" in detail  # the QR code
        assert "mailto:?subject=" in detail

        auth_url = open_short_link(client, link)
        assert auth_url == link.authentication_url
        assert open_short_link(client, link) == auth_url
        link.refresh_from_db()
        assert link.opens == 2
        assert link.state == LinkStatus.OPENED

        page = follow_return(client, consent_at_sandbox(auth_url, approve=True, username="jane"))
        assert page.status_code == 200
        text = page.content.decode()
        assert "your vehicle is connected" in text
        assert "accountId" not in text and link.token not in text

        link.refresh_from_db()
        assert link.state == LinkStatus.COMPLETED
        assert link.result == "success"
        account = link.account
        assert account.username == "jane" and account.fleet == fleet
        assert account.volteras_id == link.returned_account_id
        assert fleet.active_consent_link_count() == 0
        # The account's vehicles are read from Volteras by a worker, not while
        # the owner waits on the return page.
        assert not Vehicle.objects.filter(account_id=account.volteras_id).exists()
        assert drain() >= 1
        vins = set(Vehicle.objects.filter(account_id=account.volteras_id).values_list("vin"))
        assert len(vins) == 3

        client.force_login(manager)
        listing = client.get(reverse("consent_account_list", args=[fleet.slug])).content.decode()
        assert "jane" in listing and account.volteras_id in listing
        assert next(iter(vins))[0] in listing
        links = client.get(reverse("consent_link_list", args=[fleet.slug]), {"status": "completed"})
        assert "Jane&#x27;s car" in links.content.decode()

        # Loading the return page again changes nothing.
        before = snapshot()
        assert follow_return(client, f"{PORTAL}{link.return_url[len(PORTAL) :]}?result=failed")
        assert snapshot() == before

    def test_decline(self, client, manager, fleet, volteras_no_retries):
        client.force_login(manager)
        link = new_link(client, fleet)
        auth_url = open_short_link(client, link)
        page = follow_return(client, consent_at_sandbox(auth_url, approve=False))
        assert page.status_code == 200
        assert "was not connected" in page.content.decode()
        link.refresh_from_db()
        assert link.state == LinkStatus.DECLINED
        assert link.result == "declined"
        assert link.account is None
        assert not ConnectedAccount.objects.exists()

    def test_expired(self, client, manager, fleet, volteras_no_retries):
        client.force_login(manager)
        link = new_link(client, fleet, expires_in=3600)
        assert link.expires_at <= timezone.now() + timedelta(hours=1)
        with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
            assert link.state == LinkStatus.EXPIRED
            assert fleet.active_consent_link_count() == 0
            client.logout()
            response = client.get(urlsplit(link.short_url).path)
            assert response.status_code == 410
            assert "This link has expired" in response.content.decode()
            client.force_login(manager)
            listing = client.get(
                reverse("consent_link_list", args=[fleet.slug]), {"status": "expired"}
            )
            assert link.get_absolute_url() in listing.content.decode()
        link.refresh_from_db()
        assert link.opens == 0
        assert link.status == LinkStatus.EXPIRED

    def test_revoked(self, client, manager, fleet, volteras_no_retries):
        client.force_login(manager)
        link = new_link(client, fleet)
        auth_url = open_short_link(client, link)
        client.force_login(manager)
        response = client.post(reverse("consent_link_revoke", args=[fleet.slug, link.pk]))
        assert response.status_code == 302
        link.refresh_from_db()
        assert link.state == LinkStatus.REVOKED and link.revoked_by == manager
        client.logout()
        response = client.get(urlsplit(link.short_url).path)
        assert response.status_code == 410
        assert "withdrawn" in response.content.decode()
        assert link.opens == 1
        # Volteras' own URL still works for whoever kept it: the account is real,
        # so it is listed (to be disconnected), but the link stays revoked.
        follow_return(client, consent_at_sandbox(auth_url, approve=True))
        link.refresh_from_db()
        assert link.state == LinkStatus.REVOKED
        assert link.account is not None

    def test_reissue_forwards_the_old_short_link(self, client, manager, fleet, volteras_no_retries):
        client.force_login(manager)
        old = new_link(client, fleet, expires_in=24 * 3600)
        response = client.post(reverse("consent_link_reissue", args=[fleet.slug, old.pk]))
        old.refresh_from_db()
        new = old.replaced_by
        assert response["Location"] == new.get_absolute_url()
        assert old.state == LinkStatus.REISSUED
        assert new.options["scopes"] == old.options["scopes"]
        assert new.label == old.label and new.token != old.token
        assert new.authentication_url != old.authentication_url
        assert open_short_link(client, old) == new.authentication_url
        new.refresh_from_db()
        assert new.opens == 1
        follow_return(client, consent_at_sandbox(new.authentication_url, approve=True))
        new.refresh_from_db()
        assert new.state == LinkStatus.COMPLETED

    def test_reissue_links_close_to_expiry(self, client, manager, fleet, volteras_no_retries):
        client.force_login(manager)
        soon = new_link(client, fleet, expires_in=24 * 3600, label="soon")
        later = new_link(client, fleet, expires_in=7 * 24 * 3600, label="later")
        listing = client.get(reverse("consent_link_list", args=[fleet.slug])).content.decode()
        assert "Reissue 1 link expiring within 2 days" in listing
        client.post(reverse("consent_link_reissue_expiring", args=[fleet.slug]))
        soon.refresh_from_db()
        later.refresh_from_db()
        assert soon.state == LinkStatus.REISSUED
        assert soon.replaced_by.expires_at > timezone.now() + timedelta(hours=23)
        assert later.state == LinkStatus.ACTIVE

    def test_disconnect_account(self, client, manager, fleet, volteras_no_retries):
        client.force_login(manager)
        link = new_link(client, fleet)
        follow_return(client, consent_at_sandbox(open_short_link(client, link), approve=True))
        drain()  # the worker reads the account's vehicles
        account = ConnectedAccount.objects.get()
        client.force_login(manager)
        url = reverse("consent_account_disconnect", args=[fleet.slug, account.pk])
        confirm = client.get(url).content.decode()
        assert "stop sending data" in confirm and "cannot be undone" in confirm
        assert client.post(url).status_code == 302
        account.refresh_from_db()
        assert account.status == ConnectedAccount.Status.DISCONNECTED
        assert account.disconnected_by == manager
        token = volteras_no_retries.token()
        gone = httpx.get(
            f"{volteras_no_retries.url}/v1/accounts/{account.volteras_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert gone.status_code == 404

    def test_refresh_marks_accounts_gone_elsewhere(
        self, client, manager, fleet, volteras_no_retries
    ):
        client.force_login(manager)
        link = new_link(client, fleet)
        follow_return(client, consent_at_sandbox(open_short_link(client, link), approve=True))
        account = ConnectedAccount.objects.get()
        httpx.post(
            f"{volteras_no_retries.url}/v1/accounts/{account.volteras_id}:disconnect",
            headers={"Authorization": f"Bearer {volteras_no_retries.token()}"},
        ).raise_for_status()
        client.force_login(manager)
        client.post(reverse("consent_account_refresh", args=[fleet.slug]))
        account.refresh_from_db()
        assert account.status == ConnectedAccount.Status.DISCONNECTED

    def test_refresh_reads_vehicles_in_the_background(
        self, client, manager, fleet, volteras_no_retries
    ):
        client.force_login(manager)
        link = new_link(client, fleet)
        follow_return(client, consent_at_sandbox(open_short_link(client, link), approve=True))
        drain()
        account = ConnectedAccount.objects.get()
        Vehicle.objects.all().delete()
        client.force_login(manager)
        response = client.post(reverse("consent_account_refresh", args=[fleet.slug]), follow=True)
        assert "Their vehicles are being read from Volteras" in response.content.decode()
        assert not Vehicle.objects.exists()
        assert drain() == 1  # one read of the vehicle list for all the fleet's accounts
        assert Vehicle.objects.filter(account_id=account.volteras_id).count() == 3


class TestForgedAndForeign:
    def test_unknown_token_changes_nothing(self, client, manager, fleet, volteras_no_retries):
        client.force_login(manager)
        link = new_link(client, fleet)
        client.logout()
        before = snapshot()
        assert client.get("/l/not-a-real-token").status_code == 404
        forged = f"/consent/return/{link.token}x?result=success&accountId=abc"
        assert client.get(forged).status_code == 404
        assert snapshot() == before

    def test_forged_account_on_a_real_link_is_not_believed(
        self, client, manager, fleet, volteras_no_retries
    ):
        client.force_login(manager)
        link = new_link(client, fleet)
        page = follow_return(client, f"{link.return_url}?result=success&accountId=forged-id")
        assert page.status_code == 200
        link.refresh_from_db()
        assert link.state == LinkStatus.ACTIVE
        assert link.account is None
        assert not ConnectedAccount.objects.exists()

    def test_a_decline_forged_with_the_short_link_token_changes_nothing(
        self, client, manager, fleet, volteras_no_retries
    ):
        client.force_login(manager)
        link = new_link(client, fleet)
        client.logout()
        before = snapshot()
        forged = f"/consent/return/{link.token}?result=declined"
        assert client.get(forged).status_code == 404
        assert snapshot() == before
        # The owner can still use the shared link.
        assert open_short_link(client, link) == link.authentication_url

    def test_a_confirmed_success_wins_over_an_earlier_decline(
        self, client, manager, fleet, volteras_no_retries
    ):
        client.force_login(manager)
        link = new_link(client, fleet)
        auth_url = open_short_link(client, link)
        follow_return(client, f"{link.return_url}?result=declined")
        link.refresh_from_db()
        assert link.state == LinkStatus.DECLINED
        # A second decline is not recorded again.
        events = link.events.count()
        follow_return(client, f"{link.return_url}?result=declined")
        assert link.events.count() == events
        page = follow_return(client, consent_at_sandbox(auth_url, approve=True, username="jo"))
        assert "your vehicle is connected" in page.content.decode()
        link.refresh_from_db()
        assert link.state == LinkStatus.COMPLETED
        assert link.account.username == "jo" and link.result == "success"
        assert link.events.last().status_from == LinkStatus.DECLINED

    def test_an_account_another_fleet_holds_is_refused(
        self, client, manager, fleet, other_fleet, volteras_no_retries, caplog
    ):
        client.force_login(manager)
        theirs = new_link(client, fleet)
        follow_return(client, consent_at_sandbox(open_short_link(client, theirs), approve=True))
        drain()
        held = ConnectedAccount.objects.get(fleet=fleet)
        mine = create_link(other_fleet, LinkOptions(), label="other")
        # Volteras confirms any account of the organisation, whoever's it is.
        page = follow_return(
            client, f"{mine.return_url}?result=success&accountId={held.volteras_id}"
        )
        assert page.status_code == 200
        text = page.content.decode()
        assert "already connected elsewhere" in text
        assert held.volteras_id not in text and fleet.name not in text
        mine.refresh_from_db()
        assert mine.state == LinkStatus.ACTIVE and mine.account is None
        assert not mine.returned_account_id  # the sweep does not keep asking
        assert not ConnectedAccount.objects.filter(fleet=other_fleet).exists()
        refused = mine.events.last()
        assert "already connected to another fleet" in refused.detail
        assert refused.data == {"refused_account_id": held.volteras_id}
        assert f"account {held.volteras_id} is connected to another fleet" in caplog.text
        assert not drain()  # no vehicle sync for the refused account

    def test_the_sweep_confirms_a_return_volteras_could_not_confirm_then(
        self, client, manager, fleet, volteras_no_retries
    ):
        client.force_login(manager)
        link = new_link(client, fleet)
        return_url = consent_at_sandbox(open_short_link(client, link), approve=True)
        volteras_no_retries.control(
            faults=[{"kind": "error", "path_prefix": "/v1/accounts/", "count": 1}]
        )
        page = follow_return(client, return_url)
        assert "We are confirming the connection" in page.content.decode()
        link.refresh_from_db()
        assert link.returned_account_id and link.account is None
        assert sweep()["confirm_pending_returns"] == 1
        # Claimed: the next sweep within the recheck interval leaves it alone.
        assert sweep()["confirm_pending_returns"] == 0
        drain()
        link.refresh_from_db()
        assert link.state == LinkStatus.COMPLETED
        assert Vehicle.objects.filter(account_id=link.account.volteras_id).count() == 3
        assert sweep()["confirm_pending_returns"] == 0

    def test_the_sweep_asks_about_few_returns_at_a_time(self, fleet, monkeypatch):
        monkeypatch.setattr(consent_returns, "PENDING_RETURNS_PER_SWEEP", 2)
        for n in range(3):
            stored_link(fleet, returned_account_id=f"acc-{n}")
        stored_link(
            fleet,
            returned_account_id="too-old",
            created_at=timezone.now() - PENDING_RETURN_GIVE_UP - timedelta(minutes=1),
        )
        assert len(claim_pending_returns()) == 2
        assert len(claim_pending_returns()) == 1
        assert claim_pending_returns() == []
        later = timezone.now() + PENDING_RETURN_RECHECK + timedelta(seconds=1)
        with time_machine.travel(later):
            assert len(claim_pending_returns()) == 2

    def test_bare_return_url_records_nothing(self, client, fleet):
        link = stored_link(fleet)
        before = snapshot()
        assert client.get(urlsplit(link.return_url).path).status_code == 200
        assert snapshot() == before

    def test_outsider_cannot_touch_another_fleets_link(self, client, outsider, fleet):
        link = stored_link(fleet)
        client.force_login(outsider)
        for name in ("consent_link_revoke", "consent_link_reissue"):
            assert client.post(reverse(name, args=[fleet.slug, link.pk])).status_code == 404
        # Nor through the URL of the fleet they do see.
        other = outsider.memberships.get().fleet
        url = reverse("consent_link_detail", args=[other.slug, link.pk])
        assert client.get(url).status_code == 404
        link.refresh_from_db()
        assert link.state == LinkStatus.ACTIVE


class TestPermissions:
    def test_portal_pages(self, client, users, fleet):
        link = stored_link(fleet)
        account = ConnectedAccount.objects.create(fleet=fleet, volteras_id="acc-1", username="j")
        for url in (
            reverse("consent_link_list", args=[fleet.slug]),
            reverse("consent_link_detail", args=[fleet.slug, link.pk]),
            reverse("consent_link_print", args=[fleet.slug, link.pk]),
            reverse("consent_account_list", args=[fleet.slug]),
        ):
            assert_access(client, url, users)
        # Support staff read a fleet's links and accounts but do not change them.
        for url in (
            reverse("consent_link_new", args=[fleet.slug]),
            reverse("consent_account_disconnect", args=[fleet.slug, account.pk]),
        ):
            assert_access(client, url, users, support=403, forbidden_says=READ_ONLY)

    def test_support_is_not_offered_the_changes_it_cannot_make(self, client, users, fleet):
        link = stored_link(fleet)
        ConnectedAccount.objects.create(fleet=fleet, volteras_id="acc-1", username="j")
        pages = {
            reverse("consent_link_list", args=[fleet.slug]): "New consent link",
            reverse("consent_link_detail", args=[fleet.slug, link.pk]): ">Revoke<",
            reverse("consent_account_list", args=[fleet.slug]): "Disconnect…",
        }
        for who, offered in (("manager", True), ("admin", True), ("support", False)):
            client.force_login(users[who])
            for url, offer in pages.items():
                page = client.get(url)
                assert page.status_code == 200
                assert (offer in page.content.decode()) is offered, (who, url)

    def test_actions(self, client, users, fleet, volteras_no_retries):
        link = stored_link(fleet)
        url = reverse("consent_link_revoke", args=[fleet.slug, link.pk])
        assert_access(
            client, url, users, member=302, support=403, admin=302, method="post",
            forbidden_says=READ_ONLY,
        )  # fmt: skip
        for name, args in (
            ("consent_link_reissue", [fleet.slug, stored_link(fleet).pk]),
            ("consent_link_reissue_expiring", [fleet.slug]),
        ):
            assert_access(
                client, reverse(name, args=args), users, member=302, support=403, admin=302,
                method="post",
            )  # fmt: skip
        # A VIN's own link is a troubleshooting tool: support may reissue it.
        upload = make_upload(fleet, state=Upload.State.DRAFT)
        entry = add_entry(upload, VinStatus.CONNECTION_REQUIRED, vin="C0NSENT1000000005")
        vin_link = stored_link(fleet, vin_entry=entry)
        url = reverse("consent_link_reissue", args=[fleet.slug, vin_link.pk])
        client.force_login(users["support"])
        assert client.post(url).status_code == 302
        vin_link.refresh_from_db()
        assert vin_link.status == LinkStatus.REISSUED and vin_link.replaced_by.vin_entry == entry
        account = ConnectedAccount.objects.create(fleet=fleet, volteras_id="acc-2", username="k")
        url = reverse("consent_account_disconnect", args=[fleet.slug, account.pk])
        client.force_login(users["support"])
        assert client.post(url).status_code == 403
        account.refresh_from_db()
        assert account.is_connected
        upload = make_upload(fleet, state=Upload.State.DRAFT)
        url = reverse("upload_consent_links", args=[upload.pk])
        assert_access(client, url, users, member=302, support=302, admin=302, method="post")
        url = reverse("upload_consent_links_csv", args=[upload.pk])
        assert_access(client, url, users)

    def test_public_pages(self, client, users, fleet):
        link = stored_link(fleet)
        every = {"member": 200, "outsider": 200, "support": 200, "admin": 200}
        assert_access(client, urlsplit(link.short_url).path, users, anonymous=200, **every)
        link.refresh_from_db()
        assert link.opens == 5
        url = reverse("consent_continue", args=[link.token])
        assert_access(client, url, users, anonymous=302, **dict.fromkeys(every, 302))
        every = {"member": 200, "outsider": 200, "support": 200, "admin": 200}
        assert_access(client, urlsplit(link.return_url).path, users, anonymous=200, **every)

    def test_revoke_needs_post(self, client, manager, fleet):
        link = stored_link(fleet)
        client.force_login(manager)
        assert (
            client.get(reverse("consent_link_revoke", args=[fleet.slug, link.pk])).status_code
            == 405
        )


class TestList:
    def test_filters_by_status(self, client, manager, fleet):
        active = stored_link(fleet, label="still-active")
        stored_link(fleet, label="was-revoked", status=LinkStatus.REVOKED)
        stored_link(fleet, label="ran-out", expires_at=timezone.now() - timedelta(minutes=1))
        client.force_login(manager)
        url = reverse("consent_link_list", args=[fleet.slug])
        everything = client.get(url).content.decode()
        assert all(name in everything for name in ("still-active", "was-revoked", "ran-out"))
        names = {"still-active", "was-revoked", "ran-out"}
        for state, shown in (
            ("active", "still-active"),
            ("revoked", "was-revoked"),
            ("expired", "ran-out"),
        ):
            page = client.get(url, {"status": state}).content.decode()
            assert shown in page
            assert not any(other in page for other in names - {shown})
        assert fleet.active_consent_link_count() == 1
        assert active.get_absolute_url() in everything

    def test_polls_with_a_partial(self, client, manager, fleet):
        stored_link(fleet, label="polled-link")
        client.force_login(manager)
        url = reverse("consent_link_list", args=[fleet.slug])
        page = client.get(url).content.decode()
        assert 'hx-trigger="every 15s' in page
        partial = poll(client, url, "link-rows").content.decode()
        assert "polled-link" in partial
        assert "<html" not in partial and 'id="link-rows"' in partial

    def test_empty_state_explains(self, client, manager, fleet):
        client.force_login(manager)
        page = client.get(reverse("consent_link_list", args=[fleet.slug])).content.decode()
        assert "No consent links yet" in page

    def test_fleet_page_links_here(self, client, manager, fleet):
        client.force_login(manager)
        page = client.get(fleet.get_absolute_url()).content.decode()
        assert reverse("consent_link_list", args=[fleet.slug]) in page


def test_a_vins_link_made_or_moved_moves_its_uploads_version(manager, fleet, volteras_no_retries):
    """An upload's table shows each VIN's link in the VIN's row: making the link,
    and each move of it, moves the upload's version, so open tables look again."""
    from connections.consent.vin_links import vin_link_options

    upload = make_upload(fleet)
    entry = add_entry(upload, VinStatus.CONNECTION_REQUIRED, vin="C0NSENT1000000006")
    other = add_entry(make_upload(fleet), VinStatus.CONNECTION_REQUIRED, vin="C0NSENT1000000007")

    def versions() -> tuple[int, int]:
        return tuple(Upload.objects.get(pk=u).version for u in (upload.pk, other.upload_id))

    before = versions()
    link = create_link(fleet, vin_link_options(entry), user=manager, vin_entry=entry)
    assert versions() == (before[0] + 1, before[1])
    assert link.move(LinkStatus.REVOKED, "Revoked by the test.")
    assert versions() == (before[0] + 2, before[1])
