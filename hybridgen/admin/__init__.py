"""The review web app at /admin (sqladmin on the same SQLAlchemy models as the pipeline)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from sqladmin import Admin
from sqlalchemy.orm import sessionmaker

from hybridgen.admin.auth import AdminAuth
from hybridgen.admin.device_cookie import DeviceCookies
from hybridgen.admin.edit_pages import EDIT_SAVE_PATH, TEMPLATE_GLOBALS, EditPages
from hybridgen.admin.feedback_pages import FEEDBACK_PATH, FeedbackPages
from hybridgen.admin.metrics_page import MetricsPage
from hybridgen.admin.ratelimit import LoginThrottle
from hybridgen.admin.queue_pages import QueuePages
from hybridgen.admin.review_pages import DECIDE_PATH, UNDO_PATH, ReviewPages
from hybridgen.admin.routes import harden_routes
from hybridgen.admin.services import AppServices
from hybridgen.admin.views import MODEL_VIEWS

BASE_URL = "/admin"
TEMPLATES = Path(__file__).parent / "templates"
# The only unsafe-method endpoints under /admin (see csrf.AdminWriteGuard).
WRITE_PATHS = {BASE_URL + "/login", BASE_URL + "/logout", BASE_URL + DECIDE_PATH, BASE_URL + UNDO_PATH,
               BASE_URL + EDIT_SAVE_PATH, BASE_URL + FEEDBACK_PATH}


def mount_admin(app: FastAPI, services: AppServices, throttle: LoginThrottle, devices: DeviceCookies) -> Admin:
    engine = services.sessions.kw["bind"]
    admin = Admin(
        app,
        session_maker=sessionmaker(bind=engine),  # sqladmin reconfigures the maker it is given
        base_url=BASE_URL,
        title="hybridgen review",
        templates_dir=str(TEMPLATES),
        authentication_backend=AdminAuth(services.sessions, throttle, devices),
    )
    harden_routes(admin)
    # sqladmin keeps per-view state on the view classes, so each app gets its own subclasses
    # (several apps on different databases can live in one process, e.g. in tests).
    for view in (QueuePages, *MODEL_VIEWS, ReviewPages, MetricsPage, EditPages, FeedbackPages):
        admin.add_view(type(view.__name__, (view,), {"services": services}))
    admin.templates.env.globals.update(TEMPLATE_GLOBALS)  # the edit page, whichever view renders it
    return admin
