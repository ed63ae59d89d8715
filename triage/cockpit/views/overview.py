from django.http import HttpResponse
from django.shortcuts import render

from triage.access import HtmxHttpRequest, admin_required
from triage.cockpit.charts import Chart, Series, count_ticks, percent, share_ticks, xy_chart
from triage.cockpit.figures import Trend, overview


def trend_chart(trend: Trend, *, targets: list[float] | None = None) -> Chart:
    days = len(trend.days)
    present = [v for v in trend.values if v is not None]
    if trend.unit == "share":
        y_max, y_ticks = 1.0, share_ticks()
    else:
        y_max, y_ticks = count_ticks(max(present, default=0.0))

    def fmt(v: float | None) -> str:
        if trend.unit == "share":
            return percent(v)
        return "—" if v is None else f"{v:.0f}"

    step = max(1, days // 5)
    x_ticks = [(i, trend.days[i].strftime("%d %b")) for i in range(0, days, step)]
    return xy_chart(
        trend.name,
        [Series(trend.name, list(enumerate(trend.values)), css="s1", dots=True)],
        x_range=(0, max(days - 1, 1)),
        y_range=(0.0, y_max),
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        # The precision the categories promise, drawn on the precision chart.
        hlines=[(t, f"target {t:.1%}", "target") for t in (targets or [])[:3]],
        table_head=["Day", trend.name],
        table_rows=[
            [day.isoformat(), fmt(value)]
            for day, value in zip(trend.days, trend.values, strict=True)
            if value  # the table lists days with activity; the chart shows all 30
        ],
        height=160,
        width=420,
    )


@admin_required
def index(request: HtmxHttpRequest) -> HttpResponse:
    data = overview()
    return render(
        request,
        "cockpit/overview.html",
        {
            "o": data,
            "charts": [
                trend_chart(t, targets=data.targets if t.name.startswith("Audited") else None)
                for t in data.trends
            ],
            "section": "overview",
        },
    )
