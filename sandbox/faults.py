"""Injected HTTP faults (configured through `/_sandbox/control`).

Only API paths are affected; `/_sandbox/` stays reliable so a test can always
switch faults off again.
"""

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from sandbox import control
from sandbox.api.responses import error_response

DROP_FLAG = "sandbox.drop_connection"


class FaultMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        method, path = request.method or "", request.path
        if path.startswith("/_sandbox/"):
            return self.get_response(request)
        started_in = control.generation()
        latency = control.take_fault(method, path, {"latency"})
        if latency:
            time.sleep(latency.ms / 1000)
        hang = control.take_fault(method, path, {"hang"})
        if hang:
            # Longer than the client is willing to wait; it should give up first.
            time.sleep(hang.seconds)
            if control.generation() != started_in:
                # The sandbox was reset meanwhile; the client gave up long ago.
                return error_response("SERVER_ERROR", "Request abandoned by a sandbox reset.")
        failure = control.take_fault(method, path, {"error", "rate_limit"})
        if failure and failure.kind == "error":
            return error_response("SERVER_ERROR", "Injected server error (sandbox fault).")
        if failure:
            response = error_response("INTERNAL_RATE_LIMITED", "Too many requests (sandbox fault).")
            response["Retry-After"] = str(failure.retry_after)
            return response
        response = self.get_response(request)
        if control.generation() == started_in and control.take_fault(method, path, {"drop"}):
            # The write above has been applied; the server drops the socket unanswered.
            request.META[DROP_FLAG] = True
        return response
