"""The owner's page behind the short link, and every owner-facing page, in the
link's language (or the owner's browser's): who asks, the manager's note, what
Volteras may read, until when (in the owner's timezone), one button on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from babel.messages.pofile import read_po
from django.urls import reverse

from connections.models import ConsentLink, LinkStatus
from fleet_portal.translations import LOCALE_DIR
from tests.factories import OWNER_LINK_EXPIRES as EXPIRES
from tests.factories import owner_link


def page(client, link, **headers) -> tuple[int, str]:
    response = client.get(reverse("consent_open", args=[link.token]), **headers)
    return response.status_code, response.content.decode()


@time_machine.travel(datetime(2026, 12, 10, 9, 0, tzinfo=UTC))
@pytest.mark.parametrize(
    ("language", "heading", "scope", "expiry", "button"),
    [
        ("en", "Connect your vehicle to Demo Fleet", "Live data: battery level", "Europe/London",
         "Continue to Volteras"),
        ("de", "Verbinden Sie Ihr Fahrzeug mit Demo Fleet", "Live-Daten: Ladestand",
         "20. Dezember 2026 16:30 (Europe/Berlin)", "Weiter zu Volteras"),
        ("fr", "Connectez votre véhicule à Demo Fleet", "Données en direct",
         "20 décembre 2026 16:30 (Europe/Paris)", "Continuer vers Volteras"),
        ("es", "Conecte su vehículo con Demo Fleet", "Datos en directo",
         "(Europe/Madrid)", "Continuar a Volteras"),
        ("it", "Collega il tuo veicolo a Demo Fleet", "Dati in tempo reale",
         "(Europe/Rome)", "Continua su Volteras"),
        ("nl", "Verbind uw voertuig met Demo Fleet", "Live data: accuniveau",
         "(Europe/Amsterdam)", "Verder naar Volteras"),
    ],
)  # fmt: skip
def test_the_owners_page_in_the_links_language(client, fleet, language, heading, scope, expiry,
                                               button):  # fmt: skip
    link = owner_link(fleet, language=language)
    status, html = page(client, link)
    assert status == 200
    assert f'<html lang="{language}">' in html
    assert heading in html and scope in html and expiry in html and button in html
    assert "Hi Jane, please connect the company car." in html
    assert reverse("consent_continue", args=[link.token]) in html
    assert link.authentication_url not in html  # one step on, through the portal
    link.refresh_from_db()
    assert link.status == LinkStatus.OPENED and link.opens == 1
    response = client.get(reverse("consent_continue", args=[link.token]))
    assert response.status_code == 302 and response["Location"] == link.authentication_url


def test_the_consent_flow_locale_and_the_browser_choose_when_the_link_does_not(client, fleet):
    by_locale = owner_link(fleet, options={"locale": "nl-NL"})
    assert "Verder naar Volteras" in page(client, by_locale)[1]
    by_browser = owner_link(fleet)
    html = page(client, by_browser, HTTP_ACCEPT_LANGUAGE="it-IT,it;q=0.9,en;q=0.5")[1]
    assert "Continua su Volteras" in html
    html = page(client, by_browser, HTTP_ACCEPT_LANGUAGE="pt-BR")[1]
    assert "Continue to Volteras" in html


@pytest.mark.parametrize(
    ("state", "language", "text"),
    [
        ("expired", "de", "Dieser Link ist abgelaufen"),
        ("revoked", "fr", "Ce lien a été retiré"),
        ("completed", "es", "Su vehículo ya está conectado"),
        ("declined", "it", "Questo link è già stato usato"),
    ],
)
def test_closed_links_say_so_in_the_owners_language(client, fleet, manager, state, language, text):
    manager.email = "fleet@example.com"
    manager.save()
    link = owner_link(fleet, language=language, created_by=manager)
    if state == "expired":
        ConsentLink.objects.filter(pk=link.pk).update(expires_at=EXPIRES - timedelta(days=400))
    else:
        ConsentLink.objects.filter(pk=link.pk).update(status=state)
    status, html = page(client, link)
    assert status == 410 and text in html
    assert 'href="mailto:fleet@example.com"' in html  # what to do next: write to the fleet
    response = client.get(reverse("consent_continue", args=[link.token]))
    assert response.status_code == 410 and text in response.content.decode()


def test_the_return_page_in_the_links_language(client, fleet):
    link = owner_link(fleet, language="de")
    url = reverse("consent_return", args=[link.return_token])
    response = client.get(url, {"result": "declined"})
    assert "Ihr Fahrzeug wurde nicht verbunden" in response.content.decode()
    assert response["Content-Language"] == "de"


def test_an_unknown_link_in_the_browsers_language(client, db):
    response = client.get("/l/not-a-real-token", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 404 and "Ce lien n'existe pas" in response.content.decode()


def test_every_language_is_complete():
    for language in ("de", "fr", "es", "it", "nl"):
        with (LOCALE_DIR / language / "LC_MESSAGES" / "django.po").open("rb") as po:
            catalog = read_po(po)
        untranslated = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
        assert untranslated == [], language
