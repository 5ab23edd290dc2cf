"""Shared fixtures: settings built as in production, the official IIIF test image."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings
from tests.helpers import IIIF_TEST_IMAGE, Clock


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({"PUBLIC_BASE_URL": "http://tiles.example.org"})


@pytest.fixture
def iiif_test_image() -> Path:
    if not IIIF_TEST_IMAGE.exists():
        pytest.skip(f"the official IIIF test image is not at {IIIF_TEST_IMAGE} (../shared is absent)")
    return IIIF_TEST_IMAGE


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The records' time, moved only by the test (``clock.advance``): jobs age without sleeping."""
    from app import records

    clock = Clock()
    monkeypatch.setattr(records, "now", clock.now)
    return clock


@pytest.fixture(scope="session")
def local_s3():
    """One embedded S3 endpoint (moto over HTTP) for the session; boto3 finds it through AWS_ENDPOINT_URL."""
    from tooling.local_s3 import LocalS3

    with LocalS3() as endpoint, pytest.MonkeyPatch.context() as patch:
        for name, value in endpoint.environment().items():
            patch.setenv(name, value)
        yield endpoint


@pytest.fixture
def cloud(local_s3, tmp_path, monkeypatch):
    """Fresh buckets, CORS and event wiring for each test, configured through the environment as Zappa does."""
    from tests.cloud import Cloud

    local_s3.reset()
    work = tmp_path / "work"
    work.mkdir()
    for name, value in {
        "PUBLIC_BASE_URL": f"{local_s3.url}/tiler-tiles",
        "WORK_DIR": str(work),
        "UPLOAD_WORKERS": "8",
        "BATCH_JOB_QUEUE": "",
        "BATCH_JOB_DEFINITION": "",
        "EVENT_QUEUE": "tiler-source-events",
        "DEAD_LETTER_QUEUE": "tiler-source-events-dead",
        "RETRY_BACKOFF_SECONDS": "0",  # a failed message comes back at once: no test waits for a retry
    }.items():
        monkeypatch.setenv(name, value)
    return Cloud(Settings.from_env(), local_s3, work)
