"""The WSGI callable Zappa's ``app_function`` names (``app.web.wsgi.app``)."""

from app.web import create_app

app = create_app()
