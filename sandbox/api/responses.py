"""JSON answers, the Volteras error envelope, and the bearer-token guard."""

import json
import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from sandbox.models import ApiToken

log = logging.getLogger("sandbox.api")

REALM = 'realm="Volteras sandbox"'
# Operations of the contract the sandbox does not implement whose documented
# codes leave out RESOURCE_NOT_FOUND: they answer 501 SERVER_ERROR instead.
_NOT_FOUND_UNDOCUMENTED = re.compile(r"^/v1/vehicles/[^/]+/(departure-times|charging-windows)$")

STATUS_FOR_CODE = {
    "AUTHENTICATION_ERROR": 401,
    "NOT_PERMITTED": 403,
    "DEVICE_LIMIT_REACHED": 403,
    "RESOURCE_NOT_FOUND": 404,
    "REQUEST_VALIDATION_ERROR": 422,
    "PAGE_SIZE_TOO_LARGE": 400,
    "PAGINATED_QUERY_FILTER_CHANGED": 400,
    "UNSUPPORTED_OEM": 400,
    "INTERNAL_RATE_LIMITED": 429,
    "SERVER_ERROR": 500,
}


class ApiError(Exception):
    """Raised anywhere in a view; `api_view` turns it into the error envelope."""

    def __init__(self, code: str, message: str, data: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def error_response(code: str, message: str, data: dict[str, Any] | None = None) -> JsonResponse:
    body = {
        "requestId": str(uuid.uuid4()),
        "timestamp": iso(timezone.now()),
        "error": code,
        "message": message,
        "data": data,
    }
    return JsonResponse(body, status=STATUS_FOR_CODE.get(code, 400))


def challenged(response: HttpResponse, scheme: str) -> HttpResponse:
    """A 401 names the credentials it wants (RFC 9110), as every 401 should."""
    if response.status_code == 401:
        response["WWW-Authenticate"] = f"{scheme} {REALM}"
    return response


def json_body(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError("REQUEST_VALIDATION_ERROR", "The body is not valid JSON.") from None


def authenticate(request: HttpRequest) -> ApiToken:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError("AUTHENTICATION_ERROR", "A bearer token is required.")
    found = ApiToken.objects.filter(access_token=token.strip()).first()
    if found is None:
        raise ApiError("AUTHENTICATION_ERROR", "The access token is not valid.")
    if found.is_expired():
        raise ApiError("AUTHENTICATION_ERROR", "The access token has expired.")
    return found


def api_view(
    methods: dict[str, Callable[..., HttpResponse]], *, auth: bool = True
) -> Callable[..., HttpResponse]:
    """One URL, a handler per HTTP method; every failure becomes the envelope.

    `auth=False` is the token endpoint, which checks HTTP Basic credentials itself.
    """
    scheme = "Bearer" if auth else "Basic"

    @csrf_exempt
    @login_not_required
    def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        return challenged(_answer(request, kwargs), scheme)

    def _answer(request: HttpRequest, kwargs: dict[str, Any]) -> HttpResponse:
        handler = methods.get(request.method or "")
        try:
            if auth:
                authenticate(request)
            if handler is None:
                response = error_response(
                    "REQUEST_VALIDATION_ERROR", f"{request.method} is not allowed here."
                )
                response.status_code = 405
                response["Allow"] = ", ".join(methods)
                return response
            return handler(request, **kwargs)
        except ApiError as exc:
            return error_response(exc.code, exc.message, exc.data)
        except Exception:
            # Like the real API: a bug answers the SERVER_ERROR envelope, never a debug page.
            log.exception("sandbox API error on %s %s", request.method, request.path)
            return error_response("SERVER_ERROR", "Something went wrong in the sandbox.")

    return view


def _not_implemented(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any other `/v1/` path: the contract's other operations and unknown paths alike.

    The token is checked first, as for every operation; then the answer is an
    error code the operation documents.
    """
    if _NOT_FOUND_UNDOCUMENTED.match(request.path):
        response = error_response(
            "SERVER_ERROR", f"The sandbox does not implement {request.method} {request.path}."
        )
        response.status_code = 501
        return response
    raise ApiError("RESOURCE_NOT_FOUND", f"No such endpoint in the sandbox: {request.path}")


unknown_endpoint = api_view(
    {m: _not_implemented for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")}
)
