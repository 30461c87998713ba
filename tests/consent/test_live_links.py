"""The consent link list and a link's page are live regions: 204 while no
link changed, only the changed rows or parts otherwise; a link's page stops
once the link is final; the clock turning a link expired shows with no write."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from django.urls import reverse
from django.utils import timezone

from connections.consent.links import revoke
from connections.consent.views import LINK_POLL_SECONDS, LIST_POLL_SECONDS
from connections.models import LinkStatus
from tests.factories import stored_link
from tests.live import kept, keys_of, poll


def test_the_list_sends_only_the_link_that_changed(client, manager, fleet):
    calm = stored_link(fleet, label="calm")
    opened = stored_link(fleet, label="opened")
    url = reverse("consent_link_list", args=[fleet.slug])
    client.force_login(manager)
    page = client.get(url)
    html = page.content.decode()
    version = page.context["live"].version
    assert f'hx-trigger="every {LIST_POLL_SECONDS}s"' in html
    assert poll(client, url, "link-rows", v=version).status_code == 204
    opened.count_open()
    answer = poll(client, url, "link-rows", keys_of(html), v=version)
    body = answer.content.decode()
    assert answer.status_code == 200  # the list never stops: a colleague may add a link
    assert kept(body, f"link-{calm.pk}") and not kept(body, f"link-{opened.pk}")
    assert 'data-live-state="Opened"' in body and 'id="filters"' not in body


def test_the_list_notices_a_link_expiring_by_the_clock(client, manager, fleet):
    link = stored_link(fleet, expires_at=timezone.now() + timedelta(minutes=5))
    url = reverse("consent_link_list", args=[fleet.slug])
    client.force_login(manager)
    page = client.get(url)
    version = page.context["live"].version
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        answer = poll(client, url, "link-rows", keys_of(page.content.decode()), v=version)
    assert answer.status_code == 200
    assert f'id="link-{link.pk}"' in answer.content.decode()
    assert 'data-live-state="Expired"' in answer.content.decode()


def test_the_filter_answers_the_region_and_its_poll_keeps_it(client, manager, fleet):
    stored_link(fleet, label="still-open")
    stored_link(fleet, label="was-revoked", status=LinkStatus.REVOKED)
    client.force_login(manager)
    url = reverse("consent_link_list", args=[fleet.slug])
    body = poll(client, url, "link-rows", status="revoked").content.decode()
    assert "was-revoked" in body and "still-open" not in body
    assert "status=revoked" in body.split("data-live-poller", 1)[1].split(">", 1)[0]


def test_a_link_page_updates_until_the_link_is_final(client, manager, fleet, outsider):
    link = stored_link(fleet)
    url = link.get_absolute_url()
    client.force_login(manager)
    page = client.get(url)
    version = page.context["live"].version
    assert f'hx-trigger="every {LINK_POLL_SECONDS}s"' in page.content.decode()
    assert poll(client, url, "link-live", v=version).status_code == 204
    link.count_open()
    opened = poll(client, url, "link-live", v=version)
    assert opened.status_code == 200
    assert 'data-live-state="Opened"' in opened.content.decode()
    assert "<h1" in opened.content.decode() and "<html" not in opened.content.decode()
    version = opened.context["live"].version
    revoke(link, manager)
    final = poll(client, url, "link-live", v=version)
    assert final.status_code == 286  # revoked: nothing more can happen, the poll stops
    assert "data-live-poller" not in final.content.decode()
    assert "data-live-poller" not in client.get(url).content.decode()
    client.force_login(outsider)
    assert poll(client, url, "link-live", v=version).status_code == 404
