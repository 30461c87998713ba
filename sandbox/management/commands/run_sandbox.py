"""`manage.py run_sandbox --addr 127.0.0.1:8001`: the offline Volteras API."""

import logging
import signal
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    # The portal's checks (its Volteras settings) do not concern the sandbox.
    requires_system_checks: list[str] = []
    help = "Serve the offline Volteras sandbox (its own URLconf and database) until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8001", help="host:port to listen on")

    def handle(self, *args, addr: str, **options) -> None:
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit():
            raise CommandError(f"--addr must be host:port, got {addr!r}")
        if not settings.SANDBOX_WEBHOOK_SECRET.startswith("whsec_"):
            raise CommandError("SANDBOX_WEBHOOK_SECRET must be set to a whsec_... secret")
        call_command("migrate", database="sandbox", interactive=False, verbosity=0)

        # Serve only the sandbox; faults wrap everything else.
        settings.ROOT_URLCONF = "sandbox.urls"
        # The portal's Content-Security-Policy is not the sandbox's: it stands in for
        # Volteras' own pages, which carry their inline styles.
        settings.MIDDLEWARE = [
            "sandbox.faults.FaultMiddleware",
            *(m for m in settings.MIDDLEWARE if m != "csp.middleware.CSPMiddleware"),
        ]
        from django.core.wsgi import get_wsgi_application

        from sandbox import control
        from sandbox.clock import Clock
        from sandbox.server import make_server

        control.reset()
        # django.server already logs one line per request; skip the 4xx echo.
        logging.getLogger("django.request").setLevel(logging.ERROR)
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
