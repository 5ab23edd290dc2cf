"""Headless Chromium (Debian's package, driven by Playwright) and the dashboard served on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app.web import create_app
from config import Settings
from tests.helpers import in_background

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What a sandboxed root machine with no outside network needs (see the project README).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: run the README's test command (make test), which installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def dashboard(cloud, monkeypatch):
    """The dashboard app on a free port, reading the test's buckets; yields its base URL."""
    monkeypatch.setenv("DASHBOARD_PASSWORD", "open sesame")
    with in_background(make_server("127.0.0.1", 0, create_app(Settings.from_env()), threaded=True)) as port:
        yield f"http://127.0.0.1:{port}"


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
