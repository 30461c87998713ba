"""`POST /v1/oauth2/token` and `POST /v1/oauth2/test-token`."""

import base64
import binascii
import secrets
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from sandbox import control
from sandbox.api.responses import ApiError, api_view, authenticate
from sandbox.models import ApiToken

ORGANIZATION_ID = "org-sandbox"
REFRESH_TOKEN_LIFETIME = timedelta(days=30)


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError("AUTHENTICATION_ERROR", "Malformed Basic credentials.") from None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def _issue(client_id: str) -> JsonResponse:
    ttl = control.current().token_ttl
    token = ApiToken.objects.create(
        client_id=client_id, expires_at=timezone.now() + timedelta(seconds=ttl)
    )
    return JsonResponse(
        {
            "access_token": token.access_token,
            "token_type": "bearer",
            "expires_in": ttl,
            "refresh_token": token.refresh_token,
        }
    )


def valid_client_credentials(request: HttpRequest) -> str | None:
    """The client id if the request carries the sandbox's client credentials, else None."""
    form = request.content_type.startswith("application/x-www-form-urlencoded")
    # Form fields are the deprecated way; Basic auth wins when both are sent.
    credentials = _basic_credentials(request) or (
        (request.POST.get("client_id", ""), request.POST.get("client_secret", ""))
        if form
        else ("", "")
    )
    client_id, secret = credentials
    valid = secrets.compare_digest(
        client_id.encode(), settings.SANDBOX_CLIENT_ID.encode()
    ) & secrets.compare_digest(secret.encode(), settings.SANDBOX_CLIENT_SECRET.encode())
    return client_id if valid else None


def _client_id(request: HttpRequest) -> str:
    client_id = valid_client_credentials(request)
    if client_id is None:
        raise ApiError("AUTHENTICATION_ERROR", "Unknown client id or wrong secret.")
    return client_id


def _token(request: HttpRequest) -> JsonResponse:
    # Credentials first, for every grant (the contract puts the endpoint behind
    # HTTP Basic): a caller without them learns nothing about its request.
    client_id = _client_id(request)
    if not request.content_type.startswith("application/x-www-form-urlencoded"):
        raise ApiError("REQUEST_VALIDATION_ERROR", "Send a form-encoded body.")
    grant_type = request.POST.get("grant_type", "")
    if grant_type == "client_credentials":
        return _issue(client_id)
    if grant_type == "refresh_token":
        value = request.POST.get("refresh_token", "")
        if not value:
            raise ApiError("REQUEST_VALIDATION_ERROR", "refresh_token is required.")
        old = ApiToken.objects.filter(
            refresh_token=value, refresh_used=False, client_id=client_id
        ).first()
        if old is None or timezone.now() >= old.created_at + REFRESH_TOKEN_LIFETIME:
            raise ApiError("AUTHENTICATION_ERROR", "The refresh token is not valid.")
        # Refresh tokens are single use: the new answer carries the next one.
        ApiToken.objects.filter(pk=old.pk).update(refresh_used=True)
        return _issue(old.client_id)
    raise ApiError(
        "REQUEST_VALIDATION_ERROR",
        "grant_type must be client_credentials or refresh_token.",
        {"field": "grant_type"},
    )


def _test_token(request: HttpRequest) -> JsonResponse:
    token = authenticate(request)
    return JsonResponse({"clientId": token.client_id, "organizationId": ORGANIZATION_ID})


token = api_view({"POST": _token}, auth=False)
test_token = api_view({"POST": _test_token})
