"""The support workspace is a live region: 204 while nothing changed, only the
changed rows when something did, never a stop (failures come at any time), the
clock moving ages on; only support sees it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from django.urls import reverse

from connections.models import VinStatus
from connections.support.views import CLOCK_SECONDS, POLL_SECONDS, workspace_version
from tests.factories import add_entry, make_upload
from tests.live import kept, keys_of, poll

NOW = datetime(2026, 3, 10, 12, 0, 10, tzinfo=UTC)
URL = reverse("support_home")
REGION = "support-live"


def test_unchanged_answers_204_and_a_change_sends_only_its_row(client, support, fleet):
    upload = make_upload(fleet)
    calm = add_entry(upload, VinStatus.ERROR, codes=["OEM_VEHICLE_OFFLINE"])
    moving = add_entry(upload, VinStatus.PENDING)
    client.force_login(support)
    with time_machine.travel(NOW, tick=False):
        page = client.get(URL)
        html = page.content.decode()
        version = page.context["live"].version
        assert f'hx-trigger="every {POLL_SECONDS}s"' in html
        assert f"v={version}" in html
        assert poll(client, URL, REGION, v=version).status_code == 204
        moving.observe(VinStatus.ERROR, "poll", error_codes=["OEM_VEHICLE_OFFLINE"])
        answer = poll(client, URL, REGION, keys_of(html), v=version)
    assert answer.status_code == 200  # never 286: the workspace keeps watching
    body = answer.content.decode()
    assert kept(body, f"entry-{calm.pk}")
    assert not kept(body, f"entry-{moving.pk}")
    assert f'id="entry-{moving.pk}" data-key="' in body and 'data-live-state="Error"' in body
    assert "<h1>" not in body and 'id="filters"' not in body  # controls stay outside


def test_the_clock_moves_ages_without_announcing_a_change(client, support, fleet):
    client.force_login(support)
    with time_machine.travel(NOW, tick=False):
        entry = add_entry(make_upload(fleet), VinStatus.ERROR, codes=["OEM_VEHICLE_OFFLINE"])
        html = client.get(URL).content.decode()
        version = workspace_version(datetime.now(UTC))
    later = NOW + timedelta(hours=3)
    with time_machine.travel(later, tick=False):
        assert workspace_version(later) != version
        answer = poll(client, URL, REGION, keys_of(html), v=version)
    body = answer.content.decode()
    assert answer.status_code == 200 and not kept(body, f"entry-{entry.pk}")
    assert "3\xa0hours" in body
    assert "data-live-state" not in body  # the VIN's state did not change: nothing to announce
    assert workspace_version(NOW + timedelta(seconds=CLOCK_SECONDS)) != workspace_version(NOW)


def test_filters_answer_the_region_and_keep_the_poll_on_them(client, support, fleet):
    upload = make_upload(fleet)
    add_entry(upload, VinStatus.ERROR, make="BMW")
    add_entry(upload, VinStatus.ERROR, make="KIA")
    client.force_login(support)
    answer = poll(client, URL, REGION, make="KIA")
    body = answer.content.decode()
    assert answer.status_code == 200 and "<h1>" not in body
    assert "make=KIA" in body.split("data-live-poller", 1)[1].split(">", 1)[0]
    assert body.count('data-live-state="Error"') == 1


def test_only_support_may_poll(client, manager, support, fleet):
    make_upload(fleet)
    client.force_login(manager)
    assert poll(client, URL, REGION, v="0").status_code == 404
    client.logout()
    assert poll(client, URL, REGION, v="0").status_code == 302
