"""Saving a reviewer's edit from the field-by-field form (GET /admin/review/item/{pk}/edit shows it).

POST /admin/review/save-edit, CSRF-checked. The page that comes back always holds what the reviewer
typed: on a refused save (an empty title, code that does not parse) with the reason next to the
field, nothing stored; on a saved one with the kind's validators re-run over the new text and their
reports listed. A failing report does not block the edit: the reviewer may still approve it.

The validators are the pipeline's own (pipeline.validation), built from the app's settings
(HYBRIDGEN_VALIDATORS_DISABLED and the rest) once per process, on the first save that needs them;
model-backed ones (NLI) load then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqladmin import BaseView, expose
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from hybridgen.admin.csrf import FORM_FIELD, csrf_token
from hybridgen.admin.edit_fields import EditForm, assembled, form_from_output, form_from_post, input_attributes
from hybridgen.admin.queue_pages import QUEUE_FIELD, filter_from_field, item_url, with_query
from hybridgen.admin.review_forms import checked_form, current_reviewer, form_id
from hybridgen.admin.services import AppServices
from service.reviews import ReviewError, checked_edit, review_items
from service.storage.models import Attempt, Item

EDIT_SAVE_PATH = "/review/save-edit"
TEMPLATE = "hybridgen/review_edit.html"


@dataclass
class SaveResult:
    form: EditForm
    item: dict[str, Any]
    saved: bool = False
    error: str | None = None
    reports: list[dict[str, Any]] | None = None


def edit_form_for(item: dict[str, Any]) -> EditForm:
    """The form for the GET page (review_pages.ReviewPages.edit passes the item as a dict)."""
    return form_from_output(int(item["id"]), str(item["kind"]), item.get("output"),
                            item.get("attributes") if isinstance(item.get("attributes"), dict) else None)


# Jinja globals the edit template needs when another view renders it (installed by mount_admin).
TEMPLATE_GLOBALS = {"edit_form_for": edit_form_for}


class EditPages(BaseView):
    services: AppServices
    name = "Edit"
    identity = "review_edit_save"

    def is_visible(self, request: Request) -> bool:
        return False

    @expose(EDIT_SAVE_PATH, methods=["POST"], identity="review_save_edit")
    async def save(self, request: Request) -> Response:
        form = await checked_form(request)
        item_id = form_id(form, "pk")
        result = await run_in_threadpool(self._save, request, item_id, form)
        # From the queue (the form carries its filter): "Continue" is the queue's next item.
        in_queue = QUEUE_FIELD in form
        flt = filter_from_field(str(form.get(QUEUE_FIELD, "")))
        item_link = item_url(request, item_id, flt)
        next_link = with_query(request.url_for("admin:view-review_next").path, {**flt.params(), "after": item_id})
        return await self.templates.TemplateResponse(request, TEMPLATE, {
            "item": result.item, "form": result.form, "saved": result.saved, "error": result.error,
            "reports": result.reports, "csrf_token": csrf_token(request), "form_field": FORM_FIELD,
            "queue_field": QUEUE_FIELD, "queue_value": urlencode(flt.params()) if in_queue else None,
            "item_url": item_link, "continue_url": next_link if in_queue else item_link,
        }, status_code=200 if result.saved else 422)

    def _save(self, request: Request, item_id: int, form: FormData) -> SaveResult:
        with self.services.sessions() as session:
            item = session.get(Item, item_id)
            if item is None:
                raise HTTPException(404, f"no item with id {item_id}")
            info = {"id": item.id, "kind": item.kind, "status": item.status, "review_status": item.review_status}
            edit = form_from_post(item.id, item.kind, form, [str(f) for f in form.getlist("fact")],
                                  input_attributes(item.input))
            text = assembled(edit, item.input)
            if text is None:
                return SaveResult(edit, info, error="Not saved: " + "; ".join(edit.errors.values()))
            try:
                checked_edit(item, text)  # the same rule the decision applies, before the slow validators
            except ReviewError as e:
                edit.errors.setdefault("text" if not edit.by_field else "record", str(e))
                return SaveResult(edit, info, error=f"Not saved: {e}")
            kind, job_input, plan = item.kind, dict(item.input or {}), _plan(session, item)
        reports = self._validate(kind, text, job_input, plan)
        try:
            with self.services.sessions.begin() as session:
                outcome = review_items(session, [item_id], "edit", current_reviewer(session, request),
                                       note=edit.note.strip() or None, edited_output=text)
                info["review_status"] = session.get(Item, item_id).review_status
        except ReviewError as e:
            return SaveResult(edit, info, error=f"Not saved: {e}", reports=reports)
        if outcome.skipped:
            return SaveResult(edit, info, error="Not saved: " + "; ".join(outcome.skipped.values()), reports=reports)
        return SaveResult(edit, info, saved=True, reports=reports)

    def _validate(self, kind: str, text: str, job_input: dict, plan: dict | None) -> list[dict[str, Any]]:
        from pipeline.kinds import get_kind
        from pipeline.validation import validate

        return [r.as_dict() for r in validate(get_kind(kind), text, job_input, self.services.settings, plan)]


def _plan(session, item: Item) -> dict | None:
    """The plan of the item's latest run (the validators' plan checks compare against it)."""
    attempts = session.execute(select(Attempt).where(Attempt.item_id == item.id)
                               .order_by(Attempt.run_no.desc(), Attempt.id)).scalars().all()
    latest = [a for a in attempts if a.run_no == attempts[0].run_no] if attempts else []
    return next((a.plan for a in latest if a.plan), None)
