"""The permission matrix every view is checked against.

    assert_access(client, url, users, member=200, outsider=404, support=200, admin=200)

anonymous is always redirected to the login page (or, for a public page, passes
with `anonymous=200`). `users` is the `users` fixture: manager (a member of the
URL's fleet), outsider (a manager of another fleet), support, admin.

The roles' rules (issue 2):

- outsider: 404 for anything of another fleet, never a hint that it exists;
  a fleet manager on a support page or action: 404 as well, for GET too (the
  role is checked before the method, so a 405 does not reveal the route).
- support: reads every fleet and uses the troubleshooting actions (retry,
  per-VIN consent links, escalate, dismiss); a fleet's write actions (uploads,
  fleet consent links, connected accounts) answer 403 with the reason, which
  `forbidden_says` checks: `support=403, forbidden_says=READ_ONLY`.
- admin: everything.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.shortcuts import resolve_url
from django.test import Client
from django.utils.html import escape


def response_for(client: Client, url: str, user, method: str = "get", data=None):
    client.logout()
    if user is not None:
        client.force_login(user)
    response = getattr(client, method)(url, data or {})
    client.logout()
    return response


def status_for(client: Client, url: str, user, method: str = "get", data=None) -> int:
    return response_for(client, url, user, method, data).status_code


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
    forbidden_says: str | None = None,
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
    responses = {role: response_for(client, url, users[role], method, data) for role in expected}
    got = {role: r.status_code for role, r in responses.items()}
    assert got == expected, f"{method.upper()} {url}"
    if forbidden_says is not None:
        for role, r in responses.items():
            if r.status_code == 403:
                assert escape(forbidden_says) in r.content.decode(), (
                    f"{role}'s 403 at {url} says why"
                )
