"""The bulk moves of VINs (`VinEntryQuerySet`): like `VinEntry.observe()`,
each writes the timeline and bumps the versions of the uploads it touched, in
one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from connections.explanations import EXPLANATIONS
from connections.models.statuses import Source, VinEvent, VinStatus
from connections.models.uploads import Upload

BULK_CHUNK = 2000


def consent_link_q() -> Q:
    """`VinEntry.consent_link_helps` as one SQL condition."""
    codes = [code for code, x in EXPLANATIONS.items() if x.consent_link]
    waiting = Q(status=VinStatus.CONNECTION_REQUIRED)
    return Q(superseded=False) & (waiting | Q(status=VinStatus.ERROR, error_code__in=codes))


class VinEntryQuerySet(models.QuerySet):
    """The bulk moves of a VIN's life (see the module's docstring)."""

    def waiting_for_consent(self) -> VinEntryQuerySet:
        """The VINs whose way forward is their owner's consent (`consent_link_q`)."""
        return self.filter(consent_link_q())

    def send_in(self, batch, source: str, detail: str, *, actor=None, retry: bool = False) -> int:
        """Queue these entries to be sent in `batch` (SUBMITTING). A retry also
        forgets the last attempt's failure. Sending a VIN again reopens it: a
        dismissal or an escalation was about the old attempt."""
        now = timezone.now()
        with transaction.atomic():
            moves = list(self.values_list("pk", "status", "upload_id"))
            changes: dict[str, Any] = {
                "batch": batch,
                "status": VinStatus.SUBMITTING,
                "status_changed_at": now,
                "submitted_at": now,
                "next_check_at": None,
                "dismissed": False,
                "escalated": False,
            }
            if retry:
                changes.update(
                    attempts=0,
                    error_codes=[],
                    error_code="",
                    message="",
                    action_category="",
                    can_retry=None,
                )
            self.model.objects.filter(pk__in=[pk for pk, _, _ in moves]).update(**changes)
            _record(
                [
                    (pk, status_from, VinStatus.SUBMITTING, detail, {})
                    for pk, status_from, _ in moves
                ],
                at=now,
                source=source,
                actor=actor,
            )
            _bump({upload_id for _, _, upload_id in moves})
        return len(moves)

    def supersede(self) -> int:
        """A later upload sends these VINs again: these rows leave the fleet's counts."""
        with transaction.atomic():
            uploads = set(self.values_list("upload_id", flat=True).distinct())
            moved = self.update(superseded=True)
            _bump(uploads)
        return moved

    def flag(self, entries: Sequence[Any], events: Sequence[VinEvent], **flags: bool) -> None:
        """Set support's flags (dismissed, escalated) on `entries`, with one
        timeline event each (see `VinEntry.note`)."""
        if not entries:
            return
        with transaction.atomic():
            self.model.objects.filter(pk__in=[e.pk for e in entries]).update(
                updated_at=timezone.now(), **flags
            )
            VinEvent.objects.bulk_create(events)
            _bump({e.upload_id for e in entries})
        for entry in entries:
            for name, value in flags.items():
                setattr(entry, name, value)

    def schedule_recheck(self, at: datetime) -> int:
        """VINs still waiting after their group finished are read again at `at`
        (unless already scheduled)."""
        return self.filter(next_check_at__isnull=True).update(next_check_at=at)

    def claim_rechecks(self, now: datetime, until: datetime) -> int:
        """Take due rechecks for this worker: their next check moves to `until`
        first, so another worker's sweep skips them (one conditional UPDATE)."""
        return self.filter(next_check_at__lte=now).update(next_check_at=until)

    def set_eligibility(self, status: str, message: str = "") -> int:
        """The eligibility pre-check's answer for all of these VINs (advisory only)."""
        with transaction.atomic():
            uploads = set(self.values_list("upload_id", flat=True).distinct())
            moved = self.update(eligibility=status, eligibility_message=message)
            _bump(uploads)
        return moved

    def record_eligibility(self, changed: Sequence[Any]) -> None:
        """Store the eligibility answers set on these loaded entries."""
        if not changed:
            return
        with transaction.atomic():
            self.model.objects.bulk_update(
                changed, ["eligibility", "eligibility_message"], batch_size=500
            )
            _bump({e.upload_id for e in changed})

    def retag(
        self, add: Sequence[dict[str, str]], drop: Sequence[dict[str, str]], *, actor=None
    ) -> int:
        """Add and remove tags (`{"key", "value"}`; an added key replaces the
        same key's value), with a timeline event for each VIN whose tags changed."""
        now = timezone.now()
        changed = 0
        add_keys = {t["key"] for t in add}
        ids = list(self.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), BULK_CHUNK):
            chunk = self.model.objects.filter(pk__in=ids[start : start + BULK_CHUNK])
            moves = []
            for pk, tags, status, upload_id in chunk.values_list(
                "pk", "tags", "status", "upload_id"
            ):
                kept = [t for t in tags or [] if t not in drop and t.get("key") not in add_keys]
                new = kept + [t for t in add if t not in kept]
                if new != (tags or []):
                    moves.append((pk, new, status, upload_id, tags or []))
            if not moves:
                continue
            with transaction.atomic():
                entries = [self.model(pk=pk, tags=new) for pk, new, *_ in moves]
                self.model.objects.bulk_update(entries, ["tags"], batch_size=500)
                _record(
                    [
                        (
                            pk,
                            status,
                            status,
                            _tags_change(old, new),
                            {"action": "tags", "tags": new},
                        )
                        for pk, new, status, _, old in moves
                    ],
                    at=now,
                    source=Source.MANUAL,
                    actor=actor,
                )
                _bump({upload_id for _, _, _, upload_id, _ in moves})
            changed += len(moves)
        return changed

    def leave_fleet(self, disconnected: Iterable[int], *, actor=None) -> int:
        """Take these VINs out of their fleet (they leave its list and counts; a
        later upload may send them again). Those in `disconnected` were just
        disconnected at Volteras and become DISCONNECTED."""
        now = timezone.now()
        gone = set(disconnected)
        with transaction.atomic():
            moves = list(self.filter(superseded=False).values_list("pk", "status", "upload_id"))
            ids = [pk for pk, _, _ in moves]
            self.model.objects.filter(pk__in=ids).update(superseded=True, updated_at=now)
            self.model.objects.filter(pk__in=gone & set(ids)).update(
                status=VinStatus.DISCONNECTED, status_changed_at=now
            )
            _record(
                [
                    (
                        pk,
                        status,
                        VinStatus.DISCONNECTED if pk in gone else status,
                        "Disconnected at Volteras and removed from the fleet"
                        if pk in gone
                        else "Removed from the fleet",
                        {"action": "remove"},
                    )
                    for pk, status, _ in moves
                ],
                at=now,
                source=Source.MANUAL,
                actor=actor,
            )
            _bump({upload_id for _, _, upload_id in moves})
        return len(moves)

    def correct(self, entry, changes: dict[str, Any], detail: str, *, actor=None) -> None:
        """Store a manager's correction of a draft row and its new validation
        (`changes`: field -> value), with one timeline event saying what changed."""
        now = timezone.now()
        with transaction.atomic():
            previous = (
                self.model.objects.select_for_update()
                .filter(pk=entry.pk)
                .values_list("status", flat=True)
                .first()
            )
            if previous is None:
                return
            status = changes.get("status", previous)
            if status != previous:
                changes = {**changes, "status_changed_at": now}
            self.model.objects.filter(pk=entry.pk).update(updated_at=now, **changes)
            _record(
                [(entry.pk, previous, status, detail, {"action": "edit"})],
                at=now,
                source=Source.MANUAL,
                actor=actor,
            )
            _bump([entry.upload_id])
        for name, value in changes.items():
            setattr(entry, name, value)

    def note(self, detail: str, *, actor=None, **data: Any) -> int:
        """One timeline event on each of these VINs that changes nothing (an
        action on them as a group, such as the draft a new upload replaced)."""
        now = timezone.now()
        ids = list(self.order_by("pk").values_list("pk", "status", "upload_id"))
        for start in range(0, len(ids), BULK_CHUNK):
            chunk = ids[start : start + BULK_CHUNK]
            with transaction.atomic():
                _record(
                    [(pk, status, status, detail, data) for pk, status, _ in chunk],
                    at=now,
                    source=Source.MANUAL,
                    actor=actor,
                )
                _bump({upload_id for _, _, upload_id in chunk})
        return len(ids)

    def remove(self) -> int:
        """Delete draft rows (never sent), bumping their uploads' versions."""
        with transaction.atomic():
            uploads = set(self.values_list("upload_id", flat=True).distinct())
            deleted, _ = self.delete()
            _bump(uploads)
        return deleted


def _tags_change(old: list[dict[str, str]], new: list[dict[str, str]]) -> str:
    def text(tags: Iterable[dict[str, str]]) -> str:
        return ", ".join(f"{t.get('key')}={t.get('value')}" for t in tags)

    added = [t for t in new if t not in old]
    removed = [t for t in old if t not in new]
    parts = [f"added {text(added)}" if added else "", f"removed {text(removed)}" if removed else ""]
    return "Tags " + " and ".join(p for p in parts if p)


def _record(
    events: list[tuple[int, str, str, str, dict[str, Any]]], *, at, source: str, actor
) -> None:
    """One timeline event per (entry id, status from, status to, detail, data)."""
    VinEvent.objects.bulk_create(
        [
            VinEvent(
                entry_id=pk,
                at=at,
                source=source,
                status_from=status_from,
                status_to=status_to,
                detail=detail,
                actor=actor,
                data=data,
            )
            for pk, status_from, status_to, detail, data in events
        ],
        batch_size=BULK_CHUNK,
    )


def _bump(upload_ids: Iterable[int]) -> None:
    for upload_id in sorted(upload_ids):
        Upload(pk=upload_id).bump()
