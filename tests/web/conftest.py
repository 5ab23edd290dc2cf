"""The dashboard's test client, with the shared password set so a test can sign in (``tests.helpers.sign_in``)."""

import pytest

from app.web import create_app
from config import Settings


@pytest.fixture
def client(cloud, monkeypatch):
    monkeypatch.setenv("DASHBOARD_PASSWORD", "open sesame")
    return create_app(Settings.from_env()).test_client()
