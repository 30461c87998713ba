"""The sandbox's threaded WSGI server, able to drop a connection on purpose."""

import contextlib
import socket
import socketserver
from collections.abc import Callable, Iterable
from typing import Any

from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer

from sandbox.faults import DROP_FLAG

SOCKET_KEY = "sandbox.socket"


class ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class RequestHandler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ[SOCKET_KEY] = self.connection
        return environ


def droppable(app: Callable) -> Callable:
    """Wrap the Django app: a response flagged by the drop fault is never sent."""

    def wsgi(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        result = app(environ, start_response)
        if environ.get(DROP_FLAG):
            if hasattr(result, "close"):
                result.close()
            sock: socket.socket = environ[SOCKET_KEY]
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            # wsgiref treats the broken pipe as a client that went away.
            raise BrokenPipeError("connection dropped on purpose")
        return result

    return wsgi


def make_server(host: str, port: int, app: Callable) -> ThreadedServer:
    server = ThreadedServer((host, port), RequestHandler)
    server.set_app(droppable(app))
    return server
