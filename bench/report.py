"""The bench's output: a table per target (portal figure, baseline figure,
ratio, target, PASS/FAIL) and the same as JSON in bench/results/latest.json."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    measure: str
    portal: str
    baseline: str
    ratio: float | None
    goal: str
    passed: bool


@dataclass
class Target:
    number: int
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(row.passed for row in self.rows)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def _cell(text: str, width: int) -> str:
    return text if len(text) >= width else text + " " * (width - len(text))


def print_target(target: Target) -> None:
    header = ("measure", "portal", "baseline", "ratio", "target", "result")
    lines = [
        (
            row.measure,
            row.portal,
            row.baseline,
            "n/a" if row.ratio is None else f"{row.ratio:.2f}x",
            row.goal,
            "PASS" if row.passed else "FAIL",
        )
        for row in target.rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(6)]
    verdict = "PASS" if target.passed else "FAIL"
    print(f"\n== Target {target.number}: {target.title}  [{verdict}]")
    print("  ".join(_cell(h, w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(_cell(str(c), w) for c, w in zip(line, widths, strict=True)))
    for note in target.notes:
        print(f"   - {note}")


def write_json(targets: list[Target], started: datetime, settings: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "loadavg_at_end": os.getloadavg(),
        "settings": settings,
        "all_passed": all(t.passed for t in targets),
        "targets": [
            {
                "number": t.number,
                "title": t.title,
                "passed": t.passed,
                "rows": [asdict(row) for row in t.rows],
                "notes": t.notes,
                "raw": t.raw,
            }
            for t in targets
        ],
    }
    path = RESULTS / "latest.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
