"""Server-rendered SVG charts: data in, drawing instructions out.

Charts are drawn on the server so the pages need no chart library and no
script, and each chart carries its numbers as a table for screen readers and
tests (templates/cockpit/_chart.html draws both).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 560, 220
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 22, 12, 32


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float | None]]  # (x, y); y None leaves a gap
    css: str = "s1"  # colour class in app.css
    dots: bool = False


@dataclass(frozen=True)
class Tick:
    at: float  # pixel position
    label: str


@dataclass(frozen=True)
class DrawnSeries:
    name: str
    css: str
    paths: list[str]  # one SVG path per unbroken run of points
    dots: list[tuple[float, float]]


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    series: list[DrawnSeries]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    plot: tuple[float, float, float, float]  # left, top, right, bottom
    hlines: list[tuple[float, str, str]] = field(default_factory=list)  # y px, label, css
    markers: list[tuple[float, float, str]] = field(default_factory=list)  # x px, y px, label
    # The same numbers as a table: the fallback for screen readers and tests.
    table_head: list[str] = field(default_factory=list)
    table_rows: list[list[str]] = field(default_factory=list)

    @property
    def y_label_x(self) -> float:
        return self.plot[0] - 6

    @property
    def x_label_y(self) -> float:
        return self.plot[3] + 18

    @property
    def marker_label_x(self) -> list[tuple[float, float, str, float]]:
        return [(x, y, label, x + 7) for x, y, label in self.markers]


def percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def xy_chart(
    title: str,
    series: Sequence[Series],
    *,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    x_ticks: Sequence[tuple[float, str]],
    y_ticks: Sequence[tuple[float, str]],
    hlines: Sequence[tuple[float, str, str]] = (),
    markers: Sequence[tuple[float, float, str]] = (),
    table_head: Sequence[str] = (),
    table_rows: Sequence[Sequence[str]] = (),
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Chart:
    left, top = MARGIN_LEFT, MARGIN_TOP
    right, bottom = width - MARGIN_RIGHT, height - MARGIN_BOTTOM
    x0, x1 = x_range
    y0, y1 = y_range
    x_span = (x1 - x0) or 1.0
    y_span = (y1 - y0) or 1.0

    def px(x: float) -> float:
        return round(left + (x - x0) / x_span * (right - left), 1)

    def py(y: float) -> float:
        clamped = min(max(y, y0), y1)
        return round(bottom - (clamped - y0) / y_span * (bottom - top), 1)

    drawn = [_draw(s, px, py) for s in series]
    return Chart(
        title=title,
        width=width,
        height=height,
        series=drawn,
        x_ticks=[Tick(px(x), label) for x, label in x_ticks],
        y_ticks=[Tick(py(y), label) for y, label in y_ticks],
        plot=(left, top, right, bottom),
        hlines=[(py(y), label, css) for y, label, css in hlines if y0 <= y <= y1],
        markers=[(px(x), py(y), label) for x, y, label in markers],
        table_head=list(table_head),
        table_rows=[list(r) for r in table_rows],
    )


def _draw(
    series: Series, px: Callable[[float], float], py: Callable[[float], float]
) -> DrawnSeries:
    paths: list[list[tuple[float, float]]] = []
    run: list[tuple[float, float]] = []
    dots: list[tuple[float, float]] = []
    for x, y in series.points:
        if y is None:
            if run:
                paths.append(run)
            run = []
            continue
        run.append((px(x), py(y)))
        if series.dots:
            dots.append((px(x), py(y)))
    if run:
        paths.append(run)
    # A lone point draws no line; show it as a dot so a one-day trend is visible.
    for segment in paths:
        if len(segment) == 1 and segment[0] not in dots:
            dots.append(segment[0])
    return DrawnSeries(
        name=series.name,
        css=series.css,
        paths=[
            "M" + " L".join(f"{x},{y}" for x, y in segment) for segment in paths if len(segment) > 1
        ],
        dots=dots,
    )


def share_ticks(low: float = 0.0, high: float = 1.0, step: float = 0.25) -> list[tuple[float, str]]:
    ticks = []
    value = low
    while value <= high + 1e-9:
        ticks.append((value, f"{value:.0%}"))
        value += step
    return ticks


def count_ticks(top: float) -> tuple[float, list[tuple[float, str]]]:
    """A round upper limit for a count axis and four ticks up to it."""
    if top <= 0:
        return 1.0, [(0.0, "0"), (1.0, "1")]
    magnitude = 10 ** (len(str(int(top))) - 1)
    limit = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= top)
    return float(limit), [(limit * k / 4, f"{limit * k / 4:g}") for k in range(5)]
