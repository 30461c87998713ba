"""The webhook receiver's short path through the middleware.

Svix's POSTs carry no cookie, need no session, user, CSRF check, login
throttling (axes), CSP or htmx, and get JSON back: every middleware after this
one would only cost time on the busiest URL the portal has. This one, placed
right after SecurityMiddleware (so an HTTPS redirect still applies), hands
the receiver's path straight to its view; every other request goes on as usual.
"""

from collections.abc import Callable

from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, resolve, reverse


class WebhookShortPathMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        try:
            self.path = reverse("volteras_webhook")
        except NoReverseMatch:
            # Another URLconf (the sandbox's settings reuse this list): nothing to do.
            raise MiddlewareNotUsed from None
        self.receive = resolve(self.path).func

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == self.path:
            return self.receive(request)
        return self.get_response(request)
