"""`python -m sandbox --addr 127.0.0.1:8001`: the offline Volteras API.

It runs under `sandbox.settings` only (the portal's settings do not install
the sandbox), so its URLconf, middleware and database are its own.
"""

import signal
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.wsgi import get_wsgi_application

from sandbox import control
from sandbox.clock import Clock
from sandbox.server import make_server


class Command(BaseCommand):
    help = "Serve the offline Volteras sandbox (its own settings and database) until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8001", help="host:port to listen on")

    def handle(self, *args, addr: str, **options) -> None:
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit():
            raise CommandError(f"--addr must be host:port, got {addr!r}")
        if not settings.SANDBOX_WEBHOOK_SECRET.startswith("whsec_"):
            raise CommandError("SANDBOX_WEBHOOK_SECRET must be set to a whsec_... secret")
        call_command("migrate", interactive=False, verbosity=0)
        control.reset()
        server = make_server(host, int(port), get_wsgi_application())
        clock = Clock()
        stopping = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())

        clock.start()
        serving = threading.Thread(target=server.serve_forever, name="sandbox-http", daemon=True)
        serving.start()
        self.stdout.write(f"Volteras sandbox listening on http://{host}:{port}/", ending="\n")
        self.stdout.flush()
        while not stopping.wait(0.5):
            pass
        self.stdout.write("Stopping the sandbox.")
        server.shutdown()
        server.server_close()
        clock.stop()
        clock.join(timeout=5)
