"""Sign-in and sessions: a random signing key, server-side revocable sessions, throttled sign-ins, hashed passwords."""

import hashlib
import io
import re
import sys

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature
from werkzeug.security import generate_password_hash

from app.__main__ import main
from app.storage.s3 import S3Storage
from app.web import auth, create_app
from config import Settings

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fresh_key_cache(monkeypatch):
    monkeypatch.setattr(auth, "_keys", {})


@pytest.fixture
def hashed(cloud, monkeypatch):
    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", generate_password_hash(PASSWORD))
    return Settings.from_env()


def _csrf(client, path="/login"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def _try(client, password, **kwargs):
    return client.post("/login", data={"password": password, "csrf": _csrf(client)}, **kwargs)


def _signed_in(client):
    return "Sign out" in client.get("/").get_data(as_text=True)


def _store():
    return S3Storage(2)


def test_the_signing_key_is_random_stored_once_and_not_derived_from_the_password(cloud, hashed, monkeypatch):
    monkeypatch.setenv("DASHBOARD_PASSWORD", "open sesame")
    client = create_app(Settings.from_env()).test_client()
    client.get("/login")
    stored = _store().get_json(hashed.metadata_bucket, auth.KEY_RECORD)[0]["key"]
    assert len(stored) >= 32
    for derived in ("open sesame", PASSWORD):
        assert stored != hashlib.sha256(f"tiler-session:{derived}".encode()).hexdigest()
    monkeypatch.setattr(auth, "_keys", {})  # another instance, another process: the same key
    assert auth.session_key(Settings.from_env(), _store()) == stored


def test_an_anonymous_cookie_cannot_be_verified_with_a_password_guess(cloud, hashed, monkeypatch):
    """The old key was sha256(prefix + password): anyone could check a guess against a /login cookie, offline."""
    monkeypatch.setenv("DASHBOARD_PASSWORD", "open sesame")
    client = create_app(Settings.from_env()).test_client()
    client.get("/login")
    cookie = client.get_cookie("session").value
    guess = Flask("guess")
    guess.secret_key = hashlib.sha256(b"tiler-session:open sesame").hexdigest()
    with pytest.raises(BadSignature):
        SecureCookieSessionInterface().get_signing_serializer(guess).loads(cookie)


def test_sign_in_with_the_hash_sign_out_revokes_and_the_cookie_is_hardened(cloud, hashed):
    client = create_app(hashed).test_client()
    assert _try(client, "wrong").status_code == 200 and not _signed_in(client)
    answer = _try(client, PASSWORD)
    assert answer.status_code == 302
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie and "Secure" not in cookie
    assert _signed_in(client)
    sessions = list(_store().list_keys(hashed.metadata_bucket, auth.SESSIONS_PREFIX))
    assert len(sessions) == 1

    stolen = client.get_cookie("session").value
    home = client.get("/").get_data(as_text=True)
    csrf = re.search(r'csrf: "([^"]+)"', home).group(1)
    client.post("/logout", data={"csrf": csrf})
    assert not _signed_in(client)
    assert list(_store().list_keys(hashed.metadata_bucket, auth.SESSIONS_PREFIX)) == []

    replay = create_app(hashed).test_client()  # a copy of the cookie taken before signing out is signed out too
    replay.set_cookie("session", stolen)
    assert not _signed_in(replay)


def test_the_cookie_is_secure_over_https(cloud, hashed):
    client = create_app(hashed).test_client()
    client.get("/login", base_url="https://localhost")
    answer = client.post(
        "/login",
        data={"password": PASSWORD, "csrf": _csrf(client)},
        base_url="https://localhost",
        headers={"X-Forwarded-Proto": "https"},
    )
    assert answer.status_code == 302 and "Secure" in answer.headers["Set-Cookie"]


def test_sessions_expire(cloud, hashed, monkeypatch):
    client = create_app(hashed).test_client()
    _try(client, PASSWORD)
    assert _signed_in(client)
    later = auth.now() + hashed.session_hours * 3600 + 1
    monkeypatch.setattr(auth, "now", lambda: later)
    assert not _signed_in(client)


def test_a_session_whose_stored_expiry_passed_is_signed_out_and_deleted(cloud, hashed):
    client = create_app(hashed).test_client()
    _try(client, PASSWORD)
    store = _store()
    (key,) = store.list_keys(hashed.metadata_bucket, auth.SESSIONS_PREFIX)
    document = store.get_json(hashed.metadata_bucket, key)[0]
    store.put_json(hashed.metadata_bucket, key, {**document, "expires": auth.now() - 1})
    assert not _signed_in(client)
    assert list(store.list_keys(hashed.metadata_bucket, auth.SESSIONS_PREFIX)) == []


def test_changing_the_password_signs_every_session_out(cloud, hashed, monkeypatch):
    client = create_app(hashed).test_client()
    _try(client, PASSWORD)
    assert _signed_in(client)
    cookie = client.get_cookie("session").value
    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", generate_password_hash("a whole new password"))
    after = create_app(Settings.from_env()).test_client()
    after.set_cookie("session", cookie)
    assert not _signed_in(after)


def test_a_forged_or_unknown_session_id_is_signed_out(cloud, hashed):
    app = create_app(hashed)
    client = app.test_client()
    client.get("/login")
    with app.test_request_context():
        serializer = app.session_interface.get_signing_serializer(app)
        for forged in ({"sid": "0" * 48}, {"sid": "../secrets/session-key"}, {"sid": 7}, {"signed_in": True}):
            client.set_cookie("session", serializer.dumps(forged))
            assert not _signed_in(client)
            assert client.post("/api/uploads", json={}).status_code == 401


def test_failed_sign_ins_are_throttled_per_client_with_retry_after(cloud, hashed):
    client = create_app(hashed).test_client()
    for _ in range(auth.CLIENT_FREE_FAILURES):
        assert _try(client, "guess").status_code == 200
    blocked = _try(client, PASSWORD)  # even the right password waits: the state is in S3, not the instance
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    other = create_app(hashed).test_client()
    assert _try(other, "guess", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 200
    assert _try(other, PASSWORD, environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 302


def test_the_delay_grows_and_is_capped():
    delays = [auth.delay_after(n, 5) for n in range(40)]
    assert delays[:5] == [0.0] * 5 and delays[5] == 1 and delays[6] == 2 and delays[7] == 4
    assert delays == sorted(delays) and max(delays) == auth.MAX_DELAY_SECONDS


def test_failures_from_many_clients_slow_everyone(cloud, hashed, monkeypatch):
    monkeypatch.setattr(auth, "GLOBAL_FREE_FAILURES", 3)
    client = create_app(hashed).test_client()
    for number in range(3):
        _try(client, "guess", environ_base={"REMOTE_ADDR": f"198.51.100.{number}"})
    assert _try(client, PASSWORD, environ_base={"REMOTE_ADDR": "198.51.100.77"}).status_code == 429


def test_a_malformed_hash_setting_signs_nobody_in(cloud, monkeypatch):
    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", "not-a-hash")
    client = create_app(Settings.from_env()).test_client()
    assert _try(client, "not-a-hash").status_code == 200 and not _signed_in(client)


def test_hash_password_prints_a_hash_werkzeug_accepts(monkeypatch, capsys):
    from werkzeug.security import check_password_hash

    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("scrypt:") and PASSWORD not in printed
    assert check_password_hash(printed, PASSWORD) and not check_password_hash(printed, "other")


def test_hash_password_refuses_a_short_password(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    with pytest.raises(SystemExit):
        main(["hash-password"])


def test_behind_api_gateway_the_cookie_is_secure_and_the_client_is_the_forwarded_address(cloud, hashed):
    """Zappa builds the WSGI environ from API Gateway's event: the scheme from X-Forwarded-Proto, the address from
    X-Forwarded-For (the entry API Gateway appended, not one the client sent)."""
    from werkzeug.test import run_wsgi_app
    from zappa.wsgi import create_wsgi_request

    event = {
        "httpMethod": "GET",
        "path": "/login",
        "headers": {
            "Host": "abc.execute-api.eu-west-1.amazonaws.com",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "10.9.9.9, 203.0.113.5, 130.176.0.1",
        },
        "queryStringParameters": None,
        "body": None,
        "requestContext": {"identity": {"sourceIp": "203.0.113.5"}},
    }
    environ = create_wsgi_request(event, script_name="/dev")
    assert (environ["wsgi.url_scheme"], environ["REMOTE_ADDR"]) == ("https", "203.0.113.5")
    _body, status, headers = run_wsgi_app(create_app(hashed).wsgi_app, environ)
    assert status.startswith("200") and "Secure" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]


def test_the_settings_command_never_prints_a_secret(monkeypatch, capsys):
    monkeypatch.setenv("DASHBOARD_PASSWORD", "open sesame")
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", "scrypt:32768:8:1$salt$abcdef")
    assert main(["settings"]) == 0
    printed = capsys.readouterr().out
    assert "open sesame" not in printed and "k" * 40 not in printed and "abcdef" not in printed
    assert "SECRET_KEY=(set, not shown)" in printed and "SESSION_HOURS=12.0" in printed
