"""Dashboard pages and the JSON API behind them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import BadRequest, Conflict, TooManyRequests

from app.errors import SourceGone
from app.ids import image_id_for, is_valid_id
from app.model import Status
from app.storage.s3 import InvalidToken
from app.takedown import ImageBusy
from app.web import auth, presenting
from app.web.catalog import STATUSES, CannotRetry, Catalog

pages = Blueprint("dashboard", __name__)


def _catalog() -> Catalog:
    return current_app.extensions["catalog"]


def _status_filter() -> str | None:
    status = request.args.get("status") or None
    if status and status not in STATUSES:
        abort(400, f"unknown status {status!r}")
    return status


def _record_or_404(image_id: str) -> dict[str, Any]:
    record = _catalog().record(image_id) if is_valid_id(image_id) else None
    if record is None:
        abort(404, "no such image")
    return record


def _presented(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    settings = current_app.config["SETTINGS"]
    return [presenting.present(record, settings) for record in records]


@pages.app_template_filter("stamp")
def stamp(value: str | None) -> str:
    """A record's ISO time as people read it: "2026-11-30 11:57 UTC" (records are stamped in UTC)."""
    if not value:
        return "–"
    try:
        moment = datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return value
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@pages.get("/")
def images():
    status = _status_filter()
    page = _catalog().page(status, request.args.get("token"))
    shown = _presented(page.records)
    totals = {"count": len(shown), "usd": sum((r["cost_usd"] or {}).get("total", 0) for r in shown)}
    template = "_listing.html" if request.args.get("fragment") else "images.html"
    return render_template(
        template,
        images=shown,
        status=status,
        statuses=STATUSES,
        next_token=page.next_token,
        token=request.args.get("token"),
        totals=totals,
    )


@pages.get("/images/<path:image_id>")
def image(image_id: str):
    record = presenting.present(_record_or_404(image_id), current_app.config["SETTINGS"])
    metadata = _catalog().metadata(image_id)
    return render_template(
        "image.html",
        image=record,
        metadata=presenting.grouped_metadata(metadata),
        has_metadata=metadata is not None,
        conflict_id=image_id_for(record["conflict"]) if record.get("conflict") else None,
    )


@pages.get("/withdraw/<path:image_id>")
def withdraw_confirmation(image_id: str):
    """What withdrawing will do, and the form that does it: a step of its own, never one click. (Not under
    /images/ID/: an image whose id ends in /withdraw would lose its page.)"""
    if not auth.writable():
        abort(403, "this dashboard is read-only: set DASHBOARD_PASSWORD_HASH to allow withdrawals")
    if not auth.signed_in():
        abort(401, "sign in first")
    record = presenting.present(_record_or_404(image_id), current_app.config["SETTINGS"])
    objects = 0 if record["status"] == Status.WITHDRAWN else _catalog().published_objects(image_id)
    return render_template("withdraw.html", image=record, objects=objects, by=_who())


@pages.post("/withdraw/<path:image_id>")
@auth.require_sign_in
def withdraw(image_id: str):
    _record_or_404(image_id)
    reason = " ".join(request.form.get("reason", "").split())[:500] or "withdrawn on the dashboard"
    try:
        record = _catalog().withdraw(image_id, _who(), reason)
    except ImageBusy as error:
        busy = Conflict(f"{error}. Nothing was withdrawn: try again once the job has ended.")
        return Response(render_template("error.html", error=busy), busy.code)
    if record is None:
        abort(404, "no such image")
    flash(f"Withdrawn: {image_id} is no longer published; its source stays in the source bucket.", "ok")
    return redirect(url_for("dashboard.image", image_id=image_id))


def _who() -> str:
    """The signed-in person as the deployment's identity provider names them (Zappa's REMOTE_USER, from API
    Gateway's authorizer); the shared password names nobody, so "dashboard"."""
    return request.remote_user or "dashboard"


@pages.get("/collections")
def collections():
    page = _catalog().collections(request.args.get("token"))
    return render_template(
        "collections.html", collections=page.records, next_token=page.next_token, token=request.args.get("token")
    )


@pages.get("/collections/<collection_id>")
def collection(collection_id: str):
    found = _catalog().collection(collection_id) if is_valid_id(collection_id) else None
    if found is None:
        abort(404, "no such collection")
    return render_template("collection.html", collection=found)


@pages.get("/mirador")
def mirador():
    """Mirador on one manifest or collection of this deployment."""
    manifest = request.args.get("manifest", "")
    if not manifest.startswith(("http://", "https://")) or not manifest.endswith(".json"):
        abort(400, "give ?manifest= the URL of a IIIF manifest or collection")
    return render_template("mirador.html", manifest=manifest)


@pages.get("/images/<path:image_id>/metadata.json")
def metadata_download(image_id: str):
    _record_or_404(image_id)
    document = _catalog().metadata(image_id)
    if document is None:
        abort(404, "no metadata for this image yet")
    response = jsonify(document)
    response.headers["Content-Disposition"] = f'attachment; filename="{image_id.replace("/", "_")}.json"'
    return response


@pages.post("/images/<path:image_id>/retry")
@auth.require_sign_in
def retry(image_id: str):
    _record_or_404(image_id)
    try:
        _catalog().retry(image_id)
        flash("Retry requested: the job will run again in a moment.", "ok")
    except (CannotRetry, SourceGone) as error:
        flash(f"Cannot retry: {error}", "error")
    return redirect(url_for("dashboard.image", image_id=image_id))


@pages.route("/login", methods=["GET", "POST"])
def login():
    if not auth.writable():
        abort(403, "this dashboard is read-only: set DASHBOARD_PASSWORD_HASH to allow uploads and retries")
    if request.method == "POST":
        auth.check_csrf()
        wait = auth.retry_after()
        if wait:
            message = f"Too many failed sign-ins: try again in {wait} seconds."
            return Response(
                render_template("error.html", error=TooManyRequests(message)), 429, {"Retry-After": str(wait)}
            )
        if auth.sign_in(request.form.get("password", "")):
            auth.record_success()
            return redirect(url_for("dashboard.images"))
        auth.record_failure()
        flash("Wrong password.", "error")
    return render_template("login.html")


@pages.post("/logout")
def logout():
    auth.check_csrf()
    auth.sign_out()
    return redirect(url_for("dashboard.images"))


# JSON API ------------------------------------------------------------------------------------


@pages.get("/api/images")
def api_images():
    page = _catalog().page(_status_filter(), request.args.get("token"))
    return {"images": _presented(page.records), "next_token": page.next_token}


@pages.get("/api/images/<path:image_id>")
def api_image(image_id: str):
    return presenting.present(_record_or_404(image_id), current_app.config["SETTINGS"])


@pages.post("/api/uploads")
@auth.require_sign_in
def api_upload():
    """A presigned POST for one file: ``{"filename", "content_type", "size"}`` in; ``url, fields, key, id`` out."""
    body = request.get_json(silent=True) or {}
    size = body.get("size")
    try:
        return _catalog().upload_form(
            str(body.get("filename", "")), str(body.get("content_type", "")), size if type(size) is int else None
        )
    except ValueError as error:
        abort(400, str(error))


@pages.get("/healthz")
def healthz():
    return {"ok": True}


@pages.errorhandler(InvalidToken)
def invalid_token(error: InvalidToken):
    return error_page(BadRequest(str(error)))


@pages.app_errorhandler(400)
@pages.app_errorhandler(401)
@pages.app_errorhandler(403)
@pages.app_errorhandler(404)
def error_page(error):
    if request.path.startswith(("/api/", "/healthz")) or request.accept_mimetypes.best == "application/json":
        return {"error": error.description}, error.code
    return Response(render_template("error.html", error=error), status=error.code)
