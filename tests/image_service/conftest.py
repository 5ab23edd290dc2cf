"""The dynamic IIIF endpoint against the embedded S3 endpoint: serving TIFFs made exactly as the pipeline makes them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import pyvips
from werkzeug.serving import make_server

from app.iiif import serving
from app.pipeline.tiles import write_serving_tiff
from app.web import create_app
from config import Settings
from tests.helpers import in_background


def serving_tiff(image: pyvips.Image, path) -> bytes:
    """The serving TIFF, written by the pipeline's own function."""
    write_serving_tiff(image, path, 85)
    return path.read_bytes()


def app_for(settings: Settings):
    return create_app(settings)


class Served:
    """Upload serving TIFFs to the tiles bucket; build the app that serves them."""

    def __init__(self, cloud, tmp_path, monkeypatch) -> None:
        self.cloud, self.tmp_path, self.monkeypatch = cloud, tmp_path, monkeypatch
        self.settings = cloud.settings

    def put(self, image_id: str, image: pyvips.Image) -> bytes:
        body = serving_tiff(image, self.tmp_path / "serving.tif")
        self.cloud.s3.put_object(Bucket=self.settings.tiles_bucket, Key=serving.key(image_id), Body=body)
        return body

    def limit(self, **limits: int) -> None:
        """Lower the advertised limits (iiif_max_width, iiif_max_height, iiif_max_area)."""
        self.settings = self.settings.with_overrides(**limits)

    def app(self):
        return app_for(self.settings)

    def client(self):
        return self.app().test_client()


@pytest.fixture
def served(cloud, tmp_path, monkeypatch) -> Served:
    return Served(cloud, tmp_path, monkeypatch)


@contextlib.contextmanager
def http_server(app) -> Iterator[str]:
    """``app`` on 127.0.0.1 (a free port), threaded, for clients that need real HTTP; yields host:port."""
    with in_background(make_server("127.0.0.1", 0, app, threaded=True)) as port:
        yield f"127.0.0.1:{port}"
