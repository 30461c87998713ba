"""The fleet list's bulk actions, on the ticked rows or on every row matching
the filters: retry and consent links (support's own actions, so the same rules
and refusals hold), tags, and removing vehicles from the fleet."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import QuerySet

from connections.fleet.listing import Filters, account_vehicles, filter_vehicles
from connections.models import Fleet, Vehicle, VinEntry, VinStatus
from connections.support.actions import load_entries, retry, send_consent_links
from connections.volteras import NotFound, VolterasError, get_client

# How many rows one click acts on, per action: consent links and disconnects
# are one call to Volteras each, so they go in steps (click again to go on).
LIMITS = {"retry": 2000, "consent": 50, "remove": 200, "tag": 100_000, "untag": 100_000}


# Upload rows whose vehicle Volteras holds: removing them disconnects it first.
_AT_VOLTERAS = (VinStatus.CONNECTED, *VinStatus.in_progress())


@dataclass
class BulkOutcome:
    done: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    left: int = 0


def retry_rows(entries: QuerySet[VinEntry], user) -> BulkOutcome:
    ids = list(entries.values_list("pk", flat=True)[: LIMITS["retry"] + 1])
    outcome = retry(load_entries(ids[: LIMITS["retry"]]), user)
    return _outcome(len(outcome.done), outcome.refused, len(ids) > LIMITS["retry"])


def consent_rows(entries: QuerySet[VinEntry], user) -> BulkOutcome:
    waiting = entries.waiting_for_consent()
    ids = list(waiting.values_list("pk", flat=True)[: LIMITS["consent"] + 1])
    outcome = send_consent_links(load_entries(ids[: LIMITS["consent"]]), user)
    skipped = entries.count() - waiting.count()
    result = _outcome(len(outcome.done), outcome.refused, len(ids) > LIMITS["consent"])
    if skipped:
        result.refused.append(("", _not_waiting(skipped)))
    return result


def _not_waiting(n: int) -> str:
    if n == 1:
        return "1 vehicle got no link: it is not waiting for its owner's consent."
    return f"{n} vehicles got no link: they are not waiting for their owners' consent."


def tag_rows(entries: QuerySet[VinEntry], add: list, drop: list, user) -> BulkOutcome:
    return BulkOutcome(done=entries.retag(add, drop, actor=user))


def remove_rows(
    fleet: Fleet, entries: QuerySet[VinEntry], vehicles: QuerySet[Vehicle], user
) -> BulkOutcome:
    """Take VINs out of the fleet; connected ones are disconnected at Volteras
    first (irreversible), and one Volteras refuses stays in the fleet."""
    outcome = BulkOutcome()
    limit = LIMITS["remove"]
    rows = list(entries.values_list("pk", "vin", "status", "vehicle_id")[: limit + 1])
    client = None
    disconnected = []
    kept = set()
    for pk, vin, status, vehicle_id in rows[:limit]:
        if status in _AT_VOLTERAS and vehicle_id:
            client = client or get_client()
            try:
                client.disconnect_vehicle(vehicle_id)
            except NotFound:
                pass
            except VolterasError as exc:
                outcome.refused.append((vin, f"Volteras did not disconnect it: {exc.message}"))
                kept.add(pk)
                continue
            disconnected.append(pk)
    ids = [pk for pk, *_ in rows[:limit] if pk not in kept]
    outcome.done = VinEntry.objects.filter(pk__in=ids).leave_fleet(disconnected, actor=user)
    outcome.done += _disconnect_vehicles(fleet, vehicles, user, outcome, limit)
    outcome.left = len(rows) > limit
    return outcome


def connected_count(entries: QuerySet[VinEntry], vehicles: QuerySet[Vehicle]) -> int:
    """How many of these rows removing would disconnect at Volteras."""
    at_volteras = entries.filter(status__in=_AT_VOLTERAS).exclude(vehicle_id="").count()
    return at_volteras + vehicles.filter(disconnected=False).count()


def _disconnect_vehicles(
    fleet: Fleet, vehicles: QuerySet[Vehicle], user, outcome: BulkOutcome, limit: int
) -> int:
    """Account vehicles leave the fleet by being disconnected at Volteras."""
    done = 0
    for vehicle in vehicles.filter(disconnected=False)[:limit]:
        try:
            get_client().disconnect_vehicle(vehicle.volteras_id)
        except NotFound:
            pass
        except VolterasError as exc:
            outcome.refused.append((vehicle.vin, f"Volteras did not disconnect it: {exc.message}"))
            continue
        Vehicle.objects.filter(pk=vehicle.pk).update(disconnected=True)
        done += 1
    return done


def selected_vehicles(fleet: Fleet, ids: list[int], f: Filters | None) -> QuerySet[Vehicle]:
    vehicles = account_vehicles(fleet)
    if f is not None:
        return filter_vehicles(vehicles, f)
    return vehicles.filter(pk__in=ids)


def _outcome(done: int, refused: list, left: bool) -> BulkOutcome:
    return BulkOutcome(done=done, refused=[(e.vin, reason) for e, reason in refused], left=left)
