"""Who may change things: a configured password signs a session in; every POST carries a CSRF token.

Without ``DASHBOARD_PASSWORD`` the dashboard is read-only: it shows
everything and changes nothing.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable

from flask import abort, current_app, request, session

from config import Settings

CSRF_HEADER = "X-CSRF-Token"


def secret_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    if settings.dashboard_password:  # stable across Lambda instances, so sessions survive cold starts
        return hashlib.sha256(f"tiler-session:{settings.dashboard_password}".encode()).hexdigest()
    return secrets.token_hex(32)


def writable() -> bool:
    return bool(_settings().dashboard_password)


def signed_in() -> bool:
    return writable() and session.get("signed_in") is True


def sign_in(password: str) -> bool:
    expected = _settings().dashboard_password
    if expected and hmac.compare_digest(password.encode(), expected.encode()):
        session.clear()
        session["signed_in"] = True
        return True
    return False


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """Reject a POST whose token (form field or header) is not this session's."""
    sent = request.form.get("csrf") or request.headers.get(CSRF_HEADER) or ""
    if not session.get("csrf") or not hmac.compare_digest(sent, session["csrf"]):
        abort(400, "missing or wrong CSRF token: reload the page")


def require_sign_in(view: Callable) -> Callable:
    @functools.wraps(view)
    def guarded(*args, **kwargs):
        if not writable():
            abort(403, "this dashboard is read-only: set DASHBOARD_PASSWORD to allow uploads and retries")
        if not signed_in():
            abort(401, "sign in first")
        check_csrf()
        return view(*args, **kwargs)

    return guarded


def _settings() -> Settings:
    return current_app.config["SETTINGS"]
