"""Run the local SMTP server that keeps every message under var/mail/ (`make run`)."""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from connections.mail import sink


class Command(BaseCommand):
    help = "A local SMTP server that keeps every message as an .eml file under DATA_DIR/mail/."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8025", help="host:port to listen on")

    def handle(self, *args, addr: str, **options) -> None:
        host, _, port = addr.rpartition(":")
        controller = sink.start(settings.MAIL_DIR, host or "127.0.0.1", int(port))
        self.stdout.write(f"Keeping mail sent to {addr} in {settings.MAIL_DIR}")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
