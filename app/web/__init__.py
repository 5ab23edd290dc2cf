"""The Flask application factory: the dashboard and its JSON API, served by the same Zappa deployment.

Every URL is built with ``url_for``, so the app works at ``/`` locally and
under an API Gateway stage prefix (``/dev/...``) when Zappa serves it.
"""

from __future__ import annotations

from flask import Flask

from app.web import auth, image_service, presenting, urls
from app.web.catalog import Catalog
from app.web.dashboard import pages
from config import PROJECT_ROOT, Settings


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    # templates/ and static/ sit beside config.py, in the Lambda package and the image as in a clone
    app = Flask(__name__, root_path=str(PROJECT_ROOT), template_folder="templates", static_folder="static")
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=64 * 1024)
    app.extensions["catalog"] = Catalog(settings)
    auth.install(app, settings)
    app.register_blueprint(pages)
    image_service.register(app)
    urls.install(app)
    app.jinja_env.globals.update(csrf_token=auth.csrf_token, signed_in=auth.signed_in, writable=auth.writable)
    app.jinja_env.filters.update(
        megabytes=presenting.megabytes, megapixels=presenting.megapixels, ago=presenting.ago, dollars=presenting.dollars
    )

    @app.after_request
    def harden(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    return app
