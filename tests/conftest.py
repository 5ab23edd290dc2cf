"""Shared fixtures: settings built as in production, the official IIIF test image."""
from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings
from tests.helpers import IIIF_TEST_IMAGE


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({"PUBLIC_BASE_URL": "http://tiles.example.org"})


@pytest.fixture
def iiif_test_image() -> Path:
    if not IIIF_TEST_IMAGE.exists():
        pytest.skip(f"the official IIIF test image is not at {IIIF_TEST_IMAGE} (../shared is absent)")
    return IIIF_TEST_IMAGE
