"""Property-based conformance: schemathesis-generated requests against the
running sandbox, for every operation it serves, valid ones and broken ones.

For each answer: never a 5xx; a success validates against openapi.json; an
error is the envelope with a code the operation documents (both checked by
`tests.contract.validate_response`); and a request the contract refuses is
never accepted. Generation is seeded (`derandomize`), so a run is repeatable.

The suite runs a few examples per operation and mode; `make fuzz` runs
SANDBOX_FUZZ_EXAMPLES per operation and mode (>= 5,000 requests in all) and
writes the figures to SANDBOX_FUZZ_REPORT.
"""

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.contract import SPEC_PATH, validate_request, validate_response
from tests.fixtures_sandbox import SandboxServer

EXAMPLES = int(os.environ.get("SANDBOX_FUZZ_EXAMPLES", "12"))
REPORT = os.environ.get("SANDBOX_FUZZ_REPORT", "")

# Every operation of the contract the sandbox implements (the others answer a
# documented error after the token check: tests/sandbox/test_auth.py covers them).
SERVED = [
    ("/v1/oauth2/token", "POST"),
    ("/v1/oauth2/test-token", "POST"),
    ("/v1/accounts", "GET"),
    ("/v1/accounts/{account_id}", "GET"),
    ("/v1/accounts:connect", "POST"),
    ("/v1/accounts/{account_id}:disconnect", "POST"),
    ("/v1/vehicles", "GET"),
    ("/v1/vehicles/{vehicle_id}", "GET"),
    ("/v1/vehicles/{vehicle_id}", "DELETE"),
    ("/v1/vehicles/connect", "POST"),
    ("/v1/vehicles/connect/{id}", "GET"),
    ("/v1/vehicles/connect/{id}/results", "GET"),
    ("/v1/vehicles/eligibility", "POST"),
    ("/v1/vehicles/eligibility/{id}/results", "GET"),
]

# Operations whose requests have something to break (a body, a constrained
# parameter); the others take only free strings in the path, and broken
# examples of them cannot be generated.
BREAKABLE = {
    ("/v1/oauth2/token", "POST"),
    ("/v1/accounts", "GET"),
    ("/v1/accounts:connect", "POST"),
    ("/v1/vehicles", "GET"),
    ("/v1/vehicles/connect", "POST"),
    ("/v1/vehicles/connect/{id}/results", "GET"),
    ("/v1/vehicles/eligibility", "POST"),
    ("/v1/vehicles/eligibility/{id}/results", "GET"),
}
CASES = [
    pytest.param(path, method, mode, id=f"{method} {path} {mode.value}")
    for path, method in SERVED
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode == GenerationMode.POSITIVE or (path, method) in BREAKABLE
]
SCHEMA = schemathesis.openapi.from_path(SPEC_PATH)


class Tally:
    """What the fuzzing saw, across all operations (for the `make fuzz` report)."""

    def __init__(self) -> None:
        self.requests = 0
        self.server_errors = 0
        self.deviations: list[str] = []
        self.statuses: Counter[str] = Counter()

    def as_json(self) -> dict:
        return {
            "requests": self.requests,
            "server_errors": self.server_errors,
            "schema_deviations": len(self.deviations),
            "first_deviations": self.deviations[:20],
            "statuses": dict(sorted(self.statuses.items())),
        }


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    found = Tally()
    yield found
    if REPORT:
        Path(REPORT).write_text(json.dumps(found.as_json(), indent=2) + "\n")


def _exchange(case, sandbox: SandboxServer, token: str, session: requests.Session):
    if case.operation.path == "/v1/oauth2/token":
        auth = requests.auth._basic_auth_str(sandbox.client_id, sandbox.client_secret)
    else:
        auth = f"Bearer {token}"
    case.headers = {**(case.headers or {}), "Authorization": auth}
    return case.call(base_url=sandbox.url, session=session, timeout=30)


def _check(response, method: str, mode: GenerationMode, tally: Tally) -> None:
    request = response.request
    url = urlsplit(request.url)
    headers = {k: v[0] if isinstance(v, list) else v for k, v in response.headers.items()}
    body = request.body.encode() if isinstance(request.body, str) else request.body
    where = f"{method} {url.path}?{url.query} ({mode.value}) -> {response.status_code}"
    tally.requests += 1
    tally.statuses[f"{method} {response.status_code}"] += 1
    if response.status_code >= 500:
        tally.server_errors += 1
        raise AssertionError(f"{where}: {response.content[:500]!r}")
    try:
        validate_response(
            method, url.path, response.status_code, headers, response.content, url.query
        )
        if response.status_code < 400 and mode == GenerationMode.NEGATIVE:
            # Accepted: then the contract must accept the request too (a server
            # may ignore a parameter it does not know, as Volteras' does).
            validate_request(
                method, url.path, request.headers, body, url.query, unknown_query_allowed=True
            )
    except AssertionError as exc:
        tally.deviations.append(f"{where}: {exc}"[:600])
        raise


@pytest.mark.parametrize(("path", "method", "mode"), CASES)
def test_generated_requests_conform(sandbox, tally, path, method, mode):
    operation = SCHEMA[path][method]
    token = sandbox.token()

    with requests.Session() as session:

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def conforms(case) -> None:
            _check(_exchange(case, sandbox, token, session), method, mode, tally)

        conforms()
