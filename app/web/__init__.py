"""The Flask application factory: the dashboard and its JSON API, served by the same Zappa deployment."""
from __future__ import annotations

from pathlib import Path

from flask import Flask

from config import Settings

ROOT = Path(__file__).resolve().parents[2]


def create_app(settings: Settings | None = None) -> Flask:
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.config["SETTINGS"] = settings or Settings.from_env()

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    return app
