"""The owner's pages, not logged in, in the owner's language: the short link's
page (`/l/<token>`: who asks, what for, until when, one button on to Volteras),
the step on to Volteras, and the return page. An unknown token answers 404;
no page shows portal internals."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from connections.consent.emails import link_language, owner_context
from connections.consent.links import open_link
from connections.consent.returns import complete_return
from connections.consent.tasks import sync_vehicles_later
from connections.models import ConsentLink, LinkStatus


def _render(request: HttpRequest, template: str, context: dict, language: str, status=200):
    with translation.override(language):
        response = render(request, template, context, status=status)
    response["Content-Language"] = language
    return response


def _not_found(request: HttpRequest) -> HttpResponse:
    language = translation.get_language_from_request(request)
    return _render(request, "public/link_not_found.html", {}, language, status=404)


def _unavailable(request: HttpRequest, link: ConsentLink, language: str) -> HttpResponse:
    context = {
        "link": link,
        "fleet_name": link.fleet.name,
        "reply_to": getattr(link.created_by, "email", "") if link.created_by_id else "",
    }
    return _render(request, "public/link_unavailable.html", context, language, status=410)


@login_not_required
@never_cache
@require_GET
def public_open(request: HttpRequest, token: str) -> HttpResponse:
    """The tracked short link: count the visit and show the owner what they are asked."""
    link = open_link(token)
    if link is None:
        return _not_found(request)
    language = link_language(link, request)
    if not link.is_usable:
        return _unavailable(request, link, language)
    context = owner_context(link, language)
    return _render(request, "public/link_open.html", context, language)


@login_not_required
@never_cache
@require_GET
def public_continue(request: HttpRequest, token: str) -> HttpResponse:
    """The owner's page's button: on to Volteras' consent flow while the link is usable."""
    link = ConsentLink.objects.select_related("fleet").filter(token=token).first()
    if link is None:
        return _not_found(request)
    link = link.final_link()
    if not link.is_usable:
        return _unavailable(request, link, link_language(link, request))
    return HttpResponseRedirect(link.authentication_url)


def _outcome(returned) -> str:
    link = returned.link
    if returned.held_elsewhere:
        return "held_elsewhere"
    if link.account_id:
        return "connected"
    if link.returned_account_id:
        return "confirming"
    if link.result.lower() == "expired" or link.state == LinkStatus.EXPIRED:
        return "expired"
    return "declined" if link.result else "unknown"


@login_not_required
@never_cache
@require_GET
def public_return(request: HttpRequest, token: str) -> HttpResponse:
    """Where Volteras sends the owner back with `result` and `accountId`
    (`token` is the link's return token, not its short-link token)."""
    returned = complete_return(
        token, request.GET.get("result", ""), request.GET.get("accountId", "")
    )
    sync_vehicles_later(returned)
    if returned is None:
        return _not_found(request)
    link = returned.link
    context = {"link": link, "fleet_name": link.fleet.name, "outcome": _outcome(returned)}
    return _render(request, "public/consent_return.html", context, link_language(link, request))
