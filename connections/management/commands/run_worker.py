"""The background worker: django-tasks-db's queue loop, plus a heartbeat, the
periodic sweep that re-drives overdue work, and between sweeps the quick
watch for new work such as stored webhook events (see connections.jobs).

Both loops outlive their database: an error a retry can cure (the server
went away, SQLite's "database is locked" past its busy timeout) is logged and
tried again after a growing wait, never the end of the process."""

import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections, connection
from django_tasks_db.management.commands.db_worker import Worker

from connections.backoff import TRANSIENT_DB_ERRORS, Backoff
from connections.jobs import WATCH_EVERY, sweep, watch
from connections.models import WorkerHeartbeat

logger = logging.getLogger("connections.worker")


def forget_connection() -> None:
    """Drop this thread's connection after a database error: the next query opens a new one."""
    try:
        connection.close()
    except DatabaseError:
        logger.debug("closing a broken connection failed", exc_info=True)


class ResilientWorker(Worker):
    """django-tasks-db's queue loop, which ends on a database error outside its
    claim (the BEGIN on a locked SQLite file, a dropped PostgreSQL connection,
    saving a task's result): here it starts again after a backoff. A task the
    error interrupted stays RUNNING until the sweep requeues it."""

    def run(self) -> None:
        backoff = Backoff()
        while self.running:
            started = time.monotonic()
            try:
                super().run()
                return
            except TRANSIENT_DB_ERRORS as exc:
                if time.monotonic() - started > backoff.cap:
                    backoff.succeeded()  # it had been working: start the waits afresh
                delay = backoff.failed()
                logger.warning("queue loop: database error (%s); again in %.1fs", exc, delay)
                forget_connection()
                self.startup_delay = False
                # A signal meanwhile ends the process (Worker.shutdown, no task running).
                time.sleep(delay)


def build_worker(
    worker_id: str, queues: list[str], interval: float, *, batch: bool = False
) -> ResilientWorker:
    return ResilientWorker(
        queue_names=queues,
        interval=interval,
        batch=batch,
        backend_name="default",
        startup_delay=not batch,
        max_tasks=None,
        worker_id=worker_id,
        excluded_queue_names=[],
    )


def sweep_forever(
    worker_id: str, stop: threading.Event, interval: float, watch_every: float = WATCH_EVERY
) -> None:
    hostname = socket.gethostname()
    next_sweep = 0.0
    backoff = Backoff(first=min(watch_every, interval) * 2)
    while not stop.is_set():
        wait = min(watch_every, interval)
        try:
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + interval
                WorkerHeartbeat.beat(worker_id, hostname)
                redriven = sweep()
                if any(n > 0 for n in redriven.values()):
                    logger.info("sweep re-drove %s", redriven)
            else:
                watch()
            backoff.succeeded()
            close_old_connections()
        except TRANSIENT_DB_ERRORS as exc:
            wait = backoff.failed()
            logger.warning("sweep: database error (%s); again in %.1fs", exc, wait)
            forget_connection()
        except Exception:
            logger.exception("sweep failed; trying again in %.1fs", interval)
            forget_connection()
        stop.wait(wait)


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
        worker = build_worker(worker_id, options["queues"] or ["default"], options["interval"])
        worker.configure_signals()
        logger.info("worker %s started", worker_id)
        try:
            worker.run()
        finally:
            stop.set()
