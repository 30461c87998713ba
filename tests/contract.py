"""OpenAPI conformance checks against Volteras' published contract.

Use `validate_request` / `validate_response` on every exchange a test sees
(`response_hook` plugs both into an httpx client). Successful answers are
checked by openapi-core against `openapi.json`; error answers, which the
document does not describe, against the error envelope of `error-codes.yml`,
with the code required to be one the operation lists (any registry code for
429, which Volteras documents only as a rate limit).
"""

import functools
import json
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
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
) -> None:
    """Raise AssertionError unless the request is one the contract accepts."""
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
    if status >= 400:
        _validate_envelope(where, status, body_bytes, found[1] if found else None)
        return
    assert found, f"{where}: no such operation in the contract"
    header = Headers(list(dict(headers or {}).items()))
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


def _validate_envelope(
    where: str, status: int, body_bytes: bytes | None, operation: dict[str, Any] | None
) -> None:
    try:
        body = json.loads(body_bytes or b"")
    except ValueError:
        raise AssertionError(f"{where}: error answer is not JSON: {body_bytes!r}") from None
    assert isinstance(body, dict), f"{where}: error answer is not an object"
    for name, kind in ENVELOPE_FIELDS.items():
        assert isinstance(body.get(name), kind), f"{where}: envelope field {name} missing: {body}"
    assert "data" in body and isinstance(body["data"], dict | None), f"{where}: bad data: {body}"
    code = body["error"]
    if status == 429:
        assert code in registry_codes(), f"{where}: {code} is not a registry code"
    elif operation is not None:
        allowed = documented_error_codes(operation)
        assert code in allowed, f"{where}: {code} not among the operation's codes {allowed}"


def check_exchange(response: httpx.Response) -> None:
    """Validate one httpx exchange against the contract.

    The answer is always checked; the request only when it was accepted, so a
    test may send a deliberately broken request to see it refused.
    """
    request = response.request
    path = request.url.path
    if not path.startswith("/v1/"):
        return
    response.read()
    query = request.url.query.decode()
    if response.status_code < 400:
        validate_request(request.method, path, request.headers, request.content, query)
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
