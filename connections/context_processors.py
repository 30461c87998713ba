from django.http import HttpRequest

from .models import user_is_support


def navigation(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"nav_support": user_is_support(user), "nav_admin": user.is_staff}
