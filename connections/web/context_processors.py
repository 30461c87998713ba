from functools import partial

from django.http import HttpRequest

from connections.models import user_is_support


def navigation(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # A callable, which a template calls when it shows the navigation: partials
    # that do not (the live table's poll) spare the query.
    return {"nav_support": partial(user_is_support, user), "nav_admin": user.is_staff}
