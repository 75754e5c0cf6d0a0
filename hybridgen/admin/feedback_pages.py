"""The comparison's feedback on the quality gate: "false flag" on a failing report, "missed defect"
(a rubric class) on a passing output. ("Use this version" is a decision: review_pages' /review/decide.)

A CSRF-checked POST to a fixed path (the item and attempt are form fields, so the path can be
allow-listed exactly in csrf.AdminWriteGuard). A refused label (an attempt of another item, a class
that does not apply to the kind) comes back to the item page with the reason, not as an error page.
"""

from __future__ import annotations

from sqladmin import BaseView, expose
from sqladmin.flash import Flash
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hybridgen.admin.queue_pages import QUEUE_FIELD, filter_from_field, item_url
from hybridgen.admin.review_forms import checked_form, current_reviewer, form_id
from hybridgen.admin.services import AppServices
from service.feedback import FeedbackError, record_false_flag, record_missed_defect
from service.storage.models import FeedbackLabel

FEEDBACK_PATH = "/review/feedback"


class FeedbackPages(BaseView):
    services: AppServices
    name = "Feedback"
    identity = "feedback"

    def is_visible(self, request: Request) -> bool:  # reached from the item page, not from the menu
        return False

    @expose(FEEDBACK_PATH, methods=["POST"], identity="review_feedback")
    async def feedback(self, request: Request) -> Response:
        form = await checked_form(request)
        item_id, attempt_id = form_id(form, "pk"), form_id(form, "attempt_id")
        label = str(form.get("label", ""))
        if label not in {f.value for f in FeedbackLabel}:
            raise HTTPException(400, f"label: expected false_flag or missed_defect; got {label[:40]!r}")
        fields = {"validator": str(form.get("validator", "")).strip(),
                  "defect_class": str(form.get("defect_class", "")).strip(),
                  "note": str(form.get("note", "")).strip() or None}
        # Back to the item page, in the queue's filter when the form came from one.
        back = item_url(request, item_id, filter_from_field(str(form.get(QUEUE_FIELD, "")))) + "#feedback"
        try:
            await run_in_threadpool(self._record, request, item_id, attempt_id, label, fields)
        except FeedbackError as e:
            Flash.error(request, str(e), title="Feedback not saved")
            return RedirectResponse(back, status_code=303)
        what = f"false flag: {fields['validator']}" if label == FeedbackLabel.false_flag.value \
            else f"missed defect: {fields['defect_class']}"
        Flash.success(request, f"item #{item_id}: {what}", title="Feedback saved")
        return RedirectResponse(back, status_code=303)

    def _record(self, request: Request, item_id: int, attempt_id: int, label: str, fields: dict) -> None:
        with self.services.sessions.begin() as session:
            labeller = current_reviewer(session, request)
            if label == FeedbackLabel.false_flag.value:
                if not fields["validator"]:
                    raise FeedbackError(f"item {item_id}: a false flag names the validator whose report is wrong")
                record_false_flag(session, item_id, attempt_id, fields["validator"], labeller, fields["note"])
            else:
                if not fields["defect_class"]:
                    raise FeedbackError(f"item {item_id}: choose the missed defect's class (docs/review-rubric.md)")
                record_missed_defect(session, item_id, attempt_id, fields["defect_class"], labeller, fields["note"])
