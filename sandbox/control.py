"""Runtime knobs of the running sandbox, flipped by tests over `/_sandbox/control`.

They live in process memory (the sandbox is one process) and start from the
SANDBOX_* settings; `reset()` puts them back.
"""

import random
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from django.conf import settings

FAULT_KINDS = {"error", "rate_limit", "latency", "hang", "drop"}


@dataclass
class Fault:
    """One injected HTTP fault; `count` None means every matching request."""

    kind: str
    path_prefix: str = "/v1/"
    method: str = ""
    share: float = 1.0
    count: int | None = None
    retry_after: int = 1
    ms: int = 0
    seconds: float = 30.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Fault":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        fault = cls(**data)
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}")
        if not 0 <= fault.share <= 1:
            raise ValueError("share must be between 0 and 1")
        if fault.count is not None and fault.count < 0:
            raise ValueError("count must be at least 0")
        fault.method = fault.method.upper()
        return fault

    def matches(self, method: str, path: str) -> bool:
        if self.count == 0 or not path.startswith(self.path_prefix):
            return False
        return not self.method or self.method == method


@dataclass
class ControlState:
    webhook_url: str = ""
    speed: float = 1.0
    vehicle_limit: int = 10_000
    token_ttl: int = 3600
    pending_seconds: float | None = None
    base_url: str = ""
    faults: list[Fault] = field(default_factory=list)
    webhook_duplicates: float = 0.0
    webhook_reorder: bool = False
    webhook_delay_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["pending_seconds"] = self.pending_delay()
        return data

    def pending_delay(self) -> float:
        """How long a PENDING vehicle waits before it connects (scaled by speed)."""
        return 5.0 * self.speed if self.pending_seconds is None else self.pending_seconds


_lock = threading.RLock()
_state: ControlState | None = None
# Bumped by every reset: a request that began before a reset (one held by a
# "hang" fault, say) must not touch the fresh state or consume its faults.
_generation = 0


def defaults() -> ControlState:
    return ControlState(
        webhook_url=settings.SANDBOX_WEBHOOK_URL,
        speed=settings.SANDBOX_SPEED,
        vehicle_limit=settings.SANDBOX_VEHICLE_LIMIT,
        token_ttl=settings.SANDBOX_TOKEN_TTL,
        base_url=settings.SANDBOX_BASE_URL,
    )


def reset() -> None:
    global _state, _generation
    with _lock:
        _state = defaults()
        _generation += 1


def generation() -> int:
    return _generation


def current() -> ControlState:
    global _state
    with _lock:
        if _state is None:
            _state = defaults()
        return _state


def update(changes: dict[str, Any]) -> ControlState:
    """Apply a partial update; raises ValueError (nothing applied) on a bad value."""
    with _lock:
        old = current()
        new = ControlState(**{f.name: getattr(old, f.name) for f in fields(ControlState)})
        for name, value in changes.items():
            if name == "faults":
                if not isinstance(value, list):
                    raise ValueError("faults must be a list")
                new.faults = [Fault.from_json(item) for item in value]
            elif name in ("webhook_url", "base_url"):
                new.__dict__[name] = str(value or "").rstrip("/") if name == "base_url" else value
            elif name in ("speed", "webhook_duplicates"):
                new.__dict__[name] = _number(name, value, 0.0, 1.0 if name != "speed" else None)
            elif name in ("vehicle_limit", "token_ttl", "webhook_delay_ms"):
                new.__dict__[name] = int(
                    _number(name, value, 0 if name == "webhook_delay_ms" else 1)
                )
            elif name == "pending_seconds":
                new.pending_seconds = None if value is None else _number(name, value, 0.0)
            elif name == "webhook_reorder":
                if not isinstance(value, bool):
                    raise ValueError("webhook_reorder must be true or false")
                new.webhook_reorder = value
            else:
                raise ValueError(f"unknown control field: {name}")
        _set(new)
        return new


def _set(state: ControlState) -> None:
    global _state
    _state = state


def _number(name: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} out of range")
    return float(value)


def take_fault(method: str, path: str, kinds: set[str]) -> Fault | None:
    """The first matching fault of the given kinds that fires now, counted down once."""
    with _lock:
        for fault in current().faults:
            if fault.kind in kinds and fault.matches(method, path):
                if fault.share < 1 and random.random() >= fault.share:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                return fault
    return None
