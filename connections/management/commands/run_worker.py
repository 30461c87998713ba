"""The background worker: django-tasks-db's queue loop, plus a heartbeat, the
periodic sweep that re-drives overdue work, and between sweeps the quick
watch for new work such as stored webhook events (see connections.jobs)."""

import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections
from django_tasks_db.management.commands.db_worker import Worker

from connections.jobs import WATCH_EVERY, sweep, watch
from connections.models import WorkerHeartbeat

logger = logging.getLogger("connections.worker")


def sweep_forever(
    worker_id: str, stop: threading.Event, interval: float, watch_every: float = WATCH_EVERY
) -> None:
    hostname = socket.gethostname()
    next_sweep = 0.0
    while not stop.is_set():
        try:
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + interval
                WorkerHeartbeat.beat(worker_id, hostname)
                redriven = sweep()
                if any(n > 0 for n in redriven.values()):
                    logger.info("sweep re-drove %s", redriven)
            else:
                watch()
        except Exception:
            logger.exception("sweep failed; trying again in %.1fs", interval)
        finally:
            close_old_connections()
        stop.wait(min(watch_every, interval))


class Command(BaseCommand):
    help = "Run a background worker (several may run, on several machines)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--queue", action="append", dest="queues", default=None)
        parser.add_argument("--interval", type=float, default=0.5)
        parser.add_argument("--worker-id", default=None)

    def handle(self, *args, **options) -> None:
        worker_id = options["worker_id"] or f"{socket.gethostname()}-{os.getpid()}"
        stop = threading.Event()
        thread = threading.Thread(
            target=sweep_forever,
            args=(worker_id, stop, settings.WORKER_SWEEP_SECONDS),
            name="sweep",
            daemon=True,
        )
        thread.start()
        worker = Worker(
            queue_names=options["queues"] or ["default"],
            interval=options["interval"],
            batch=False,
            backend_name="default",
            startup_delay=True,
            max_tasks=None,
            worker_id=worker_id,
            excluded_queue_names=[],
        )
        worker.configure_signals()
        logger.info("worker %s started", worker_id)
        try:
            worker.run()
        finally:
            stop.set()
