"""/admin/metrics: quality over time, one chart per rate, the alerts, and the numbers as a table.

The numbers come from service.metrics (the same report GET /api/metrics serves); this module only
turns them into charts (hybridgen.admin.charts) and a template. Read-only: a GET with `?days=N`.
"""

from __future__ import annotations

from sqladmin import BaseView, expose
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from hybridgen.admin.charts import Guide, Series, line_chart, number, percent
from hybridgen.admin.services import AppServices
from service.metrics import DEFAULT_DAYS, DEFINITIONS, MAX_DAYS, METRICS, RATES, Report, metrics_report

TITLES = {
    "first_pass_rate": "First-pass rate", "final_pass_rate": "Final pass rate", "fallback_rate": "Fallback rate",
    "flag_rate": "Flag rate", "approval_rate": "Reviewer approval rate", "false_flag_rate": "False-flag rate",
    "tokens_per_forward": "Tokens per forward", "items_per_hour": "Items per hour (worker time)",
}


def parse_days(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_DAYS
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
        raise HTTPException(400, f"days must be a whole number from 1 to {MAX_DAYS}; got {raw[:20]!r}")
    return int(raw)


def charts(report: Report) -> list[dict]:
    """Per metric: its chart (one series per kind/model/mode group), title and definition. The x axis
    starts at the first day with finished items (a deployment's first month is not squeezed to the right)."""
    first = min((r.day for r in report.rows), default=None)
    days = [d for d in report.days if first is None or d >= first]
    groups = sorted({r.group for r in report.rows})
    alert_days = {}
    for a in report.alerts:
        alert_days.setdefault((a.threshold.metric, a.row.group), set()).add(a.row.day)
    out = []
    for metric in METRICS:
        series = [Series(group, [(r.day, r.value(metric)) for r in report.rows
                                 if r.group == group and r.value(metric) is not None],
                         frozenset(alert_days.get((metric, group), ())))
                  for group in groups]
        guides = [Guide(str(t), t.value) for t in report.thresholds if t.metric == metric]
        is_rate = metric in RATES
        out.append({
            "metric": metric, "title": TITLES[metric], "definition": DEFINITIONS[metric],
            "svg": line_chart(f"chart-{metric}", TITLES[metric], days, series, guides=guides,
                              y_max=1.0 if is_rate else None, fmt=percent if is_rate else number),
        })
    return out


class MetricsPage(BaseView):
    services: AppServices
    name = "Quality metrics"
    icon = "fa-solid fa-chart-line"
    identity = "metrics"

    @expose("/metrics", methods=["GET"], identity="metrics")
    async def page(self, request: Request) -> Response:
        days = parse_days(request.query_params.get("days"))
        report = await run_in_threadpool(self._report, days)
        newest_first = sorted(report.rows, key=lambda r: (r.day, r.group), reverse=True)
        return await self.templates.TemplateResponse(request, "hybridgen/metrics.html", {
            "title": "Quality metrics", "report": report, "days": days, "charts": charts(report),
            "rows": newest_first, "rates": RATES, "fmt_rate": percent, "fmt_number": number,
            "day_choices": (7, 30, 90, 365),
        })

    def _report(self, days: int) -> Report:
        settings = self.services.settings
        with self.services.sessions() as session:
            return metrics_report(session, settings.alert_threshold_list, settings.alert_min_items, days=days)
