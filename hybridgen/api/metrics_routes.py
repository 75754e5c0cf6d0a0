"""GET /api/metrics: the quality metrics of the review app's metrics page, as JSON (token-authenticated)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hybridgen.api.auth import require_token
from service.metrics import DEFAULT_DAYS, MAX_DAYS, metrics_report

router = APIRouter(prefix="/api", dependencies=[Depends(require_token)], tags=["metrics"])


@router.get("/metrics")
async def get_metrics(request: Request,
                      days: int = Query(DEFAULT_DAYS, ge=1, le=MAX_DAYS,
                                        description="How many UTC days, today included")) -> JSONResponse:
    """Rates by UTC day, kind, model and mode (first pass, final pass, fallback, flag, reviewer
    approval, false flag), tokens per forward and items per hour of worker time, with the
    definitions, the thresholds (HYBRIDGEN_ALERT_THRESHOLDS) and the alerts they raise."""
    services = request.app.state.services
    settings = services.settings

    def report() -> dict:
        with services.sessions() as session:
            return metrics_report(session, settings.alert_threshold_list, settings.alert_min_items,
                                  days=days).as_dict()

    return JSONResponse(await run_in_threadpool(report))
