from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from connections.models import WorkerHeartbeat, user_is_support
from connections.volteras.health import VolterasHealth, volteras_health

# A worker beats every few seconds; three missed sweeps mean it is gone.
WORKER_STALE_AFTER = timedelta(seconds=max(60, settings.WORKER_SWEEP_SECONDS * 6))


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Load balancers and on-call read this: 200 when healthy, 503 otherwise.

    "unhealthy" when the portal itself is not (database, worker); "degraded"
    when it runs but cannot use Volteras (down, or refusing the credentials).
    Anyone gets the status and short codes; staff and support the reasons."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database_ok, database_error = True, ""
    except Exception as exc:  # any driver error means "not reachable"
        database_ok, database_error = False, exc.__class__.__name__

    age = WorkerHeartbeat.latest_age() if database_ok else None
    worker_ok = age is not None and age <= WORKER_STALE_AFTER
    # The probe reads the token the workers share, from the database: without it,
    # there is nothing to ask Volteras with.
    volteras = (
        volteras_health()
        if database_ok
        else VolterasHealth(False, "not_checked", "The database is unreachable.")
    )

    status = "ok" if volteras.ok else "degraded"
    if not (database_ok and worker_ok):
        status = "unhealthy"
    body = {
        "status": status,
        "database": {"ok": database_ok, "error": database_error},
        "worker": {
            "ok": worker_ok,
            "heartbeat_age_seconds": None if age is None else round(age.total_seconds(), 1),
        },
        "volteras": {"ok": volteras.ok, "code": volteras.code},
    }
    if database_ok and _may_read_reasons(request):
        body["volteras"]["detail"] = volteras.reason
    return JsonResponse(body, status=200 if status == "ok" else 503)


def _may_read_reasons(request: HttpRequest) -> bool:
    user = request.user
    return user.is_authenticated and (user.is_staff or user_is_support(user))
