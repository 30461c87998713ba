"""The chaos test of `make test`: real `run_worker` processes, a real portal
receiving the sandbox's webhooks and the real sandbox injecting 5xx, 429
bursts, hangs, ambiguous POSTs (applied, never answered) and duplicate
webhooks, while a worker is killed with SIGKILL and replaced. Every VIN ends
in the state the sandbox holds for it, none is left unsettled, and a VIN sent
in two connect groups (a resent ambiguous POST) is reconciled like any other.

The processes share the test database, so PostgreSQL only (the SQLite run's
database lives in the test process's memory). `make chaos` is the same with
thousands of VINs, several workers and repeated kills (`tests/chaos.py`)."""

import random
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from tests import chaos

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

VINS = 300
# How long the VINs may take to settle (the wait ends as soon as they have).
# A batch whose sends keep failing waits 5, 10, 20 then 40 s between tries
# (`sending.send`, give or take a fifth), after the killed worker's 6 s lease:
# four failures in a row (about one run in twenty with these faults) need
# about 90 s, more when the SQLite suite runs beside this one (`make test`).
SETTLE_WITHIN = 150.0


def test_database_url() -> str:
    settings = connection.settings_dict
    password = f":{quote(settings['PASSWORD'])}" if settings["PASSWORD"] else ""
    return (
        f"postgres://{quote(settings['USER'])}{password}@{settings['HOST']}:{settings['PORT']}"
        f"/{settings['NAME']}"
    )


test_database_url.__test__ = False  # a helper, not a test


def sandbox_database(sandbox) -> Path:
    """The sandbox's SQLite file, in the folder the fixture started it in."""
    (database,) = sandbox.log_path.parent.glob("sandbox*.sqlite3")
    return database


def test_every_vin_ends_in_its_true_state_through_faults_and_a_killed_worker(
    sandbox, fleet, manager, tmp_path
):
    stack = chaos.Stack(
        tmp_path,
        test_database_url(),
        sandbox.url,
        (sandbox.client_id, sandbox.client_secret),
        sandbox.webhook_secret,
    )
    killed: list[int] = []

    def kill_one_worker_mid_run(elapsed: float) -> None:
        if not killed and elapsed >= 3:
            killed.append(stack.kill_worker(random.Random(7)))

    try:
        stack.start_portal(chaos.free_port())
        stack.start_worker()
        stack.start_worker()
        sandbox.control(
            faults=chaos.faults(),
            webhook_duplicates=0.3,
            webhook_url=f"{stack.portal_url}/webhooks/volteras/",
        )
        upload_id = chaos.submit_vins(fleet, manager, VINS)
        settled = chaos.wait_until_settled(upload_id, SETTLE_WITHIN, kill_one_worker_mid_run)
        sandbox.control(faults=[], webhook_url="")
        left = chaos.progress(upload_id)
        result = chaos.compare(upload_id, chaos.sandbox_truth(sandbox_database(sandbox)))
    finally:
        stack.stop()
        sandbox.reset()

    assert killed, "no worker was killed"
    assert settled is not None, f"not settled within {SETTLE_WITHIN:.0f}s: {left}"
    assert result["mismatches"] == []
    assert sum(result["statuses"].values()) == VINS
    assert result["statuses"] == {
        "CONNECTED": 210,
        "ERROR": 30,
        "INCOMPATIBLE": 30,
        "CONNECTION_REQUIRED": 30,
    }
