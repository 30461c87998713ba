"""OpenAPI conformance checks against Volteras' published contract.

Use `validate_request` / `validate_response` on every exchange a test sees
(`response_hook` plugs both into an httpx client). Requests are checked by
openapi-core, plus: no query parameter the operation does not declare.
Successful answers are checked by openapi-core against `openapi.json`, plus:
no body where the contract documents none (DELETE's 202). Error answers, which
the document does not describe, are checked against the envelope of
`error-codes.yml`: JSON content type, every field, an ISO 8601 timestamp with
its offset, a code the operation lists (or a paging code of a cursor-paged
operation), and a code that goes with the HTTP status (`CODE_STATUSES`). On an
unknown path the answer must be RESOURCE_NOT_FOUND (405 REQUEST_VALIDATION_ERROR
for a wrong method on a known path).

`validate_webhook` checks a delivered webhook: Svix headers and signature and
the body the README documents (openapi.json has no webhook definitions).
"""

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jsonschema
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

REPO_ROOT = Path(__file__).resolve().parent.parent
# The published contract lives beside the repository (CI clones it with
# shared/ next to the checkout); every test reads it from here.
CONTRACT_DIR = REPO_ROOT.parent / "shared" / "volteras"
if not (CONTRACT_DIR / "openapi.json").exists():
    raise RuntimeError(
        f"The Volteras contract is missing: expected {CONTRACT_DIR}/openapi.json "
        "(the shared/ folder beside this repository)."
    )
SPEC_PATH = CONTRACT_DIR / "openapi.json"
ERROR_CODES_PATH = CONTRACT_DIR / "error-codes.yml"
HOST_URL = "https://api.sandbox.volteras.com"
ENVELOPE_FIELDS = {"requestId": str, "timestamp": str, "error": str, "message": str}
# The registry calls the timestamp "an ISO8601 formatted date and time": a date,
# a time and, for a moment rather than a wall-clock reading, its offset.
ISO_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")

# Which HTTP statuses each error code may come with. Neither openapi.json nor
# error-codes.yml states statuses, so this is the plain reading of each code
# (refusals are 4xx, only SERVER_ERROR is 5xx, only a rate limit is 429), and
# what the portal's error mapping relies on (`connections/volteras/errors.py`).
CODE_STATUSES: dict[str, frozenset[int]] = {
    "AUTHENTICATION_ERROR": frozenset({401}),
    "NOT_PERMITTED": frozenset({403}),
    "DEVICE_LIMIT_REACHED": frozenset({403}),
    "RESOURCE_NOT_FOUND": frozenset({404}),
    # 400 or 422 for a malformed request (FastAPI's choice), 405 for a wrong method.
    "REQUEST_VALIDATION_ERROR": frozenset({400, 405, 422}),
    "PAGE_SIZE_TOO_LARGE": frozenset({400}),
    "PAGINATED_QUERY_FILTER_CHANGED": frozenset({400}),
    "QUERY_PAGE_TOKEN_EXPIRED": frozenset({400}),
    "UNSUPPORTED_OEM": frozenset({400}),
    "COMMAND_ALREADY_IN_PROGRESS": frozenset({409}),
    "INTERNAL_RATE_LIMITED": frozenset({429}),
    "SERVER_ERROR": frozenset(range(500, 600)),
}
# Codes a call may meet though it does not list them: the rate limit (the
# contract documents 429 for no operation, yet the registry has its code) and,
# for a cursor-paged call, the registry's expired page token (listed by no
# operation, yet the registry's own advice is to restart such a query).
RATE_LIMIT_CODES = frozenset({"INTERNAL_RATE_LIMITED"})
PAGING_CODES = frozenset({"QUERY_PAGE_TOKEN_EXPIRED"})
# A path no operation has: answered before routing (auth, rate limit, failure)
# or as not found.
UNROUTED_CODES = frozenset(
    {"RESOURCE_NOT_FOUND", "AUTHENTICATION_ERROR", "INTERNAL_RATE_LIMITED", "SERVER_ERROR"}
)


@functools.cache
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_PATH))


@functools.cache
def _raw_spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@functools.cache
def registry_codes() -> frozenset[str]:
    data = yaml.safe_load(ERROR_CODES_PATH.read_text())
    return frozenset(entry["code"] for entry in data["error_codes"])


@dataclass
class _Request:
    method: str
    path: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters
    host_url: str = HOST_URL


@dataclass
class _Response:
    status_code: int
    data: bytes | None
    content_type: str
    headers: Headers = field(default_factory=Headers)


def _query(query: str | dict[str, Any] | None) -> ImmutableMultiDict:
    if query is None:
        return ImmutableMultiDict()
    if isinstance(query, str):
        return ImmutableMultiDict(parse_qsl(query, keep_blank_values=True))
    return ImmutableMultiDict([(k, str(v)) for k, v in query.items()])


def _request(method: str, url_path: str, headers: Any, body: bytes | None, query: Any) -> _Request:
    header = Headers(list(dict(headers or {}).items()))
    return _Request(
        method=method.lower(),
        path=url_path,
        body=body or None,
        content_type=header.get("content-type", "").lower(),
        parameters=RequestParameters(query=_query(query), header=header),
    )


def _path_template(method: str, url_path: str) -> tuple[str, dict[str, Any]] | None:
    """The contract's path template and operation for a concrete path, or None."""
    best = None
    for template, operations in _raw_spec()["paths"].items():
        operation = operations.get(method.lower())
        if operation is None:
            continue
        pattern = re.escape(template)
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
        if re.fullmatch(pattern, url_path):
            literal = len(re.sub(r"\{[^}]+\}", "", template))
            if best is None or literal > best[0]:
                best = (literal, template, operation)
    return (best[1], best[2]) if best else None


def _path_exists(url_path: str) -> bool:
    """Whether some operation (of any method) has this path."""
    return any(
        _path_template(method, url_path)
        for method in ("get", "post", "put", "patch", "delete", "head", "options")
    )


def _declared_query(operation: dict[str, Any]) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}


def _is_json(content_type: str) -> bool:
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or mimetype.endswith("+json")


def documented_error_codes(operation: dict[str, Any]) -> set[str]:
    description = operation.get("description", "")
    listed = description.split("Possible Codes in Error Response", 1)[-1]
    codes = set(re.findall(r"^- ([A-Z_]+)$", listed, flags=re.MULTILINE))
    return codes | set(operation.get("x-list-error-codes", []))


def _explain(exc: BaseException) -> str:
    """openapi-core's errors say little in their repr; the cause names the field."""
    text = str(exc) or str(exc.__cause__ or exc.__context__ or "")
    return f"{exc.__class__.__name__}: {text}"


def validate_request(
    method: str,
    url_path: str,
    headers: Any,
    body_bytes: bytes | None,
    query: str | dict[str, Any] | None = None,
    *,
    unknown_query_allowed: bool = False,
) -> None:
    """Raise AssertionError unless the request is one the contract accepts.

    Undeclared query parameters count as breaking it for the portal's own
    requests; a server may ignore them (`unknown_query_allowed`)."""
    request = _request(method, url_path, headers, body_bytes, query)
    try:
        with warnings.catch_warnings():
            # openapi-core cannot check OAuth2 schemes; the bearer header is the server's job.
            warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
            openapi().validate_request(request)
    except Exception as exc:
        raise AssertionError(
            f"{method} {url_path}: request breaks the contract: {_explain(exc)}"
        ) from exc
    # openapi-core lets undeclared query parameters through; Volteras ignores
    # them at best, so one is a typo or a misremembered name in our client.
    found = _path_template(method, url_path)
    unknown = set(request.parameters.query) - _declared_query(found[1]) if found else set()
    if unknown_query_allowed:
        unknown = set()
    assert not unknown, (
        f"{method} {url_path}: request breaks the contract: "
        f"unknown query parameters {sorted(unknown)}"
    )


def validate_authorization(method: str, url_path: str, headers: Any) -> None:
    """Raise AssertionError unless the request carries the credentials its
    operation's `security` names: HTTP Basic for the token call, a bearer
    token for every other call (openapi-core does not check OAuth2)."""
    found = _path_template(method, url_path)
    assert found, f"{method} {url_path}: no such operation in the contract"
    schemes = {name for entry in found[1].get("security", []) for name in entry}
    authorization = Headers(list(dict(headers or {}).items())).get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    expected = "basic" if schemes == {"HTTPBasic"} else "bearer"
    assert scheme.lower() == expected and credentials.strip(), (
        f"{method} {url_path}: expected {expected.title()} credentials, "
        f"got Authorization {authorization[:16]!r}"
    )


def validate_response(
    method: str,
    url_path: str,
    status: int,
    headers: Any,
    body_bytes: bytes | None,
    query: str | dict[str, Any] | None = None,
) -> None:
    """Raise AssertionError unless the answer matches the contract for this call."""
    where = f"{method} {url_path} -> {status}"
    found = _path_template(method, url_path)
    header = Headers(list(dict(headers or {}).items()))
    if status >= 400:
        _validate_error(where, url_path, status, header, body_bytes, found[1] if found else None)
        return
    assert found, f"{where}: no such operation in the contract"
    documented = found[1].get("responses", {}).get(str(status))
    assert documented is not None, f"{where}: status not documented for this operation"
    if "content" not in documented:
        # e.g. DELETE /v1/vehicles/{id} -> 202 "Accepted": nothing to parse.
        assert not body_bytes, f"{where}: the contract documents no body, got {body_bytes[:80]!r}"
        return
    content_type = header.get("content-type", "")
    assert _is_json(content_type), f"{where}: content type {content_type!r}, not JSON"
    request = _request(method, url_path, {}, None, query)
    response = _Response(
        status_code=status,
        data=body_bytes or None,
        content_type=header.get("content-type", "").lower(),
        headers=header,
    )
    try:
        openapi().validate_response(request, response)
    except Exception as exc:
        raise AssertionError(f"{where}: answer breaks the contract: {_explain(exc)}") from exc


def _validate_error(
    where: str,
    url_path: str,
    status: int,
    headers: Headers,
    body_bytes: bytes | None,
    operation: dict[str, Any] | None,
) -> None:
    content_type = headers.get("content-type", "")
    assert _is_json(content_type), f"{where}: error answer's content type is {content_type!r}"
    try:
        body = json.loads(body_bytes or b"")
    except ValueError:
        raise AssertionError(f"{where}: error answer is not JSON: {body_bytes!r}") from None
    assert isinstance(body, dict), f"{where}: error answer is not an object"
    for name, kind in ENVELOPE_FIELDS.items():
        assert isinstance(body.get(name), kind), f"{where}: envelope field {name} missing: {body}"
    assert "data" in body and isinstance(body["data"], dict | None), f"{where}: bad data: {body}"
    stamp = body["timestamp"]
    assert ISO_TIMESTAMP.fullmatch(stamp), f"{where}: timestamp {stamp!r} not ISO 8601 with offset"
    try:
        datetime.fromisoformat(stamp)
    except ValueError:
        raise AssertionError(f"{where}: timestamp {stamp!r} is not a real moment") from None

    code = body["error"]
    if operation is not None:
        allowed = documented_error_codes(operation) | RATE_LIMIT_CODES
        if "pageToken" in _declared_query(operation):
            allowed |= PAGING_CODES
    elif _path_exists(url_path):
        allowed = set(UNROUTED_CODES | {"REQUEST_VALIDATION_ERROR"})
    else:
        allowed = set(UNROUTED_CODES)
    assert code in allowed, f"{where}: {code} not among the operation's codes {sorted(allowed)}"
    assert status in CODE_STATUSES.get(code, ()), (
        f"{where}: {code} does not go with HTTP {status} "
        f"(expected {sorted(CODE_STATUSES.get(code, ()))[:3]})"
    )
    if operation is None and code == "REQUEST_VALIDATION_ERROR":
        assert status == 405, f"{where}: a wrong method is 405, got {status}"
    if status == 429 and headers.get("retry-after") is not None:
        _validate_retry_after(where, headers["retry-after"])


def _validate_retry_after(where: str, value: str) -> None:
    if value.strip().isdigit():
        return
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise AssertionError(
            f"{where}: Retry-After {value!r} is neither seconds nor a date"
        ) from None


def validate_exchange_request(
    method: str,
    url_path: str,
    status: int,
    headers: Any,
    body_bytes: bytes | None,
    query: str | dict[str, Any] | None = None,
) -> None:
    """Check the request of an exchange whatever the answer: a request the
    contract refuses must have been refused as the caller's fault (a 4xx other
    than 429), never accepted, rate limited or answered with a server error.
    A conforming request may be refused for other reasons (unknown id, rules
    the schema cannot express), which the answer's own checks judge."""
    try:
        validate_request(method, url_path, headers, body_bytes, query)
    except AssertionError as exc:
        if 400 <= status < 500 and status != 429:
            return
        raise AssertionError(f"{exc} (and it was answered {status}, not refused)") from exc


def check_exchange(response: httpx.Response) -> None:
    """Validate one httpx exchange against the contract.

    The answer is always checked, and so is the request: a test may send a
    deliberately broken request, but then it must have been refused as such
    (`validate_exchange_request`).
    """
    request = response.request
    path = request.url.path
    if not path.startswith("/v1/"):
        return
    response.read()
    query = request.url.query.decode()
    validate_exchange_request(
        request.method, path, response.status_code, request.headers, request.content, query
    )
    validate_response(
        request.method, path, response.status_code, response.headers, response.content, query
    )


def response_hook(response: httpx.Response) -> None:
    """An httpx `event_hooks={"response": [...]}` entry."""
    check_exchange(response)


class ContractWatch:
    """httpx event hooks that check every /v1/ exchange of a client the portal
    built (its requests always, credentials included, since the portal never
    means to send a broken one), and remember each mismatch.

    A hook that raises fails the call where it happens; remembering matters
    for calls made in another thread (the live server's request threads, a
    worker thread), where the portal or django-tasks may swallow the error:
    `failures` lets the test fail all the same.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures: list[str] = []
        self.checked = 0

    def _record(self, check: Any, *args: Any) -> None:
        try:
            check(*args)
        except AssertionError as exc:
            with self._lock:
                self.failures.append(str(exc))
            raise
        with self._lock:
            self.checked += 1

    def on_request(self, request: httpx.Request) -> None:
        if not request.url.path.startswith("/v1/"):
            return
        self._record(self._check_request, request)

    @staticmethod
    def _check_request(request: httpx.Request) -> None:
        path = request.url.path
        validate_authorization(request.method, path, request.headers)
        validate_request(
            request.method, path, request.headers, request.content, request.url.query.decode()
        )

    def on_response(self, response: httpx.Response) -> None:
        if not response.request.url.path.startswith("/v1/"):
            return
        self._record(self._check_response, response)

    @staticmethod
    def _check_response(response: httpx.Response) -> None:
        request = response.request
        response.read()
        validate_response(
            request.method,
            request.url.path,
            response.status_code,
            response.headers,
            response.content,
            request.url.query.decode(),
        )

    def hooks(self) -> dict[str, list[Any]]:
        return {"request": [self.on_request], "response": [self.on_response]}

    def take_failures(self) -> list[str]:
        """The mismatches seen since the last call (each is reported once)."""
        with self._lock:
            failures, self.failures = self.failures, []
        return failures


# Webhooks. openapi.json defines none; the README gives them: delivered through
# Svix, events `device.connected` and `device.disconnected`, both with the body
# {"id": "<vehicle id>", "deviceType": "VEHICLE"} (the type is not in the body).
WEBHOOK_EVENT_TYPES = frozenset({"device.connected", "device.disconnected"})
WEBHOOK_TOLERANCE_SECONDS = 5 * 60  # Svix's own replay window


@functools.cache
def webhook_body_schema() -> dict[str, Any]:
    device_types = _raw_spec()["components"]["schemas"]["DeviceTypeEnum"]
    return {
        "type": "object",
        "required": ["id", "deviceType"],
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "deviceType": {"type": "string", "enum": device_types["enum"]},
        },
        "additionalProperties": False,
    }


def svix_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The `v1,<base64>` signature Svix puts on a delivery."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def validate_webhook(
    headers: Any, body: bytes, secret: str, *, now: float | None = None
) -> dict[str, Any]:
    """Raise AssertionError unless this is a webhook delivery as the contract
    describes it; return its parsed body."""
    header = Headers(list(dict(headers or {}).items()))
    msg_id = header.get("svix-id", "")
    where = f"webhook {msg_id or '(no svix-id)'}"
    assert msg_id.strip(), f"{where}: svix-id header missing"
    content_type = header.get("content-type", "")
    assert _is_json(content_type), f"{where}: content type {content_type!r}, not JSON"

    timestamp = header.get("svix-timestamp", "")
    assert timestamp.isdigit(), f"{where}: svix-timestamp {timestamp!r} is not Unix seconds"
    skew = abs((time.time() if now is None else now) - int(timestamp))
    assert skew <= WEBHOOK_TOLERANCE_SECONDS, f"{where}: svix-timestamp {skew:.0f}s off"

    signatures = header.get("svix-signature", "").split()
    assert signatures, f"{where}: svix-signature header missing"
    for entry in signatures:
        version, _, value = entry.partition(",")
        assert version.startswith("v") and value, f"{where}: malformed signature {entry!r}"
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            raise AssertionError(f"{where}: signature {entry!r} is not base64") from None
    expected = svix_signature(secret, msg_id, timestamp, body)
    assert any(hmac.compare_digest(entry, expected) for entry in signatures), (
        f"{where}: no v1 signature matches the body under the shared secret"
    )

    try:
        payload = json.loads(body)
    except ValueError:
        raise AssertionError(f"{where}: body is not JSON: {body[:80]!r}") from None
    try:
        jsonschema.validate(payload, webhook_body_schema())
    except jsonschema.ValidationError as exc:
        raise AssertionError(f"{where}: body breaks the contract: {exc.message}") from None
    return payload


def registry() -> list[dict]:
    """The error codes Volteras publishes (`error-codes.yml`)."""
    return yaml.safe_load(ERROR_CODES_PATH.read_text())["error_codes"]


def codes_in(place: str) -> set[str]:
    """The published error codes that can appear in `place` (e.g. `VIN_UPLOAD`)."""
    return {entry["code"] for entry in registry() if place in entry["places"]}


def per_vin_codes_in_openapi() -> set[str]:
    """The contract's per-VIN error code enum (a connect group result's `errors[].code`)."""
    schemas = json.loads(SPEC_PATH.read_text())["components"]["schemas"]
    return set(schemas["VehicleInputResponseError"]["properties"]["code"]["enum"])
