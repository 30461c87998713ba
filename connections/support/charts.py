"""The support workspace's charts: the most frequent values of a column as
horizontal bars, each linking to the list filtered by it (SVG, no JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

CHART_BARS = 10


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    y: int
    width: int
    href: str
    count_x: int = 0


@dataclass(frozen=True)
class BarChart:
    """A horizontal bar chart drawn as SVG by the template (no JavaScript)."""

    title: str
    bars: list[Bar]
    height: int
    label_width: int = 230
    bar_space: int = 200
    row: int = 26

    @property
    def width(self) -> int:
        return self.label_width + self.bar_space + 60


def bar_chart(
    title: str, counts: list[tuple[str, int]], param: str, query: dict[str, str], label=str
) -> BarChart:
    """The most frequent values as bars, each linking to the list filtered by it;
    the rest summed in one unlinked bar."""
    shown = counts[:CHART_BARS]
    rest = sum(n for _, n in counts[CHART_BARS:])
    top = max([n for _, n in shown] + [rest, 1])
    params = {k: v for k, v in query.items() if k != param}
    items = [
        (
            label(value) if value else "(none)",
            n,
            "?" + urlencode({**params, param: value}) if value else "",
        )
        for value, n in shown
    ]
    if rest:
        items.append((f"{len(counts) - CHART_BARS} others", rest, ""))
    # Labels get the room the longest needs (the template cuts them at 32
    # characters): about 9 px a character at 13 px, for capitals like error codes.
    longest = max((min(len(text), 32) for text, _, _ in items), default=0)
    chart = BarChart(title=title, bars=[], height=0, label_width=16 + 9 * longest)
    bars = []
    for i, (text, n, href) in enumerate(items):
        width = max(2, round(chart.bar_space * n / top))
        bars.append(Bar(text, n, i * chart.row, width, href, chart.label_width + width + 6))
    return BarChart(
        title=title,
        bars=bars,
        height=max(len(bars), 1) * chart.row,
        label_width=chart.label_width,
    )
