"""Absolute URLs the app emits: built on DASHBOARD_BASE_URL, never on the request's Host header.

Without DASHBOARD_BASE_URL (the local demo) they fall back to the request's
own URL; answers that then depend on the Host header say ``Vary: Host`` and
are cached privately only, so a forged Host can never be cached for others.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g, request, url_for


def external_url(endpoint: str, **values: object) -> str:
    base = current_app.config["SETTINGS"].dashboard_base_url.rstrip("/")
    if not base:
        g.host_dependent = True
        return url_for(endpoint, _external=True, **values)
    path = url_for(endpoint, **values)
    root = request.script_root  # the stage prefix Zappa put in SCRIPT_NAME; the base URL already names it
    if root and path.startswith(root + "/"):
        path = path[len(root) :]
    return base + path


def install(app: Flask) -> None:
    app.jinja_env.globals.update(external_url=external_url)

    @app.after_request
    def _private_when_host_dependent(response: Response) -> Response:
        if g.get("host_dependent"):
            response.vary.add("Host")
            directives = [part.strip() for part in response.headers.get("Cache-Control", "").split(",") if part.strip()]
            if "public" in directives:
                response.headers["Cache-Control"] = ", ".join("private" if d == "public" else d for d in directives)
        return response
