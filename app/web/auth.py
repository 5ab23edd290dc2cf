"""Who may change things: a password signs a server-side session in; every POST carries a CSRF token.

Without ``DASHBOARD_PASSWORD_HASH`` or ``DASHBOARD_PASSWORD`` the dashboard is
read-only: it shows everything and changes nothing.

The cookie's signing key is random and independent of the password (a cookie
must not let anyone test password guesses offline): ``SECRET_KEY``, else one
made once and kept in the metadata bucket, so every Lambda instance agrees.
The cookie only names a session id; the session itself (its expiry and a
fingerprint of the password it was opened with) lives in the metadata bucket,
so signing out revokes it and changing the password revokes them all. Failed
sign-ins are counted in the metadata bucket too, per client and overall,
because Lambda runs many instances that share no memory.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, abort, current_app, g, request, session
from flask.sessions import SecureCookieSessionInterface
from werkzeug.security import check_password_hash

from app.storage.s3 import PreconditionFailed
from config import Settings

CSRF_HEADER = "X-CSRF-Token"
KEY_RECORD = "secrets/session-key"
SESSIONS_PREFIX = "sessions/"
THROTTLE_PREFIX = "signin/"
CLIENT_FREE_FAILURES = 5  # a mistyped password or two costs nothing
GLOBAL_FREE_FAILURES = 50  # many clients guessing together slow everyone down
MAX_DELAY_SECONDS = 15 * 60

_key_lock = threading.Lock()
_keys: dict[str, str] = {}  # bucket -> key, read once per process


# The signing key ------------------------------------------------------------------------------


def now() -> float:
    """The wall clock of sessions and throttling; tests move this one, never time.time (botocore's own rate
    limiter reads that)."""
    return time.time()


def session_key(settings: Settings, store: Any) -> str:
    """SECRET_KEY, else the stage's random key: created with a conditional write so concurrent instances agree."""
    if settings.secret_key:
        return settings.secret_key
    bucket = settings.metadata_bucket
    with _key_lock:
        if bucket not in _keys:
            found = store.get_json(bucket, KEY_RECORD)
            if found is None:
                try:
                    store.put_json(bucket, KEY_RECORD, {"key": secrets.token_urlsafe(48)}, create_only=True)
                except PreconditionFailed:
                    pass  # another instance made it first: use theirs
                found = store.get_json(bucket, KEY_RECORD)
            key = found[0].get("key") if found else None
            if not isinstance(key, str) or len(key) < 32:
                raise RuntimeError(f"s3://{bucket}/{KEY_RECORD} holds no usable key: delete it to make a new one")
            _keys[bucket] = key
        return _keys[bucket]


class StoredKeySessions(SecureCookieSessionInterface):
    """Flask's signed cookie, with the key fetched only when a cookie is read or written, and Secure over HTTPS."""

    def get_signing_serializer(self, app: Flask):
        if not app.secret_key:
            app.secret_key = session_key(app.config["SETTINGS"], app.extensions["catalog"].store)
        return super().get_signing_serializer(app)

    def open_session(self, app: Flask, request):
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()  # no cookie: nothing to verify, no key needed yet
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        # behind API Gateway Zappa sets the scheme from X-Forwarded-Proto, so deployed this is always True
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def install(app: Flask, settings: Settings) -> None:
    app.session_interface = StoredKeySessions()
    app.config.update(
        SECRET_KEY=settings.secret_key or None,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
    )


# Sessions --------------------------------------------------------------------------------------


def writable() -> bool:
    settings = _settings()
    return bool(settings.dashboard_password_hash or settings.dashboard_password)


def signed_in() -> bool:
    """A cookie that names a live session opened with the current password; anything else is signed out."""
    if "signed_in" not in g:
        g.signed_in = writable() and _session_is_live()
    return g.signed_in


def _session_is_live() -> bool:
    session_id = session.get("sid")
    if not _is_session_id(session_id):
        return False
    found = _store().get_json(_settings().metadata_bucket, _session_key(session_id))
    if found is None:
        session.clear()  # revoked, or never ours
        return False
    document = found[0]
    expires = document.get("expires")
    fingerprint = document.get("fingerprint")
    if not isinstance(expires, (int, float)) or now() >= expires:
        _end(session_id)
        return False
    if not isinstance(fingerprint, str) or not hmac.compare_digest(fingerprint, password_fingerprint()):
        _end(session_id)  # the password changed since
        return False
    return True


def sign_in(password: str) -> bool:
    if not password_matches(password):
        return False
    session.clear()
    session_id = secrets.token_hex(24)
    expires = now() + _settings().session_hours * 3600
    document = {"expires": expires, "fingerprint": password_fingerprint()}
    _store().put_json(_settings().metadata_bucket, _session_key(session_id), document, create_only=True)
    session.permanent = True
    session["sid"] = session_id
    g.signed_in = True
    return True


def sign_out() -> None:
    session_id = session.get("sid")
    if _is_session_id(session_id):
        _end(session_id)
    session.clear()
    g.signed_in = False


def _end(session_id: str) -> None:
    _store().delete(_settings().metadata_bucket, _session_key(session_id))
    session.clear()


def _is_session_id(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{48}", value) is not None


def _session_key(session_id: str) -> str:
    return f"{SESSIONS_PREFIX}{session_id}.json"


def password_matches(password: str) -> bool:
    """A slow hash compared by werkzeug in constant time; the plain password (local demo) with compare_digest."""
    settings = _settings()
    if settings.dashboard_password_hash:
        try:
            return check_password_hash(settings.dashboard_password_hash, password)
        except (ValueError, TypeError):
            return False  # a malformed hash setting never signs anyone in
    if settings.dashboard_password:
        return hmac.compare_digest(password.encode(), settings.dashboard_password.encode())
    return False


def password_fingerprint() -> str:
    """Names the configured password without revealing it: keyed by the signing key, over the hash when there is one."""
    settings = _settings()
    secret = settings.dashboard_password_hash or settings.dashboard_password
    key = current_app.secret_key or session_key(settings, _store())
    return hmac.new(str(key).encode(), f"password:{secret}".encode(), hashlib.sha256).hexdigest()[:32]


# Throttling ------------------------------------------------------------------------------------


def delay_after(failures: int, free: int) -> float:
    """Seconds to wait after ``failures`` failed sign-ins: none for the first ``free``, then doubling, capped."""
    if failures < free:
        return 0.0
    return float(min(MAX_DELAY_SECONDS, 2 ** min(failures - free, 20)))


def client_id() -> str:
    """The source IP (Zappa's REMOTE_ADDR, from API Gateway's X-Forwarded-For), hashed so no address is stored."""
    return hashlib.sha256(f"client:{request.remote_addr or ''}".encode()).hexdigest()[:32]


def retry_after() -> int:
    """Seconds until this client may try again (0: now), by its own failures and everyone's."""
    moment = now()
    waits = [0.0]
    for key, free in ((_client_key(), CLIENT_FREE_FAILURES), (_global_key(), GLOBAL_FREE_FAILURES)):
        found = _store().get_json(_settings().metadata_bucket, key)
        if found:
            failures, last = _counted(found[0])
            waits.append(last + delay_after(failures, free) - moment)
    return max(0, math.ceil(max(waits)))


def record_failure() -> None:
    for key in (_client_key(), _global_key()):
        _bump(key)


def record_success() -> None:
    _store().delete(_settings().metadata_bucket, _client_key())


def _bump(key: str) -> None:
    """Count one failure; a lost race is retried, since every failure must be counted."""
    store, bucket = _store(), _settings().metadata_bucket
    for _attempt in range(5):
        found = store.get_json(bucket, key)
        failures, last = _counted(found[0]) if found else (0, 0.0)
        if found and now() - last > MAX_DELAY_SECONDS * 2:
            failures = 0  # an old run of failures is forgotten
        document = {"failures": failures + 1, "last": now()}
        try:
            if found:
                store.put_json(bucket, key, document, if_match=found[1])
            else:
                store.put_json(bucket, key, document, create_only=True)
            return
        except PreconditionFailed:
            continue


def _counted(document: dict[str, Any]) -> tuple[int, float]:
    failures, last = document.get("failures"), document.get("last")
    return (
        failures if type(failures) is int else 0,
        float(last) if isinstance(last, (int, float)) and not isinstance(last, bool) else 0.0,
    )


def _client_key() -> str:
    return f"{THROTTLE_PREFIX}clients/{client_id()}.json"


def _global_key() -> str:
    return f"{THROTTLE_PREFIX}all.json"


# CSRF --------------------------------------------------------------------------------------------


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """Reject a POST whose token (form field or header) is not this session's."""
    sent = request.form.get("csrf") or request.headers.get(CSRF_HEADER) or ""
    expected = session.get("csrf")
    if not isinstance(expected, str) or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, "missing or wrong CSRF token: reload the page")


def require_sign_in(view: Callable) -> Callable:
    @functools.wraps(view)
    def guarded(*args, **kwargs):
        if not writable():
            abort(403, "this dashboard is read-only: set DASHBOARD_PASSWORD_HASH to allow uploads and retries")
        if not signed_in():
            abort(401, "sign in first")
        check_csrf()
        return view(*args, **kwargs)

    return guarded


def _settings() -> Settings:
    return current_app.config["SETTINGS"]


def _store() -> Any:
    return current_app.extensions["catalog"].store
