"""The permission matrix every view is checked against.

    assert_access(client, url, users, member=200, outsider=404, support=200, admin=200)

anonymous is always redirected to the login page (or, for a public page, passes
with `anonymous=200`). `users` is the `users` fixture: manager (a member of the
URL's fleet), outsider (a manager of another fleet), support, admin.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.shortcuts import resolve_url
from django.test import Client


def status_for(client: Client, url: str, user, method: str = "get", data=None) -> int:
    client.logout()
    if user is not None:
        client.force_login(user)
    response = getattr(client, method)(url, data or {})
    client.logout()
    return response.status_code


def assert_access(
    client: Client,
    url: str,
    users: dict,
    *,
    member: int = 200,
    outsider: int = 404,
    support: int = 200,
    admin: int = 200,
    anonymous: int | None = None,
    method: str = "get",
    data=None,
) -> None:
    client.logout()
    response = getattr(client, method)(url, data or {})
    if anonymous is None:
        assert response.status_code == 302, f"anonymous {method} {url}: {response.status_code}"
        login = resolve_url(settings.LOGIN_URL)
        assert urlsplit(response["Location"]).path == login, response["Location"]
    else:
        assert response.status_code == anonymous, f"anonymous {url}: {response.status_code}"
    expected = {"manager": member, "outsider": outsider, "support": support, "admin": admin}
    got = {role: status_for(client, url, users[role], method, data) for role in expected}
    assert got == expected, f"{method.upper()} {url}"
